"""What the benchmarks share: real daemons on loopback, a kept etcd client, statistics.

The daemons are the test harness's (tests/integration/harness.py): Debian's etcd,
HAProxy and Varnish started as plain processes on free loopback ports.
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

import aetcd  # noqa: E402
from harness import Etcd, free_port  # noqa: E402

from breakwater.lab import storage_key, storage_value  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the second largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.1f}, p99 {percentile(values, 0.99):.1f},"
        f" max {max(values):.1f}"
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> float:
    """Seconds until predicate() is true, polling as fast as a client would."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the edge did not converge")
    return time.perf_counter() - start


GATEWAY_API = "gateway.networking.k8s.io/v1"
CREATED = "2026-01-01T00:00:00Z"
GATEWAY_CLASS = "breakwater"  # spec.controllerName: catalog.gateway_controller_name's default
GATEWAY = ("infra", "edge")  # (namespace, name) of the benches' one Gateway


def encoding(obj: dict[str, Any]) -> str:
    """How the API server stores ``obj``: a custom resource (the Gateway API's) as
    JSON, the built-in kinds as protobuf."""
    return "json" if str(obj.get("apiVersion", "")).startswith("gateway.") else "protobuf"


def gateway_class() -> dict[str, Any]:
    """The GatewayClass of the edge's controller (cluster-scoped)."""
    return {
        "kind": "GatewayClass",
        "apiVersion": GATEWAY_API,
        "metadata": {"name": GATEWAY_CLASS, "creationTimestamp": CREATED},
        "spec": {"controllerName": "breakwater.io/edge"},
    }


def gateway() -> dict[str, Any]:
    """The Gateway of that class: one HTTP listener on port 80 taking HTTPRoutes from
    every namespace."""
    namespace, name = GATEWAY
    listener = {
        "name": "http",
        "port": 80,
        "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": "All"}},
    }
    return {
        "kind": "Gateway",
        "apiVersion": GATEWAY_API,
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": CREATED},
        "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [listener]},
    }


def http_route(
    namespace: str,
    name: str,
    host: str,
    service: str,
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTPRoute attached to the Gateway: ``host``, one rule (a path prefix, and an
    exact match of each of ``headers``) sending to port 80 of ``service``."""
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": path}}
    if headers:
        match["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
    return {
        "kind": "HTTPRoute",
        "apiVersion": GATEWAY_API,
        "metadata": {
            "namespace": namespace,
            "name": name,
            "creationTimestamp": CREATED,
        },
        "spec": {
            "parentRefs": [{"name": GATEWAY[1], "namespace": GATEWAY[0]}],
            "hostnames": [host],
            "rules": [{"matches": [match], "backendRefs": [{"name": service, "port": 80}]}],
        },
    }


class Writer:
    """One etcd client kept open, as the API server keeps its own: a write is one RPC."""

    def __init__(self, etcd: Etcd) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = aetcd.Client("127.0.0.1", etcd.client_port, timeout=30)
        self.loop.run_until_complete(self.client.connect())

    def put(self, obj: dict[str, Any]) -> None:
        self.loop.run_until_complete(
            self.client.put(storage_key(obj).encode(), storage_value(obj, encoding(obj)))
        )

    def put_all(self, objects: list[dict[str, Any]]) -> None:
        async def go() -> None:
            for obj in objects:
                await self.client.put(storage_key(obj).encode(), storage_value(obj, encoding(obj)))

        self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


class StaticBackends:
    """Fast HTTP servers for load tests: one HAProxy answering 200 on N addresses.

    Python's http.server would be the bottleneck under wrk; HAProxy's own
    ``http-request return`` answers from memory, so the edge is what is measured.
    """

    def __init__(self, directory: Path, count: int, body_size: int = 64) -> None:
        self.port = free_port()
        self.addresses = [f"127.0.0.{40 + i}" for i in range(count)]
        body = "x" * (body_size - 1)
        lines = [
            "global",
            "    maxconn 4000",
            "defaults",
            "    mode http",
            "    timeout connect 5s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout http-keep-alive 60s",
        ]
        for index, address in enumerate(self.addresses):
            lines += [
                f"frontend b{index}",
                f"    bind {address}:{self.port}",
                "    http-request return status 200 content-type text/plain"
                f' string "b{index} {body}"',
            ]
        self.config = directory / "backends.cfg"
        self.config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(["haproxy", "-f", str(self.config)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.addresses[-1], self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(address, self.port) for address in self.addresses]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def wrk_command(
    url: str, host: str, seconds: float, connections: int = 32, threads: int = 2
) -> list[str]:
    """wrk with keep-alive connections, counting every non-2xx response (its Lua script)."""
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-H",
        f"Host: {host}",
        "-s",
        str(ROOT / "bench" / "count_status.lua"),
        url,
    ]


def wrk(url: str, host: str, seconds: float, connections: int = 32, threads: int = 2) -> dict:
    """Run wrk with keep-alive connections; count every non-2xx response and error."""
    command = wrk_command(url, host, seconds, connections, threads)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> dict:
    figures: dict[str, Any] = {"output": output}
    match = re.search(r"(\d+) requests in", output)
    figures["requests"] = int(match[1]) if match else 0
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    figures["rps"] = float(match[1]) if match else 0.0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    figures["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    figures["socket_errors_detail"] = errors[0] if errors else "none"
    match = re.search(r"non-2xx (\d+)", output)  # counted by count_status.lua
    figures["non_2xx"] = int(match[1]) if match else None
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    if match:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
        figures["p99_ms"] = float(match[1]) * scale
    return figures
