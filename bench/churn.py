#!/usr/bin/env python3
"""Churn: new routes to new Services at a steady pace, and what HAProxy went through.

Real etcd, real HAProxy (master-worker) and the watcher as a subprocess, on loopback,
with a base of routed Services.  Every seconds/routes seconds (by the wall clock,
whatever the edge does meanwhile) a new Service, its EndpointSlice (one of the real
loopback backends) and an Ingress for a new host are written; each host is polled
until it answers 200 (convergence from the first of the three writes).  The master
CLI's ``show proc`` is sampled every 100 ms throughout: its reload counter, and the
old workers (a reload's previous worker, still serving its connections).  Reports
the reloads (their causes by the watcher's metrics and its log lines), the old
workers alive at most and at the end (``--settle`` seconds after the last change;
hard-stop-after is 10 s here), and the convergence of the new routes.  Never fails
on a figure.

    .venv/bin/python bench/churn.py [--base 1000] [--routes 200] [--seconds 60] [--settle 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import Writer, percentile, wait_until
from convergence import metric_reloads, reload_causes
from harness import (
    Backend,
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    free_port,
    haproxy_settings,
    http_get,
    ingress,
    service,
    watcher_config,
)

from breakwater.targets.haproxy_api import parse_show_proc


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the first change was due
    reloads: int  # the master's counter
    workers: int
    old_workers: int


def sample(proxy: HAProxy, origin: float) -> Sample:
    """One ``show proc`` on the master CLI.  Its sections: "# workers", then
    "# old workers" (previous generations still running), then "# programs"."""
    text = proxy.master("show proc")
    table = parse_show_proc(text)
    old, section = 0, None
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").strip()
        elif section == "old workers" and line.split()[1:2] == ["worker"]:
            old += 1
    return Sample(time.monotonic() - origin, table.reloads, len(table.workers), old)


class Sampler(threading.Thread):
    """``show proc`` every ``interval`` seconds until stopped."""

    def __init__(self, proxy: HAProxy, origin: float, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.proxy, self.origin, self.interval = proxy, origin, interval
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(sample(self.proxy, self.origin))
            self.done.wait(self.interval)

    def stop(self) -> list[Sample]:
        self.done.set()
        self.join(30)
        return self.samples


def status(proxy: HAProxy, host: str) -> int | None:
    try:
        return http_get(proxy.http_port, host, timeout=2)[0]
    except OSError:
        return None


def run(base: int, routes: int, seconds: float, settle: float, work: Path) -> dict:
    etcd = Etcd(work / "etcd")
    etcd.start()
    directory = work / "haproxy"
    directory.mkdir()
    proxy = HAProxy(directory, haproxy_settings(directory))
    proxy.start()
    port = free_port()
    servers = [Backend(f"b{i}", f"127.0.0.{20 + i}", port) for i in range(3)]
    objects = []
    for index in range(base):
        objects += [
            service("bench", f"svc{index}"),
            endpoint_slice("bench", f"svc{index}", [servers[index % 3].endpoint]),
            ingress("bench", f"svc{index}", f"svc{index}.bench.example", f"svc{index}"),
        ]
    writer = Writer(etcd)
    writer.put_all(objects)
    watcher = WatcherProcess(watcher_config(work, etcd, proxy), work / "watcher.log")
    watcher.start()
    interval = seconds / routes
    converged: dict[str, float] = {}
    late = 0.0  # the most a write came after its time
    try:
        for host in ("svc0.bench.example", f"svc{base - 1}.bench.example"):
            wait_until(lambda h=host: http_get(proxy.http_port, h)[0] == 200, 120)
        time.sleep(3)  # the start's file writes (and reloads) are over
        logged, metric = len(watcher.log()), metric_reloads(watcher)
        origin = time.monotonic()
        sampler = Sampler(proxy, origin)
        sampler.start()
        first = sample(proxy, origin)
        pending: dict[str, float] = {}  # host -> when its first write was made
        written = 0
        while written < routes or pending:
            now = time.monotonic()
            if written < routes and now >= origin + written * interval:
                late = max(late, now - (origin + written * interval))
                name = f"churn{written}"
                start = time.perf_counter()
                writer.put(service("bench", name))
                writer.put(endpoint_slice("bench", name, [servers[written % 3].endpoint]))
                writer.put(ingress("bench", name, f"{name}.bench.example", name))
                pending[f"{name}.bench.example"] = start
                written += 1
                continue
            for host, start in list(pending.items()):
                if status(proxy, host) == 200:
                    converged[host] = time.perf_counter() - start
                    del pending[host]
                elif time.perf_counter() - start > 60:
                    del pending[host]  # never served: counted as missing
            if not pending and written < routes:
                time.sleep(max(0.0, min(0.01, origin + written * interval - time.monotonic())))
        last_change = origin + (routes - 1) * interval
        time.sleep(max(0.0, last_change + settle - time.monotonic()))
        samples = sampler.stop()
        end = sample(proxy, origin)
        causes = metric_reloads(watcher) - metric, reload_causes(watcher.log()[logged:])
    finally:
        writer.close()
        watcher.stop()
        proxy.stop()
        etcd.stop()
        for server in servers:
            server.close()
    return {
        "converged": list(converged.values()),
        "late": late,
        "reloads": end.reloads - first.reloads,
        "causes": causes,
        "samples": samples,
        "end": end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=1000, help="routed Services at the start")
    parser.add_argument("--routes", type=int, default=200, help="new routes to new Services")
    parser.add_argument("--seconds", type=float, default=60.0, help="over this many seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="end sample after the last")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
        figures = run(args.base, args.routes, args.seconds, args.settle, Path(work))
    ms = [v * 1000 for v in figures["converged"]]
    samples, end = figures["samples"], figures["end"]
    counted, logged = (
        ", ".join(f"{c} {n}" for c, n in sorted(by.items())) or "none" for by in figures["causes"]
    )
    print(
        f"{args.routes} new routes (new Services) over {args.seconds:g} s on {args.base} routed"
        f" Services: one every {args.seconds / args.routes * 1000:.0f} ms"
        f" (a write at most {figures['late'] * 1000:.0f} ms late)"
    )
    if ms:
        print(
            f"  served {len(ms)}/{args.routes}; convergence median"
            f" {statistics.median(ms):.1f}, p99 {percentile(ms, 0.99):.1f},"
            f" max {max(ms):.1f} ms"
        )
    else:
        print(f"  served 0/{args.routes}")
    times = [f"{b.at:.1f}" for a, b in itertools.pairwise(samples) if b.reloads > a.reloads]
    print(
        f"  HAProxy reloads {figures['reloads']} (goal <= 2): causes {counted}"
        f" (log lines: {logged})" + (f"; seen at {', '.join(times)} s" if times else "")
    )
    print(
        f"  old workers alive: max {max((s.old_workers for s in samples), default=0)} in"
        f" {len(samples)} samples of show proc (goal <= 1), {end.old_workers} at the end"
        f" ({args.settle:g} s after the last change); current workers max"
        f" {max((s.workers for s in samples), default=0)}"
    )


if __name__ == "__main__":
    main()
