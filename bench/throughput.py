#!/usr/bin/env python3
"""Throughput: the generated configuration against a minimal hand-written one.

Both HAProxy processes run side by side on loopback, in front of the same backends
(one HAProxy answering 200 from memory on four addresses), with the same number of
routes (host map entries) and the same logging.  wrk (keep-alive) loads one, then
the other, alternating, so that both see the same machine state.  The generated
configuration is the watcher's own: a catalog built from Kubernetes objects and
applied by HAProxyTarget, exactly as the watcher does it.  Prints figures; never
fails on a ratio.

    .venv/bin/python bench/throughput.py [--routes 1000] [--rounds 7] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import StaticBackends, wrk
from harness import HAProxy, endpoint_slice, free_port, haproxy_settings, ingress, service

from breakwater.catalog import CatalogSettings, build_catalog
from breakwater.targets.haproxy import HAProxyTarget

LOG_TARGET = "127.0.0.1:5514"  # syslog over UDP: sent and dropped, in both configurations


def hand_written(directory: Path, routes: int, servers: list[tuple[str, int]]) -> Path:
    """What an operator writes by hand: one host map, one backend per service."""
    hosts = directory / "hosts.map"
    hosts.write_text("".join(f"svc{i}.bench.example be_svc{i}\n" for i in range(routes)))
    port = free_port()
    lines = [
        "global",
        "    maxconn 4000",
        f"    log {LOG_TARGET} format raw local0",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 10s",
        "frontend public",
        f"    bind 127.0.0.1:{port}",
        f"    use_backend %[req.hdr(host),field(1,:),lower,map_str({hosts},be_none)]",
        "backend be_none",
        "    http-request return status 404",
    ]
    for index in range(routes):
        lines += [f"backend be_svc{index}", "    balance roundrobin"]
        lines += [f"    server s{n + 1} {a}:{p}" for n, (a, p) in enumerate(servers)]
    config = directory / "hand.cfg"
    config.write_text("\n".join(lines) + "\n")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-throughput-") as name:
        work = Path(name)
        # The edge under test gets CPU 0 to itself; wrk and the backends share CPU 1.
        # Processes inherit this process's CPU set, and HAProxy sizes its threads
        # by it: the figure is then the edge's own cost, not the scheduler's.
        cpus = sorted(os.sched_getaffinity(0))
        edge_cpus, load_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (set(cpus),) * 2
        os.sched_setaffinity(0, load_cpus)
        backends = StaticBackends(work, 4)
        os.sched_setaffinity(0, edge_cpus)
        directory = work / "generated"
        directory.mkdir()
        settings = dataclasses.replace(
            haproxy_settings(directory), log_target=LOG_TARGET, maxconn=4000
        )
        generated = HAProxy(directory, settings)
        generated.start()
        objects = []
        for index in range(args.routes):
            objects += [
                service("bench", f"svc{index}"),
                endpoint_slice("bench", f"svc{index}", backends.endpoints),
                ingress("bench", f"svc{index}", f"svc{index}.bench.example", f"svc{index}"),
            ]
        # The load servers listen on loopback addresses, which the edge refuses by default.
        catalog = build_catalog(objects, CatalogSettings(allow_special_addresses=True))
        target = HAProxyTarget(settings)
        result = asyncio.run(target.apply(catalog))
        assert result.action == "reload", result
        asyncio.run(target.close())
        hand_config = hand_written(work, args.routes, backends.endpoints)
        hand_port = int(hand_config.read_text().split("bind 127.0.0.1:")[1].split()[0])
        hand = subprocess.Popen(["haproxy", "-f", str(hand_config)])
        os.sched_setaffinity(0, load_cpus)
        time.sleep(1)
        host = f"svc{args.routes // 2}.bench.example"
        urls = {
            "generated": f"http://127.0.0.1:{generated.http_port}/",
            "hand-written": f"http://127.0.0.1:{hand_port}/",
        }
        figures: dict[str, list[float]] = {name: [] for name in urls}
        errors = {name: 0 for name in urls}
        try:
            for url in urls.values():  # warm-up, not counted
                wrk(url, host, 5)
            for _round in range(args.rounds):
                for name, url in urls.items():
                    run = wrk(url, host, args.seconds)
                    figures[name].append(run["rps"])
                    errors[name] += run["socket_errors"] + (run["non_2xx"] or 0)
        finally:
            hand.terminate()
            hand.wait(10)
            generated.stop()
            backends.stop()
    print(
        f"{args.routes} routes, 4 servers each; wrk 2 threads, 32 keep-alive connections;"
        f" {args.rounds} alternated rounds of {args.seconds:g} s; the edge on CPU"
        f" {','.join(map(str, sorted(edge_cpus)))}, wrk and backends on CPU"
        f" {','.join(map(str, sorted(load_cpus)))}"
    )
    for name, values in figures.items():
        print(
            f"  {name:<12} median {statistics.median(values):>7.0f} req/s"
            f" (rounds: {', '.join(f'{v:.0f}' for v in values)}; errors {errors[name]})"
        )
    # Each round's pair ran back to back: their ratio is free of the machine's drift.
    generated, hand_written_ = figures["generated"], figures["hand-written"]
    ratios = [g / h for g, h in zip(generated, hand_written_, strict=True)]
    of_medians = statistics.median(generated) / statistics.median(hand_written_)
    print(
        f"  ratio generated / hand-written: median of rounds {statistics.median(ratios):.3f}"
        f" (rounds: {', '.join(f'{r:.3f}' for r in ratios)}); of medians {of_medians:.3f}"
    )


if __name__ == "__main__":
    main()
