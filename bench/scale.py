#!/usr/bin/env python3
"""Scale: synthetic clusters of N Services x 10 endpoints (EndpointSlices, protobuf).

For each N, writes the cluster into a real etcd -- objects shaped as the API server
stores them: uids, owner references, managedFields, targetRefs, zones -- then, in a
fresh process, measures what the watcher does at start: the full list, decode,
catalog and render, and its peak RSS.  That process then starts a real HAProxy,
loads the rendered configuration into it (haproxy -c and a reload, as the watcher
does), and measures the watcher's CPU time for single endpoint events: one
EndpointSlice written, decoded, the catalog updated, the servers placed and the
runtime commands sent.  Then, after the file write, new routes (a quarter as many
as endpoint events): one route to an existing Service written, decoded, the catalog
built (grown from the last one for an Ingress; once a Gateway of ours exists, every
unchanged object's build replayed and the Gateway API's precedence merged over all),
the route map changed at runtime.

Each Service is routed by an Ingress (--services), or by an HTTPRoute
(--httproutes: each its own host and Service, all attached to one Gateway of our
GatewayClass, one HTTP listener taking routes from every namespace; the Gateway API's
objects stored as JSON, as the API server stores custom resources).

The endpoints' addresses (in 10.128.0.0/9: 10.<128 + N/250>.<N%250>.<1-11>)
exist nowhere, and nothing reaches them: no request goes through the HAProxy, and
its configuration holds no health check (a server is checked only when its route
asks for it; scale_measure.py refuses a configuration with one).  Prints figures;
never fails on a time.

    .venv/bin/python bench/scale.py [--services 1000 10000] [--httproutes 1000]
        [--events 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration"), str(ROOT / "bench")]

import aetcd  # noqa: E402
from common import GATEWAY_API, encoding, gateway, gateway_class, http_route  # noqa: E402
from harness import Etcd  # noqa: E402

from breakwater.lab import storage_key, storage_value  # noqa: E402

CREATED = "2026-01-01T00:00:00Z"


def _meta(
    namespace: str, name: str, manager: str, api_version: str = "v1", **extra: Any
) -> dict[str, Any]:
    """Metadata as the API server stores it, one managedFields entry included."""
    fields = {"f:metadata": {"f:labels": {".": {}}}, "f:spec": {}}
    return {
        "name": name,
        "namespace": namespace,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}/{manager}")),
        "creationTimestamp": CREATED,
        "managedFields": [
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": CREATED,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        ],
        **extra,
    }


def cluster_objects(index: int, endpoints: int = 10, kind: str = "Ingress") -> list[dict[str, Any]]:
    """Service, EndpointSlice and route (an Ingress, or an HTTPRoute) of the synthetic
    service number ``index``."""
    name, namespace = f"svc{index}", f"team{index % 50}"
    labels = {"app": name, "app.kubernetes.io/part-of": "bench"}
    service = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": _meta(namespace, name, "kubectl", labels=labels),
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": name},
            "clusterIP": f"10.96.{index // 250}.{index % 250}",
            "clusterIPs": [f"10.96.{index // 250}.{index % 250}"],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
    }
    slice_ = endpoint_slice_object(index, endpoints)
    return [service, slice_, route_object(index, kind)]


def route_object(index: int, kind: str = "Ingress", name: str | None = None) -> dict[str, Any]:
    """The Ingress or HTTPRoute sending host ``<name>.<namespace>.bench.example``, path
    /, to the synthetic service number ``index``; ``name``: the route's (the Service's
    by default)."""
    service, namespace = f"svc{index}", f"team{index % 50}"
    name = name or service
    labels = {"app": service, "app.kubernetes.io/part-of": "bench"}
    host = f"{name}.{namespace}.bench.example"
    if kind == "HTTPRoute":
        route = http_route(namespace, name, host, service)
        route["metadata"] = _meta(
            namespace, name, "kubectl", GATEWAY_API, labels=labels, generation=1
        )
        return route
    return {
        "kind": "Ingress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": _meta(namespace, name, "kubectl", labels=labels, generation=1),
        "spec": {
            "ingressClassName": "breakwater",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def endpoint_slice_object(index: int, endpoints: int) -> dict[str, Any]:
    name, namespace = f"svc{index}", f"team{index % 50}"
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": _meta(
            namespace,
            f"{name}-abcde",
            "endpointslice-controller.k8s.io",
            generateName=f"{name}-",
            generation=1,
            labels={
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": name,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}/kubectl")),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        ),
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [f"10.{128 + index // 250}.{index % 250}.{j + 1}"],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": f"{name}-7d9f8b6c5-{j:05d}",
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{name}/pod{j}")),
                },
                "nodeName": f"node{(index + j) % 40}",
                "zone": f"zone-{j % 3}",
            }
            for j in range(endpoints)
        ],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    }


async def write(etcd: Etcd, services: int, kind: str = "Ingress") -> float:
    start = time.perf_counter()
    async with aetcd.Client("127.0.0.1", etcd.client_port, timeout=60) as client:
        batch = []
        objects = [gateway_class(), gateway()] if kind == "HTTPRoute" else []
        for index in range(services):
            for obj in objects + cluster_objects(index, kind=kind):
                value = storage_value(obj, encoding(obj))
                batch.append(client.transactions.put(storage_key(obj).encode(), value))
            objects = []
            if len(batch) >= 120:  # etcd's default limit is 128 operations per transaction
                await client.transaction(compare=[], success=batch, failure=[])
                batch = []
        if batch:
            await client.transaction(compare=[], success=batch, failure=[])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument(
        "--httproutes", type=int, nargs="*", default=[1000], help="Services routed by HTTPRoutes"
    )
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    rows = []
    runs = [(n, "Ingress") for n in args.services] + [(n, "HTTPRoute") for n in args.httproutes]
    for services, kind in runs:
        with tempfile.TemporaryDirectory(prefix="bw-scale-") as work:
            etcd = Etcd(Path(work) / "etcd")
            etcd.start()
            try:
                written = asyncio.run(write(etcd, services, kind))
                result = subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "scale_measure.py"),
                        etcd.endpoint,
                        work,
                        str(args.events),
                        kind,
                    ],
                    capture_output=True,
                    text=True,
                )
            finally:
                etcd.stop()
        if result.returncode != 0:
            sys.exit(f"measuring {services} services failed:\n{result.stderr[-3000:]}")
        figures = json.loads(result.stdout)
        figures["services"], figures["written"] = services, written
        figures["kind"] = kind
        rows.append(figures)
    print(
        "synthetic clusters: N Services x 10 endpoints; 3 objects per Service (protobuf;"
        " an HTTPRoute JSON), with one GatewayClass and one Gateway where HTTPRoutes route"
    )
    header = ["services", "objects", "list+decode", "catalog", "render", "start total"]
    header += ["peak RSS", "event CPU med", "event CPU p99", "event wall p99", "cfg MB"]
    header += ["first reload", "file write after a burst", "loop stall in a full build"]
    header += ["event CPU med, metrics off / on", "new route CPU med / p99, wall p99"]
    print(" | ".join(header))
    for r in rows:
        t = r["times"]
        print(
            " | ".join(
                [
                    f"{r['services']}" + (" HTTPRoutes" if r["kind"] == "HTTPRoute" else ""),
                    f"{r['objects']}",
                    f"{t['list + decode'] * 1000:.0f} ms",
                    f"{t['catalog'] * 1000:.0f} ms",
                    f"{t['render'] * 1000:.0f} ms",
                    f"{t['total'] * 1000:.0f} ms",
                    f"{r['rss_mb']:.0f} MB",
                    f"{r['event_cpu_ms']['median']:.2f} ms",
                    f"{r['event_cpu_ms']['p99']:.2f} ms",
                    f"{r['event_wall_ms']['p99']:.2f} ms",
                    f"{r['config_mb']:.1f}",
                    f"{r['first_apply_ms']:.0f} ms",
                    f"{r['flush_ms']:.0f} ms",
                    f"{r['rebuild_loop_stall_ms']:.0f} ms",
                    "{off:.3f} / {on:.3f} ms".format(**r["event_cpu_ms_metrics"]),
                    f"{r['route_cpu_ms']['median']:.1f} / {r['route_cpu_ms']['p99']:.1f} ms,"
                    f" {r['route_wall_ms']['p99']:.1f} ms",
                ]
            )
        )


if __name__ == "__main__":
    main()
