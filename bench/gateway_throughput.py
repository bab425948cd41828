#!/usr/bin/env python3
"""Gateway API throughput: what 1,000 HTTPRoutes cost a plain route's requests.

bench/throughput.py's method: HAProxy edges generated as the watcher generates them
(HAProxyTarget, from a catalog of Kubernetes objects), side by side on loopback in
front of the same backends (one HAProxy answering 200 from memory on four
addresses); the edges on CPU 0, wrk and the backends on CPU 1; wrk (keep-alive)
loads one edge, then the next, alternating, so that all see the same machine state.
Three edges, each with the same 1,000 Ingress routes (svc<i>.bench.example):

  ingress only   nothing else;
  + HTTPRoutes   and a GatewayClass of ours, a Gateway, and 1,000 HTTPRoutes, each its
                 own host (gw<i>.bench.example, path prefix /) to svc<i>;
  + conditioned  the same HTTPRoutes, each match also asking for a header
                 (x-tenant: t<i>): one rule per route, in the frontends
                 bw_gateway_<shard>, which only those routes' requests reach (over
                 unix sockets), each request the frontend of its route's shard.

The measured route is the same plain Ingress route on all three: the ratios are what
Gateway API routes cost the routes that use no condition (rendering extra match
conditions only for the routes that use them should keep the first two alike).  The
HAProxy's CPU time per request is the steadier figure on a shared machine (steal time
is not the process's).  Then, informational: an HTTPRoute of each Gateway edge
requested (the conditioned one with its header).  Prints figures; never fails on a
ratio.

    .venv/bin/python bench/gateway_throughput.py [--routes 1000] [--rounds 7] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import StaticBackends, gateway, gateway_class, http_route, parse_wrk, wrk_command
from harness import HAProxy, endpoint_slice, ingress, service
from throughput import cpu_seconds, edge

EDGES = ("ingress only", "+ HTTPRoutes", "+ conditioned")


def gateway_objects(routes: int, conditioned: bool) -> list[dict[str, Any]]:
    """Our GatewayClass and Gateway, and ``routes`` HTTPRoutes (gw<i> to svc<i>), each
    asking for the header x-tenant: t<i> when ``conditioned``."""
    objects = [gateway_class(), gateway()]
    for index in range(routes):
        headers = {"x-tenant": f"t{index}"} if conditioned else None
        host = f"gw{index}.bench.example"
        objects.append(http_route("bench", f"gw{index}", host, f"svc{index}", headers=headers))
    return objects


def load(
    url: str, host: str, seconds: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """wrk as bench/common.wrk runs it, with ``headers`` besides the Host."""
    command = wrk_command(url, host, seconds)
    for name, value in (headers or {}).items():
        command[-1:-1] = ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def chain_rules(proxy: HAProxy) -> str:
    """The rules of conditioned matches in the edge's frontends: bw_public (which
    every request runs) and the bw_gateway_<shard> frontends (each of which only the
    conditioned requests of its shard run): their total, and the most one has."""
    config = Path(proxy.settings.config_file).read_text()

    def count(name: str) -> int:
        if f"frontend {name}\n" not in config:
            return 0
        text = config.split(f"frontend {name}\n", 1)[1].split("\nfrontend ", 1)[0]
        return sum("set-var(txn.bw_route) str(" in line for line in text.splitlines())

    shards = [count(f"bw_gateway_{digit}") for digit in "0123456789abcdef"]
    return (
        f"bw_public {count('bw_public')}, bw_gateway_* {sum(shards)} "
        f"(at most {max(shards)} in one of {sum(1 for n in shards if n)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-gateway-throughput-") as name:
        work = Path(name)
        # As bench/throughput.py: the edges on CPU 0, wrk and the backends on CPU 1.
        cpus = sorted(os.sched_getaffinity(0))
        edge_cpus, load_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (set(cpus),) * 2
        os.sched_setaffinity(0, load_cpus)
        backends = StaticBackends(work, 4)
        os.sched_setaffinity(0, edge_cpus)
        objects = []
        for index in range(args.routes):
            objects += [
                service("bench", f"svc{index}"),
                endpoint_slice("bench", f"svc{index}", backends.endpoints),
                ingress("bench", f"svc{index}", f"svc{index}.bench.example", f"svc{index}"),
            ]
        extras = {
            "ingress only": [],
            "+ HTTPRoutes": gateway_objects(args.routes, conditioned=False),
            "+ conditioned": gateway_objects(args.routes, conditioned=True),
        }
        proxies: dict[str, HAProxy] = {}
        try:
            for number, (label, extra) in enumerate(extras.items()):
                directory = work / f"edge{number}"
                directory.mkdir()
                proxies[label] = edge(directory, objects, extra)
            os.sched_setaffinity(0, load_cpus)
            time.sleep(1)
            rules = {label: chain_rules(proxy) for label, proxy in proxies.items()}
            host = f"svc{args.routes // 2}.bench.example"
            urls = {
                label: f"http://127.0.0.1:{proxy.http_port}/" for label, proxy in proxies.items()
            }
            pids = {label: proxy.process.pid for label, proxy in proxies.items() if proxy.process}
            figures: dict[str, list[float]] = {label: [] for label in EDGES}
            cost: dict[str, list[float]] = {label: [] for label in EDGES}  # CPU µs per request
            errors = dict.fromkeys(EDGES, 0)
            for url in urls.values():  # warm-up, not counted
                load(url, host, 5)
            for _round in range(args.rounds):
                for label in EDGES:
                    before = cpu_seconds(pids[label])
                    run = load(urls[label], host, args.seconds)
                    used = cpu_seconds(pids[label]) - before
                    figures[label].append(run["rps"])
                    cost[label].append(used * 1e6 / max(run["requests"], 1))
                    errors[label] += run["socket_errors"] + (run["non_2xx"] or 0)
            middle = args.routes // 2
            informational = {}
            for label, gateway_host, headers in (
                ("HTTPRoute (+ HTTPRoutes edge)", "+ HTTPRoutes", None),
                ("conditioned HTTPRoute, header sent", "+ conditioned", {"x-tenant": f"t{middle}"}),
            ):
                runs = []
                for _round in range(3):
                    before = cpu_seconds(pids[gateway_host])
                    run = load(
                        urls[gateway_host], f"gw{middle}.bench.example", args.seconds, headers
                    )
                    used = cpu_seconds(pids[gateway_host]) - before
                    run["cpu_us"] = used * 1e6 / max(run["requests"], 1)
                    runs.append(run)
                informational[label] = runs
        finally:
            for proxy in proxies.values():
                proxy.stop()
            backends.stop()
    print(
        f"{args.routes} Ingress routes, 4 servers each, on every edge; wrk 2 threads, 32"
        f" keep-alive connections; {args.rounds} alternated rounds of {args.seconds:g} s;"
        f" the edges on CPU {','.join(map(str, sorted(edge_cpus)))}, wrk and backends on CPU"
        f" {','.join(map(str, sorted(load_cpus)))}; the request: {host} (an Ingress route)"
    )
    for label in EDGES:
        values = figures[label]
        print(
            f"  {label:<14} median {statistics.median(values):>7.0f} req/s"
            f" (rounds: {', '.join(f'{v:.0f}' for v in values)}; errors {errors[label]};"
            f" conditioned-match rules: {rules[label]})"
        )
    for label in EDGES:
        values = cost[label]
        print(
            f"  {label:<14} median {statistics.median(values):>6.1f} CPU µs per request"
            f" (rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )
    base_cost, base_rps = statistics.median(cost["ingress only"]), figures["ingress only"]
    for label in EDGES[1:]:
        # Each round's runs were back to back: their ratio is free of the machine's drift.
        ratios = [g / p for g, p in zip(figures[label], base_rps, strict=True)]
        print(
            f"  {label}: CPU per request, ingress only / this (a throughput ratio):"
            f" {base_cost / statistics.median(cost[label]):.3f}; req/s, this / ingress only:"
            f" median of rounds {statistics.median(ratios):.3f}"
            f" (rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    for label, runs in informational.items():
        middle_run = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        spent = statistics.median(run["cpu_us"] for run in runs)
        failed = sum(run["socket_errors"] + (run["non_2xx"] or 0) for run in runs)
        print(
            f"  {label:<36} {middle_run['rps']:>7.0f} req/s, {spent:.1f} CPU µs per request"
            f" (median of 3; errors {failed})"
        )


if __name__ == "__main__":
    main()
