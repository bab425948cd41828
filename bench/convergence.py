#!/usr/bin/env python3
"""Convergence: from the etcd write to the first request served by the new state.

Real etcd, real HAProxy (master-worker) and the watcher as a subprocess, on loopback.
Five kinds of change, each repeated, at 10 and 1,000 routes: an endpoint added and an
endpoint removed (one loop, alternating); a route to an existing Service (route maps
at runtime); a route to a new Service (a spare backend section; its Service and
EndpointSlice written first, the clock starts at the Ingress); a route with a new TLS
certificate (loaded at runtime; the clock starts at the Secret, written before the
Ingress; served means the handshake with SNI presents that certificate and the request
over it answers 200).  One TLS route is there from the start: the HTTPS bind and the
default certificate (Secret bench/aaa-default, which sorts first).  The reloads column
counts HAProxy's reloads (the master's counter) during each kind's loop and the 3 s
after it, so that a reload the loop made due later (spares renamed) counts with it;
the two endpoint rows share their loop and their count.  Their causes (the watcher's
metrics and log lines) follow the table.

Then the Gateway API (its objects written only now, so that the rows above are what
they were before it): our GatewayClass and a Gateway (one HTTP listener, routes from
every namespace), written with HTTPRoutes that keep two Services routed, gwa (backend
b1) and gwb (b2), and two HTTPRoutes whose backendRef the loops below change (blue and
green, the other pair, are b1 and b2 too).  A
Gateway of ours makes every build of the catalog a full one (catalog.build: no build
grows from the last), so the Ingress row "route, same Service" is measured again
beside it ("... (Gateway)").  Then: a new HTTPRoute (host and path /x, to svc0, which
is served); an HTTPRoute's backendRef changed between gwa and gwb (both routed by other
HTTPRoutes: a map value changes); changed between blue and green, each routed by this
HTTPRoute only (the new one takes a spare backend section, the old one leaves its
own); a new HTTPRoute whose match also asks for a header (the frontend's rules change:
a reload each, so fewer of them, --conditioned; served means a request with the header
is answered by svc0's backend).  Every endpoint of every Service is one of the three
local backends: no request goes anywhere else.  Prints medians and p99s; never fails on
a time.

    .venv/bin/python bench/convergence.py [--changes 200] [--conditioned 50]
        [--routes 10 1000]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import re
import socket
import ssl
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from common import Writer, gateway, gateway_class, http_route, percentile, wait_until
from cryptography import x509
from cryptography.x509.oid import NameOID
from harness import (  # common put tests/ on the path: builders comes with harness
    Backend,
    Etcd,
    HAProxy,
    WatcherProcess,
    builders,
    endpoint_slice,
    haproxy_settings,
    http_get,
    ingress,
    service,
    watcher_config,
)

CREATED = "2026-01-01T00:00:00Z"
SETTLE = 3.0  # seconds after a kind's loop before its reloads are counted
KINDS = (
    "endpoint added",
    "endpoint removed",
    "route, same Service",
    "route, new Service",
    "new certificate",
    "route, same Service (Gateway)",
    "new HTTPRoute",
    "HTTPRoute backend change",
    "HTTPRoute backend, unrouted Service",
    "new HTTPRoute, header match (reload)",
)
WIDTH = max(len(kind) for kind in KINDS)
# The watcher's log line of a reload: "INFO breakwater.watcher: reload (<cause>): ..."
RELOAD_LINE = re.compile(r"^\w+ [\w.]+: reload(?: \(([\w-]+)\))?: ", re.MULTILINE)


def tls_secret(namespace: str, name: str, host: str) -> dict[str, Any]:
    """A kubernetes.io/tls Secret holding a fresh certificate for ``host``."""
    crt, key = builders.self_signed(host)
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": CREATED},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


_CLIENT = ssl.create_default_context()
_CLIENT.check_hostname = False
_CLIENT.verify_mode = ssl.CERT_NONE  # self-signed: the names are checked below
_NAMES: dict[bytes, frozenset[str]] = {}


def certificate_names(der: bytes) -> frozenset[str]:
    """The subject CN and DNS SANs of a DER certificate."""
    if der not in _NAMES:
        certificate = x509.load_der_x509_certificate(der)
        names = {a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names |= set(san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            pass
        _NAMES[der] = frozenset(str(n) for n in names)
    return _NAMES[der]


def https_get(port: int, host: str, timeout: float = 5.0) -> tuple[int, frozenset[str]]:
    """A new TLS connection with SNI ``host``: the status of GET / and the names of the
    certificate HAProxy presented."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout) as raw,
        _CLIENT.wrap_socket(raw, server_hostname=host) as tls,
    ):
        names = certificate_names(tls.getpeercert(binary_form=True) or b"")
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        response.read()
        return response.status, names


def served_tls(port: int, host: str) -> bool:
    status, names = https_get(port, host)
    return status == 200 and host in names


def http_get_with(
    port: int, host: str, path: str, headers: dict[str, str], timeout: float = 5.0
) -> tuple[int, str]:
    """GET ``path`` from ``host`` with ``headers`` too: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host, **headers})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def reload_causes(log: str) -> Counter[str]:
    """Reloads by cause, from the watcher's log lines ("reload (<cause>): ...")."""
    return Counter(m[1] or "(no cause logged)" for m in RELOAD_LINE.finditer(log))


_RELOADS_METRIC = re.compile(
    r'^breakwater_haproxy_reloads_total\{cause="([^"]+)"\} (\S+)$', re.MULTILINE
)


def metric_reloads(watcher: WatcherProcess) -> Counter[str]:
    """The watcher's own count of reloads by cause (its /metrics), which also names the
    cause of a reload its log line leaves without one (a deferred file write's)."""
    listen = yaml.safe_load(watcher.config_path.read_text())["watcher"]["metrics_listen"]
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
        text = response.read().decode()
    return Counter({m[1]: int(float(m[2])) for m in _RELOADS_METRIC.finditer(text)})


def run(
    routes: int, changes: int, conditioned: int, work: Path
) -> tuple[dict[str, list[float]], dict[str, Any]]:
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
    # One TLS route from the start: the HTTPS bind, and the default certificate (the
    # crt-list's first entry: bench_aaa-default sorts before every bench_tls-N).
    default_host = "default.bench.example"
    objects += [
        tls_secret("bench", "aaa-default", default_host),
        ingress("bench", "aaa-default", default_host, "svc0", tls_secret="aaa-default"),
    ]
    writer = Writer(etcd)
    writer.put_all(objects)
    watcher = WatcherProcess(watcher_config(work, etcd, proxy), work / "watcher.log")
    watcher.start()
    figures: dict[str, list[float]] = {kind: [] for kind in KINDS}
    reloads: dict[str, Any] = {}

    def counted(kinds: tuple[str, ...], loop: Any) -> None:
        """Run ``loop``, then count the reloads it made, and their causes (the watcher's
        metrics, and its log lines)."""
        before, logged, metric = (
            proxy.processes().reloads,
            len(watcher.log()),
            metric_reloads(watcher),
        )
        loop()
        time.sleep(SETTLE)
        count = proxy.processes().reloads - before
        causes = metric_reloads(watcher) - metric, reload_causes(watcher.log()[logged:])
        for kind in kinds:
            reloads[kind] = (count, causes)

    try:
        wait_until(lambda: http_get(proxy.http_port, "svc0.bench.example")[0] == 200, 120)
        wait_until(lambda: served_tls(proxy.https_port, default_host), 60)
        time.sleep(SETTLE)  # the start's own file writes and reloads are over
        host = "svc0.bench.example"
        both = endpoint_slice("bench", "svc0", [servers[0].endpoint, servers[1].endpoint])
        one = endpoint_slice("bench", "svc0", [servers[0].endpoint])

        def endpoints() -> None:
            for _ in range(changes):
                start = time.perf_counter()
                writer.put(both)
                wait_until(
                    lambda: any(
                        http_get(proxy.http_port, host)[1].startswith("b1 ") for _ in range(2)
                    )
                )
                figures["endpoint added"].append(time.perf_counter() - start)
                start = time.perf_counter()
                writer.put(one)
                wait_until(
                    lambda: all(
                        http_get(proxy.http_port, host)[1].startswith("b0 ") for _ in range(4)
                    )
                )
                figures["endpoint removed"].append(time.perf_counter() - start)

        def same_service(kind: str = "route, same Service", prefix: str = "new") -> None:
            for index in range(changes):
                name = f"{prefix}{index}"
                new = ingress("bench", name, f"{name}.bench.example", "svc0")
                start = time.perf_counter()
                writer.put(new)
                wait_until(lambda n=name: http_get(proxy.http_port, f"{n}.bench.example")[0] == 200)
                figures[kind].append(time.perf_counter() - start)

        def new_service() -> None:
            for index in range(changes):
                name = f"fresh{index}"
                writer.put(service("bench", name))
                writer.put(endpoint_slice("bench", name, [servers[index % 3].endpoint]))
                time.sleep(0.05)  # their (empty) sync is over: the Ingress alone is timed
                start = time.perf_counter()
                writer.put(ingress("bench", name, f"{name}.bench.example", name))
                wait_until(lambda n=name: http_get(proxy.http_port, f"{n}.bench.example")[0] == 200)
                figures["route, new Service"].append(time.perf_counter() - start)

        def new_certificate() -> None:
            for index in range(changes):
                name, tls_host = f"tls-{index:04d}", f"newtls{index}.bench.example"
                secret = tls_secret("bench", name, tls_host)  # made before the clock
                route = ingress("bench", name, tls_host, "svc0", tls_secret=name)
                start = time.perf_counter()  # from the first of the two writes
                writer.put(secret)
                writer.put(route)
                wait_until(lambda h=tls_host: served_tls(proxy.https_port, h))
                figures["new certificate"].append(time.perf_counter() - start)

        counted(("endpoint added", "endpoint removed"), endpoints)
        counted(("route, same Service",), same_service)
        counted(("route, new Service",), new_service)
        counted(("new certificate",), new_certificate)

        # The Gateway API from here on (see the module).
        def answer(route_host: str, headers: dict[str, str] | None = None) -> str:
            """The body of GET /x on ``route_host``: "<backend> /x" when a backend answers."""
            return http_get_with(proxy.http_port, route_host, "/x", headers or {})[1]

        writer.put_all(
            [
                service("bench", "gwa"),
                endpoint_slice("bench", "gwa", [servers[1].endpoint]),
                service("bench", "gwb"),
                endpoint_slice("bench", "gwb", [servers[2].endpoint]),
                service("bench", "blue"),
                endpoint_slice("bench", "blue", [servers[1].endpoint]),
                service("bench", "green"),
                endpoint_slice("bench", "green", [servers[2].endpoint]),
                gateway_class(),
                gateway(),
                http_route("bench", "gwa", "gwa.bench.example", "gwa"),
                http_route("bench", "gwb", "gwb.bench.example", "gwb"),
                http_route("bench", "switch", "switch.bench.example", "gwa", path="/x"),
                http_route("bench", "bluegreen", "bluegreen.bench.example", "blue", path="/x"),
            ]
        )
        wait_until(lambda: http_get(proxy.http_port, "gwb.bench.example")[0] == 200, 60)
        for route_host in ("switch.bench.example", "bluegreen.bench.example"):
            wait_until(lambda h=route_host: answer(h).startswith("b1 "))
        time.sleep(SETTLE)

        def new_http_route() -> None:
            for index in range(changes):
                route_host = f"gw{index}.bench.example"
                route = http_route("bench", f"gw{index}", route_host, "svc0", path="/x")
                start = time.perf_counter()
                writer.put(route)
                wait_until(lambda h=route_host: answer(h).startswith("b0 "))
                figures["new HTTPRoute"].append(time.perf_counter() - start)

        def backend_change(kind: str, name: str, services: tuple[str, str]) -> None:
            """The HTTPRoute ``name`` sent to the other of ``services`` each time: the
            first is served by b1, the second by b2."""
            route_host = f"{name}.bench.example"
            for index in range(changes):
                to = (index + 1) % 2
                route = http_route("bench", name, route_host, services[to], path="/x")
                start = time.perf_counter()
                writer.put(route)
                wait_until(lambda a=f"b{to + 1} ": answer(route_host).startswith(a))
                figures[kind].append(time.perf_counter() - start)

        def header_match() -> None:
            kind = "new HTTPRoute, header match (reload)"
            for index in range(conditioned):
                route_host = f"hdr{index}.bench.example"
                route = http_route(
                    "bench", f"hdr{index}", route_host, "svc0", "/x", headers={"x-bench": "on"}
                )
                start = time.perf_counter()
                writer.put(route)
                wait_until(lambda h=route_host: answer(h, {"X-Bench": "on"}).startswith("b0 "))
                figures[kind].append(time.perf_counter() - start)

        counted(
            ("route, same Service (Gateway)",),
            lambda: same_service("route, same Service (Gateway)", "gwon"),
        )
        counted(("new HTTPRoute",), new_http_route)
        counted(
            ("HTTPRoute backend change",),
            lambda: backend_change("HTTPRoute backend change", "switch", ("gwa", "gwb")),
        )
        counted(
            ("HTTPRoute backend, unrouted Service",),
            lambda: backend_change(
                "HTTPRoute backend, unrouted Service", "bluegreen", ("blue", "green")
            ),
        )
        counted(("new HTTPRoute, header match (reload)",), header_match)
    finally:
        writer.close()
        watcher.stop()
        proxy.stop()
        etcd.stop()
        for server in servers:
            server.close()
    return figures, reloads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument(
        "--conditioned", type=int, default=50, help="new HTTPRoutes with a header match"
    )
    parser.add_argument("--routes", type=int, nargs="+", default=[10, 1000])
    args = parser.parse_args()
    print(
        f"{'routes':>7} {'change':<{WIDTH}} {'n':>4} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}"
        f" {'reloads':>8}"
    )
    notes = []
    for routes in args.routes:
        with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
            figures, reloads = run(routes, args.changes, args.conditioned, Path(work))
        for change, values in figures.items():
            ms = [v * 1000 for v in values]
            count, causes = reloads[change]
            print(
                f"{routes:>7} {change:<{WIDTH}} {len(ms):>4} {statistics.median(ms):>10.1f}"
                f" {percentile(ms, 0.99):>8.1f} {max(ms):>8.1f} {count:>8}"
            )
            if count or any(causes):
                counted, logged = (
                    ", ".join(f"{c} {n}" for c, n in sorted(by.items())) or "none" for by in causes
                )
                note = f"  {routes} routes, {change}: reload causes {counted} (log lines: {logged})"
                if note not in notes:
                    notes.append(note)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
