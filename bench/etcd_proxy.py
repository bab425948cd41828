#!/usr/bin/env python3
"""Many edge nodes, one etcd: what watchers cost etcd, straight or behind etcd's
own gRPC proxy (``etcd grpc-proxy``, as the watcher role's ``watcher_etcd_proxy`` runs it).

Real etcd (with a /metrics listener of its own), real ``etcd grpc-proxy`` and real
``breakwater watch`` processes, each with its own real HAProxy, on loopback.  Three
setups, each on a fresh etcd: (a) one watcher straight to etcd, (b) ``--watchers``
watchers behind one proxy, (c) as many straight to etcd.  For each: etcd's open watch
streams and watchers (``etcd_debugging_mvcc_watch_stream_total``,
``etcd_debugging_mvcc_watcher_total``) with no watcher and after each watcher has
listed and is watching, and the time from one write to every watcher's HAProxy
serving it.  The proxy's listener is plaintext here (the role's is TLS with client
certificates; that changes no count).  Never fails on a figure.

    .venv/bin/python bench/etcd_proxy.py [--watchers 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import wait_until
from harness import (
    Backend,
    Etcd,
    EtcdProxy,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    free_port,
    haproxy_settings,
    http_get,
    ingress,
    service,
    store,
    watcher_config,
)


def stable_counts(etcd: Etcd, quiet: float = 1.0, timeout: float = 30.0) -> tuple[int, int]:
    """etcd's (watch streams, watchers) once unchanged for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = etcd.watch_counts(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = etcd.watch_counts()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def setup(name: str, watchers: int, via_proxy: bool, rounds: int, work: Path) -> dict:
    work = work / name
    work.mkdir()
    etcd = Etcd(work / "etcd", metrics_port=free_port())
    etcd.start()
    proxy = EtcdProxy(work / "proxy", etcd) if via_proxy else None
    port = free_port()
    pods = [Backend(f"pod{i}", f"127.0.0.{70 + i}", port) for i in range(2)]
    store(etcd, service("bench", "web"))
    store(etcd, endpoint_slice("bench", "web", [pods[0].endpoint]))
    store(etcd, ingress("bench", "web", "web.bench.example", "web"))
    edges: list[tuple[HAProxy, WatcherProcess]] = []
    counts: list[tuple[str, tuple[int, int]]] = [("no watcher", stable_counts(etcd))]
    result: dict = {"name": name, "counts": counts, "latency": []}
    try:
        if proxy is not None:
            proxy.start()
            counts.append(("proxy, no watcher", stable_counts(etcd)))
        for n in range(watchers):
            directory = work / f"edge{n}"
            directory.mkdir()
            haproxy = HAProxy(directory, haproxy_settings(directory))
            haproxy.start()
            config = watcher_config(directory, etcd, haproxy)
            document = yaml.safe_load(config.read_text())
            if proxy is not None:
                document["etcd"]["endpoints"] = [proxy.endpoint]
            document["watcher"]["log_level"] = "INFO"
            config.write_text(yaml.safe_dump(document))
            watcher = WatcherProcess(config, directory / "watcher.log")
            watcher.start()
            edges.append((haproxy, watcher))
            wait_until(lambda h=haproxy: serves(h, "pod0"), timeout=60)
            counts.append((f"{n + 1} watcher{'s' if n else ''}", stable_counts(etcd)))
        serving = 0
        for _ in range(rounds):
            serving = 1 - serving
            start = time.perf_counter()
            store(etcd, endpoint_slice("bench", "web", [pods[serving].endpoint]))
            wanted = pods[serving].name
            wait_until(lambda w=wanted: all(serves(h, w) for h, _ in edges), timeout=30)
            result["latency"].append((time.perf_counter() - start) * 1000)
            time.sleep(0.5)
        if proxy is not None and proxy.process is not None:
            result["proxy_rss_kib"] = rss_kib(proxy.process.pid)
    finally:
        for haproxy, watcher in edges:
            watcher.stop()
            haproxy.stop()
        if proxy is not None:
            proxy.stop()
        etcd.stop()
        for pod in pods:
            pod.close()
    return result


def serves(haproxy: HAProxy, name: str) -> bool:
    status, body = http_get(haproxy.http_port, "web.bench.example")
    return status == 200 and body.startswith(name + " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="writes timed per setup")
    args = parser.parse_args()
    n = args.watchers
    runs = [
        ("(a) 1 watcher, straight to etcd", 1, False),
        (f"(b) {n} watchers behind one grpc-proxy", n, True),
        (f"(c) {n} watchers, straight to etcd", n, False),
    ]
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
        results = [
            setup(f"s{i}", watchers, via_proxy, args.rounds, Path(work))
            for i, (_, watchers, via_proxy) in enumerate(runs)
        ]
    print("etcd's gauges: watch streams / watchers (etcd_debugging_mvcc_watch_stream_total,")
    print("etcd_debugging_mvcc_watcher_total), each watcher listed and watching")
    for (title, _, _), result in zip(runs, results, strict=True):
        print()
        print(title)
        for label, (streams, watchers) in result["counts"]:
            print(f"  {label:<20} {streams:>3} streams {watchers:>4} watchers")
        latency = result["latency"]
        print(
            f"  write -> served by every watcher's HAProxy: median {statistics.median(latency):.0f}"
            f" ms, max {max(latency):.0f} ms ({len(latency)} writes)"
        )
        if "proxy_rss_kib" in result:
            print(f"  the proxy's resident memory: {result['proxy_rss_kib'] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
