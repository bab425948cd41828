#!/usr/bin/env python3
"""Recovery: how soon a change is served once etcd is back.

Real etcd, real HAProxy and the watcher as a subprocess with its default backoff
settings, on loopback.  Each round: etcd is killed for ``--long`` seconds (the
reconnect delays grow to their maximum), started, and a change written at once;
then, with the watcher back, killed for ``--blip`` seconds, started, and a change
written at once; then a ``--restart``-second restart.  Each figure is the time from
etcd answering again (its start returned) to the first request served by the
changed EndpointSlice.  Prints medians and maxima; never fails on a time.

    .venv/bin/python bench/recovery.py [--rounds 3] [--long 30] [--blip 1] [--restart 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import wait_until
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
    store,
    watcher_config,
)


def run(
    rounds: int, long: float, blip: float, restart: float, work: Path, show_log: bool = False
) -> dict[str, list[float]]:
    etcd = Etcd(work / "etcd")
    etcd.start()
    directory = work / "haproxy"
    directory.mkdir()
    proxy = HAProxy(directory, haproxy_settings(directory))
    proxy.start()
    port = free_port()
    pods = [Backend(f"pod{i}", f"127.0.0.{60 + i}", port) for i in range(2)]
    store(etcd, service("bench", "web"))
    store(etcd, endpoint_slice("bench", "web", [pods[0].endpoint]))
    store(etcd, ingress("bench", "web", "web.bench.example", "web"))
    config = watcher_config(work, etcd, proxy)
    document = yaml.safe_load(config.read_text())
    del document["etcd"]["backoff_initial"], document["etcd"]["backoff_max"]  # defaults
    document["watcher"]["log_level"] = "INFO"
    config.write_text(yaml.safe_dump(document))
    watcher = WatcherProcess(config, work / "watcher.log")
    watcher.start()
    figures: dict[str, list[float]] = {
        f"after a {long:g} s outage": [],
        f"a {blip:g} s blip after it": [],
        f"a {restart:g} s restart": [],
    }
    serving = 0

    def answers(name: str) -> bool:
        status, body = http_get(proxy.http_port, "web.bench.example")
        return status == 200 and body.startswith(name + " ")

    def outage(seconds: float) -> float:
        nonlocal serving
        etcd.stop(signal.SIGKILL)
        time.sleep(seconds)
        etcd.start()  # returns once etcd answers
        start = time.perf_counter()
        serving = 1 - serving
        store(etcd, endpoint_slice("bench", "web", [pods[serving].endpoint]))
        wait_until(lambda: answers(pods[serving].name), timeout=60)
        return time.perf_counter() - start

    try:
        wait_until(lambda: answers("pod0"), timeout=60)
        for _ in range(rounds):
            for name, seconds in zip(figures, (long, blip, restart), strict=True):
                figures[name].append(outage(seconds))
                time.sleep(3)  # connected and quiet again
    finally:
        if show_log:
            print(watcher.log())
        watcher.stop()
        proxy.stop()
        etcd.stop()
        for pod in pods:
            pod.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long", type=float, default=30.0)
    parser.add_argument("--blip", type=float, default=1.0)
    parser.add_argument("--restart", type=float, default=5.0)
    parser.add_argument("--log", action="store_true", help="print the watcher's log")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
        figures = run(args.rounds, args.long, args.blip, args.restart, Path(work), args.log)
    print(f"{'etcd away':<24} {'n':>3} {'median s':>9} {'max s':>7}  (etcd back -> change served)")
    for name, values in figures.items():
        print(f"{name:<24} {len(values):>3} {statistics.median(values):>9.2f} {max(values):>7.2f}")


if __name__ == "__main__":
    main()
