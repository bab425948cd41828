#!/usr/bin/env python3
"""Throughput: the generated configuration against a minimal hand-written one.

Both HAProxy processes run side by side on loopback, in front of the same backends
(one HAProxy answering 200 from memory on four addresses), with the same number of
routes (host map entries) and the same logging.  wrk (keep-alive) loads one, then
the other, alternating, so that both see the same machine state.  The generated
configuration is the watcher's own: a catalog built from Kubernetes objects and
applied by HAProxyTarget, exactly as the watcher does it.  Prints figures; never
fails on a ratio.

The generated configuration also holds what other routes use (docs/traffic.md): a
route ConfigMap per traffic feature, a canary (a frontend rule every request passes),
and a TLS certificate; the measured route is a plain one, so the ratio is what plain
routes pay for them.  Then, informational: a route with features, and HTTP/2 on the
TLS bind (h2load) against HTTP/1.1 on it (wrk).

    .venv/bin/python bench/throughput.py [--routes 1000] [--rounds 7] [--seconds 8]
        [--no-features]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import StaticBackends, wrk
from harness import HAProxy, endpoint_slice, free_port, haproxy_settings, ingress, service

from breakwater.catalog import CatalogSettings, build_catalog
from breakwater.targets.haproxy import HAProxyTarget

LOG_TARGET = "127.0.0.1:5514"  # syslog over UDP: sent and dropped, in both configurations


def hand_written(
    directory: Path, routes: int, servers: list[tuple[str, int]], tls: bool = False
) -> Path:
    """What an operator writes by hand: one host map, one backend per service (and,
    for an edge that also serves TLS, the X-Forwarded-Proto rule that goes with it)."""
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
        *(["    http-request set-header X-Forwarded-Proto https if { ssl_fc }"] if tls else []),
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


# One route ConfigMap per set of route features and backend options (docs/traffic.md),
# each for its own Service and host: rendered beside the plain routes, never requested
# but for the one measured as "route with features".
FEATURES: list[dict[str, str]] = [
    {
        "rate-limit-rps": "1000000",
        "rate-limit-connections": "100000",
        "hsts": "true",
        "cors": "true",
        "max-body-size": "10m",
    },
    {"allow-sources": "127.0.0.0/8 10.0.0.0/8", "deny-sources": "192.0.2.0/24"},
    {"redirect-to": "https://elsewhere.example/", "redirect-code": "301"},
    {"app-root": "/app"},
    {"paths": "/api", "rewrite-target": "/"},
    {"rewrite-regex": "^/v1/(.*)", "rewrite-target": "/\\1"},
    {"canary-service": "svc1", "canary-weight": "10", "canary-header": "X-Canary"},
    {"canary-service": "svc2", "canary-cookie": "canary"},
    {"sticky-cookie": "BWID", "sticky-cookie-ttl": "1h"},
    {"retries": "2", "retry-on": "conn-failure 503", "timeout-tunnel": "1h"},
    {"error-pages": "errors", "hsts": "true", "hsts-include-subdomains": "true"},
]


def featured_objects(endpoints: list[tuple[str, int]]) -> list[dict[str, Any]]:
    # tests/ is on the path once common is imported (above).
    from builders import meta, route_configmap

    objects: list[dict[str, Any]] = [
        {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": meta("bench", "errors"),
            "data": {"503": "<h1>Back soon</h1>", "404": "<h1>Not here</h1>"},
        },
    ]
    for index, data in enumerate(FEATURES):
        name = f"feat{index}"
        objects += [
            service("bench", name),
            endpoint_slice("bench", name, endpoints),
            route_configmap("bench", name, {"hosts": f"{name}.bench.example", **data}),
        ]
    return objects


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of ``pid`` and its children, from /proc: what the
    process spent, whatever the machine's other tenants took from it (steal time)."""
    total = 0.0
    pids, seen = [pid], set()
    while pids:
        current = pids.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(child) for child in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


def edge(directory: Path, objects: list[dict[str, Any]], extra: list[dict[str, Any]]) -> HAProxy:
    """A generated edge: the watcher's configuration of ``objects`` and ``extra``,
    applied as the watcher applies it, by HAProxyTarget."""
    settings = dataclasses.replace(haproxy_settings(directory), log_target=LOG_TARGET, maxconn=4000)
    proxy = HAProxy(directory, settings)
    proxy.start()
    # The load servers listen on loopback addresses, which the edge refuses by default.
    catalog = build_catalog(objects + extra, CatalogSettings(allow_special_addresses=True))
    assert not catalog.rejected, catalog.rejected
    target = HAProxyTarget(settings)
    result = asyncio.run(target.apply(catalog))
    assert result.action == "reload", result
    asyncio.run(target.close())
    return proxy


def tls_objects() -> list[dict[str, Any]]:
    """A certificate for www.example.com (a route to svc0): the TLS bind, in both
    generated edges."""
    from builders import ingress as ingress_with
    from builders import tls_secret

    return [
        tls_secret("bench", "www-tls"),
        ingress_with(
            "bench",
            "tls",
            [("www.example.com", "/", "Prefix", "svc0")],
            tls=[{"hosts": ["www.example.com"], "secretName": "www-tls"}],
        ),
    ]


def h2load(url: str, authority: str, seconds: float, streams: int) -> dict[str, Any]:
    """h2load (nghttp2) over TLS: 32 connections, ``streams`` concurrent on each."""
    command = ["h2load", "-t2", "-c32", f"-m{streams}", f"-D{max(1, round(seconds))}"]
    command += ["-H", f":authority: {authority}", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output)
    done = re.search(r"requests: .* (\d+) succeeded, (\d+) failed, (\d+) errored", output)
    protocol = re.search(r"Application protocol: (\S+)", output)
    return {
        "rps": float(rps[1]) if rps else 0.0,
        "errors": int(done[2]) + int(done[3]) if done else -1,
        "protocol": protocol[1] if protocol else "none",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--no-features", action="store_true", help="plain routes only, as before #16"
    )
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
        objects = []
        for index in range(args.routes):
            objects += [
                service("bench", f"svc{index}"),
                endpoint_slice("bench", f"svc{index}", backends.endpoints),
                ingress("bench", f"svc{index}", f"svc{index}.bench.example", f"svc{index}"),
            ]
        if not args.no_features:
            objects += tls_objects()
        generated = edge(
            directory, objects, [] if args.no_features else featured_objects(backends.endpoints)
        )
        # Beside it, the same routes without the features: the two generated files side
        # by side say what the features cost plain routes, free of the hand-written
        # file's other differences.
        plain = None
        if not args.no_features:
            (work / "plain").mkdir()
            plain = edge(work / "plain", objects, [])
        hand_config = hand_written(work, args.routes, backends.endpoints, not args.no_features)
        hand_port = int(hand_config.read_text().split("bind 127.0.0.1:")[1].split()[0])
        hand = subprocess.Popen(["haproxy", "-f", str(hand_config)])
        os.sched_setaffinity(0, load_cpus)
        time.sleep(1)
        host = f"svc{args.routes // 2}.bench.example"
        urls = {
            "generated": f"http://127.0.0.1:{generated.http_port}/",
            "hand-written": f"http://127.0.0.1:{hand_port}/",
        }
        if plain is not None:
            urls["no features"] = f"http://127.0.0.1:{plain.http_port}/"
        pids = {"generated": generated.process.pid, "hand-written": hand.pid}  # type: ignore[union-attr]
        if plain is not None:
            pids["no features"] = plain.process.pid  # type: ignore[union-attr]
        figures: dict[str, list[float]] = {name: [] for name in urls}
        cost: dict[str, list[float]] = {name: [] for name in urls}  # CPU µs per request
        errors = {name: 0 for name in urls}
        extra: dict[str, dict[str, Any]] = {}
        try:
            for url in urls.values():  # warm-up, not counted
                wrk(url, host, 5)
            for _round in range(args.rounds):
                for name, url in urls.items():
                    before = cpu_seconds(pids[name])
                    run = wrk(url, host, args.seconds)
                    used = cpu_seconds(pids[name]) - before
                    figures[name].append(run["rps"])
                    cost[name].append(used * 1e6 / max(run["requests"], 1))
                    errors[name] += run["socket_errors"] + (run["non_2xx"] or 0)
            if not args.no_features:
                extra = informational(generated, host, args.seconds)
        finally:
            hand.terminate()
            hand.wait(10)
            generated.stop()
            if plain is not None:
                plain.stop()
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
    # Throughput swings with what the machine's other tenants take; the CPU the edge
    # spent per request does not (steal time is not the process's), so it is printed
    # too, and its ratio is the steadier figure.
    for name, values in cost.items():
        print(
            f"  {name:<12} median {statistics.median(values):>6.1f} CPU µs per request"
            f" (rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )
    print(
        "  CPU per request, hand-written / generated (a throughput ratio):"
        f" {statistics.median(cost['hand-written']) / statistics.median(cost['generated']):.3f}"
    )
    if "no features" in cost:
        print(
            "  CPU per request, without features / with them:"
            f" {statistics.median(cost['no features']) / statistics.median(cost['generated']):.3f}"
        )
    if "no features" in figures:
        alone = figures["no features"]
        pairs = [g / p for g, p in zip(generated, alone, strict=True)]
        print(
            "  ratio generated / the same without features: median of rounds"
            f" {statistics.median(pairs):.3f} (rounds: {', '.join(f'{r:.3f}' for r in pairs)})"
        )
    if args.no_features:
        print("  (plain routes only: --no-features)")
    else:
        print(
            f"  the generated configuration also holds {len(FEATURES)} routes with features"
            " (two of them canaries: frontend rules); both generated ones serve TLS too,"
            " and the hand-written one has the X-Forwarded-Proto rule that goes with it"
        )
    for name, run in extra.items():
        protocol = f", {run['protocol']}" if "protocol" in run else ""
        print(f"  {name:<36} {run['rps']:>7.0f} req/s (errors {run['errors']}{protocol})")


def informational(generated: HAProxy, plain_host: str, seconds: float) -> dict[str, Any]:
    """The generated edge alone: a plain route and a route with features over HTTP/1.1,
    then the TLS bind with HTTP/1.1 (wrk) and HTTP/2 (h2load), a median of three each."""
    plain = f"http://127.0.0.1:{generated.http_port}/"
    tls = f"https://127.0.0.1:{generated.https_port}/"
    runs: dict[str, list[dict[str, Any]]] = {}
    for _round in range(3):
        for name, url, host in (
            ("http/1.1, plain route", plain, plain_host),
            ("http/1.1, route with features", plain, "feat0.bench.example"),
            ("tls http/1.1 (wrk)", tls, "www.example.com"),
        ):
            run = wrk(url, host, seconds)
            runs.setdefault(name, []).append(
                {"rps": run["rps"], "errors": run["socket_errors"] + (run["non_2xx"] or 0)}
            )
        for streams in (1, 10):
            name = f"tls h2 (h2load, {streams} stream{'s' * (streams > 1)}/conn)"
            runs.setdefault(name, []).append(h2load(tls, "www.example.com", seconds, streams))
    result = {}
    for name, values in runs.items():
        middle = sorted(values, key=lambda run: run["rps"])[len(values) // 2]
        result[name] = {**middle, "errors": sum(run["errors"] for run in values)}
    return result


if __name__ == "__main__":
    main()
