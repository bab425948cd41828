"""Digests of what the edge renders for the bench clusters: haproxy.cfg, every map and
certificate, and the VCL.  Kept to show that a change meant to leave the output alone
(a restructure) does: run it before and after and compare, or ``--check FILE``.

The clusters go the watcher's way -- stored as the API server stores them, decoded
(lean), catalogued, placed into slots, rendered -- without etcd or HAProxy.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration"), str(ROOT / "bench")]

from builders import (  # noqa: E402
    READY,
    endpoint_slice,
    ingress,
    node,
    route_configmap,
    service,
    tls_secret,
)
from scale import cluster_objects  # noqa: E402

from breakwater.catalog.live import LiveCatalog  # noqa: E402
from breakwater.cluster.plain_routes import encode_route  # noqa: E402
from breakwater.cluster.source import Change  # noqa: E402
from breakwater.cluster.state import ClusterState  # noqa: E402
from breakwater.config import load_config  # noqa: E402
from breakwater.lab import storage_key, storage_value  # noqa: E402
from breakwater.render.haproxy import render_haproxy  # noqa: E402
from breakwater.render.slots import assign_slots  # noqa: E402
from breakwater.render.vcl import render_vcl  # noqa: E402


def features() -> list[dict[str, Any]]:
    """One of each kind of route the catalog knows."""
    return [
        service("shop", "web"),
        service("shop", "api", node_port=30080),
        endpoint_slice("shop", "web", [("10.0.0.1", READY), ("10.0.0.2", READY)]),
        endpoint_slice("shop", "api", [("10.0.1.1", READY)]),
        tls_secret("shop", "www"),
        node("n1", "10.1.0.1"),
        node("n2", "10.1.0.2", unschedulable=True),
        ingress(
            "shop",
            "web",
            [
                ("www.example.com", "/", "Prefix", "web"),
                ("www.example.com", "/exact", "Exact", "web"),
                ("*.wild.example", "/", "Prefix", "web"),
            ],
            annotations={
                "breakwater.io/cache": "true",
                "breakwater.io/cache-ttl": "5m",
                "breakwater.io/cache-bypass-paths": "/account",
                "breakwater.io/https-redirect": "true",
                "breakwater.io/timeout-server": "30s",
            },
            tls=[{"hosts": ["www.example.com"], "secretName": "www"}],
        ),
        route_configmap(
            "shop",
            "api",
            {
                "hosts": "api.example.com",
                "paths": "/v1 /v2",
                "exact-paths": "/health",
                "balance": "leastconn",
                "health-check-path": "/healthz",
                "port": "http",
            },
        ),
    ]


PLAIN_ROUTE = {
    "hosts": ["billing.example.com"],
    "servers": [{"address": "10.2.0.5", "port": 8080}, {"address": "10.2.0.6", "port": 8080}],
    "balance": "source",
}


def render(objects: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, str]:
    config = load_config(document=settings, environ={}, check_files=False)
    state = ClusterState.for_settings(config.etcd)
    changes = [Change(storage_key(obj), storage_value(obj), 1) for obj in objects]
    changes.append(Change("/breakwater/routes/billing", encode_route(PLAIN_ROUTE), 1))
    state.apply(changes)
    catalog, _ = LiveCatalog().update(state, config.catalog)
    layout = assign_slots(catalog, {}, config.haproxy.min_slots)
    varnish = config.varnish if config.varnish.enabled else None
    rendered = render_haproxy(catalog, layout, config.haproxy, varnish=varnish)
    files = {"haproxy.cfg": rendered.config, **rendered.generation_files}
    files["varnish.vcl"] = render_vcl(config.varnish)
    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}


def digests() -> list[str]:
    etcd = {"endpoints": ["http://127.0.0.1:2379"]}
    clusters = {
        "features": (features(), {"etcd": etcd}),
        "features-varnish": (features(), {"etcd": etcd, "varnish": {"enabled": True}}),
        "features-nodeport": (features(), {"etcd": etcd, "catalog": {"mode": "nodeport"}}),
        "scale-1000": ([o for i in range(1000) for o in cluster_objects(i)], {"etcd": etcd}),
        "scale-10000": ([o for i in range(10000) for o in cluster_objects(i)], {"etcd": etcd}),
    }
    lines = []
    for cluster, (objects, settings) in clusters.items():
        for name, digest in sorted(render(objects, settings).items()):
            lines.append(f"{cluster} {name} {digest}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", type=Path, help="compare with the digests in this file")
    args = parser.parse_args()
    lines = digests()
    if args.check is None:
        print("\n".join(lines))
        return
    expected = args.check.read_text().split("\n")
    differing = sorted(set(lines) ^ {line for line in expected if line})
    if differing:
        sys.exit("rendered output differs:\n" + "\n".join(differing))
    print(f"{len(lines)} rendered files, byte-identical to {args.check}")


if __name__ == "__main__":
    main()
