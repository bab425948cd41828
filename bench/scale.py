#!/usr/bin/env python3
"""Scale: a synthetic cluster of N Services x 10 endpoints (EndpointSlices, protobuf).

Writes the cluster into a real etcd, then, in a fresh process, measures what the
watcher does at start -- the full list, decode, catalog and render -- its peak RSS,
and the CPU cost of one endpoint event at that scale (catalog and render again).
Prints figures; never fails on a time.

    .venv/bin/python bench/scale.py [--services 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

import aetcd  # noqa: E402
from builders import READY, endpoint_slice, ingress, service  # noqa: E402
from harness import Etcd  # noqa: E402

from breakwater.lab import storage_key, storage_value  # noqa: E402

MEASURE = r"""
import asyncio, json, resource, sys, time
from breakwater.catalog import build_catalog
from breakwater.config import load_config
from breakwater.render import HAProxySettings, assign_slots, render_haproxy
from breakwater.source import Change
from breakwater.watcher import ClusterState, read_cluster
from breakwater.lab import storage_key, storage_value
sys.path.insert(0, sys.argv[2])
from builders import READY, endpoint_slice

config = load_config(document={"etcd": {"endpoints": [sys.argv[1]], "timeout": 60}}, environ={})
settings = HAProxySettings(config_dir="/tmp/bw-scale")
times = {}
start = time.perf_counter()
state = asyncio.run(read_cluster(config.etcd))
times["list + decode"] = time.perf_counter() - start
start = time.perf_counter()
catalog = state.catalog(config)
times["catalog"] = time.perf_counter() - start
start = time.perf_counter()
layout = assign_slots(catalog, {}, 4)
rendered = render_haproxy(catalog, layout, settings)
times["render"] = time.perf_counter() - start
times["total"] = sum(times.values())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
# One endpoint event: a slice of service 0 gains an endpoint.
changed = endpoint_slice("bench", "svc0", [(f"10.250.0.{i}", READY) for i in range(1, 12)])
cpu = time.process_time()
state.apply([Change(storage_key(changed), storage_value(changed), state.revision + 1)])
catalog = state.catalog(config)
layout = assign_slots(catalog, layout, 4)
render_haproxy(catalog, layout, settings)
event_ms = (time.process_time() - cpu) * 1000
print(json.dumps({"times": times, "rss_mb": rss, "event_cpu_ms": event_ms,
                  "routes": len(catalog.routes), "backends": len(catalog.backends),
                  "config_mb": len(rendered.config) / 1e6}))
"""


async def write(etcd: Etcd, services: int) -> float:
    start = time.perf_counter()
    async with aetcd.Client("127.0.0.1", etcd.client_port, timeout=60) as client:
        batch = []
        for index in range(services):
            endpoints = [(f"10.{index // 250}.{index % 250}.{j + 1}", READY) for j in range(10)]
            for obj in (
                service("bench", f"svc{index}"),
                endpoint_slice("bench", f"svc{index}", endpoints),
                ingress(
                    "bench",
                    f"svc{index}",
                    [(f"svc{index}.bench.example", "/", "Prefix", f"svc{index}")],
                ),
            ):
                batch.append(client.transactions.put(storage_key(obj).encode(), storage_value(obj)))
            if len(batch) >= 120:  # etcd's default limit is 128 operations per transaction
                await client.transaction(compare=[], success=batch, failure=[])
                batch = []
        if batch:
            await client.transaction(compare=[], success=batch, failure=[])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-scale-") as work:
        etcd = Etcd(Path(work) / "etcd")
        etcd.start()
        try:
            written = asyncio.run(write(etcd, args.services))
            result = subprocess.run(
                [sys.executable, "-c", MEASURE, etcd.endpoint, str(ROOT / "tests")],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            etcd.stop()
    figures = json.loads(result.stdout)
    print(
        f"synthetic cluster: {args.services} Services x 10 endpoints, {3 * args.services} objects"
        f" (written in {written:.1f} s)"
    )
    print(
        f"routes {figures['routes']}, backends {figures['backends']},"
        f" haproxy.cfg {figures['config_mb']:.1f} MB"
    )
    for name, seconds in figures["times"].items():
        print(f"  {name:<14} {seconds * 1000:>8.0f} ms")
    print(f"  peak RSS       {figures['rss_mb']:>8.0f} MB")
    print(
        f"  one endpoint event, CPU {figures['event_cpu_ms']:>6.1f} ms (catalog and render again)"
    )


if __name__ == "__main__":
    main()
