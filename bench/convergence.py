#!/usr/bin/env python3
"""Convergence: from the etcd write to the first request served by the new state.

Real etcd, real HAProxy (master-worker) and the watcher as a subprocess, on loopback.
Three kinds of change, each repeated: an endpoint added and an endpoint removed
(runtime API path), and a new route (reload path), at 10 and 1,000 routes.
Prints medians and p99s; never fails on a time.

    .venv/bin/python bench/convergence.py [--changes 200] [--routes 10 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import Writer, percentile, wait_until
from harness import (
    Backend,
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    haproxy_settings,
    http_get,
    ingress,
    service,
    watcher_config,
)


def run(routes: int, changes: int, work: Path) -> dict[str, list[float]]:
    etcd = Etcd(work / "etcd")
    etcd.start()
    directory = work / "haproxy"
    directory.mkdir()
    proxy = HAProxy(directory, haproxy_settings(directory))
    proxy.start()
    port = 18000 + routes % 1000
    servers = [Backend(f"b{i}", f"127.0.0.{20 + i}", port) for i in range(3)]
    objects = []
    for index in range(routes):
        objects += [
            service("bench", f"svc{index}"),
            endpoint_slice("bench", f"svc{index}", [servers[0].endpoint]),
            ingress("bench", f"svc{index}", f"svc{index}.bench.example", f"svc{index}"),
        ]
    writer = Writer(etcd)
    writer.put_all(objects)
    watcher = WatcherProcess(watcher_config(work, etcd, proxy), work / "watcher.log")
    watcher.start()
    figures: dict[str, list[float]] = {
        "endpoint added": [],
        "endpoint removed": [],
        "new route": [],
    }
    try:
        wait_until(lambda: http_get(proxy.http_port, "svc0.bench.example")[0] == 200, 120)
        host = "svc0.bench.example"
        both = endpoint_slice("bench", "svc0", [servers[0].endpoint, servers[1].endpoint])
        one = endpoint_slice("bench", "svc0", [servers[0].endpoint])
        for _ in range(changes):
            start = time.perf_counter()
            writer.put(both)
            wait_until(
                lambda: any(http_get(proxy.http_port, host)[1].startswith("b1 ") for _ in range(2))
            )
            figures["endpoint added"].append(time.perf_counter() - start)
            start = time.perf_counter()
            writer.put(one)
            wait_until(
                lambda: all(http_get(proxy.http_port, host)[1].startswith("b0 ") for _ in range(4))
            )
            figures["endpoint removed"].append(time.perf_counter() - start)
        for index in range(changes):
            new = ingress("bench", f"new{index}", f"new{index}.bench.example", "svc0")
            start = time.perf_counter()
            writer.put(new)
            wait_until(lambda i=index: http_get(proxy.http_port, f"new{i}.bench.example")[0] == 200)
            figures["new route"].append(time.perf_counter() - start)
    finally:
        writer.close()
        watcher.stop()
        proxy.stop()
        etcd.stop()
        for server in servers:
            server.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--routes", type=int, nargs="+", default=[10, 1000])
    args = parser.parse_args()
    print(f"{'routes':>7} {'change':<17} {'n':>4} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for routes in args.routes:
        with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
            figures = run(routes, args.changes, Path(work))
        for change, values in figures.items():
            ms = [v * 1000 for v in values]
            print(
                f"{routes:>7} {change:<17} {len(ms):>4} {statistics.median(ms):>10.1f}"
                f" {percentile(ms, 0.99):>8.1f} {max(ms):>8.1f}"
            )


if __name__ == "__main__":
    main()
