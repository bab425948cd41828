"""Fixtures that start the real daemons on loopback: etcd, HAProxy, HTTP backends, the watcher."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aetcd
import builders
import pytest
import yaml

from breakwater.catalog import Catalog
from breakwater.lab import storage_key, storage_value
from breakwater.render.haproxy import render_shaped
from breakwater.render.vcl import render_vcl
from breakwater.targets.haproxy_api import parse_show_proc
from breakwater.targets.settings import HAProxySettings, VarnishSettings

pytestmark = pytest.mark.integration

for binary in ("etcd", "haproxy", "openssl"):
    if shutil.which(binary) is None and not os.path.exists(f"/usr/sbin/{binary}"):
        raise RuntimeError(f"{binary} is not installed: run .ci/run or apt-get install it")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never one handed out before in this run.  Ports
    asked for one after the other (an edge's binds) must differ: HAProxy binds with
    SO_REUSEPORT, so two of its frontends given one port both start and share the
    connections (a CI run once sent a test's requests to the monitor frontend)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


# --- etcd ------------------------------------------------------------------------------


@dataclass
class Etcd:
    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    tls: dict[str, str] | None = None
    # A plaintext /metrics listener of its own (--listen-metrics-urls); None: none.
    metrics_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    def watch_counts(self) -> tuple[int, int]:
        """(watch streams, watchers) etcd holds now, from its /metrics."""
        assert self.metrics_port is not None, "start it with a metrics_port"
        return watch_counts(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def start(self) -> None:
        command = [
            "etcd",
            "--name=test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.endpoint}",
            f"--advertise-client-urls={self.endpoint}",
            f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{self.peer_port}",
            "--log-level=error",
        ]
        if self.metrics_port is not None:
            command.append(f"--listen-metrics-urls=http://127.0.0.1:{self.metrics_port}")
        if self.tls:
            command += [
                "--client-cert-auth",
                f"--trusted-ca-file={self.tls['ca']}",
                f"--cert-file={self.tls['server_cert']}",
                f"--key-file={self.tls['server_key']}",
            ]
        log = open(self.data_dir.parent / "etcd.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        if not self.tls:
            wait_for(lambda: self.run(self.status()), what="etcd to answer")
        else:
            wait_for(lambda: _port_open(self.client_port), what="etcd TLS port")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    async def status(self) -> bool:
        async with aetcd.Client("127.0.0.1", self.client_port, timeout=2) as client:
            await client.status()
        return True

    def put(self, key: str, value: bytes) -> int:
        async def go() -> int:
            async with aetcd.Client("127.0.0.1", self.client_port, timeout=5) as client:
                result = await client.put(key.encode(), value)
                return int(result.header.revision)

        return int(self.run(go()))

    def delete(self, key: str) -> None:
        async def go() -> None:
            async with aetcd.Client("127.0.0.1", self.client_port, timeout=5) as client:
                await client.delete(key.encode())

        self.run(go())

    def compact(self, revision: int) -> None:
        async def go() -> None:
            async with aetcd.Client("127.0.0.1", self.client_port, timeout=5) as client:
                await client.compact(revision, physical=True)

        self.run(go())


def watch_counts(metrics_url: str) -> tuple[int, int]:
    """etcd's gauges of open watch streams and of watchers on them, from /metrics."""
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    counts = dict(
        re.findall(r"^etcd_debugging_mvcc_(watch_stream|watcher)_total (\S+)$", text, re.M)
    )
    return int(float(counts["watch_stream"])), int(float(counts["watcher"]))


@dataclass
class EtcdProxy:
    """etcd's own gRPC proxy (``etcd grpc-proxy start``) in front of ``etcd``: its
    client side with the edge's certificate (``tls``: ``ca``, ``client_cert``,
    ``client_key``), its listener in plaintext or, with ``listen_tls`` (``ca``,
    ``server_cert``, ``server_key``), TLS requiring a client certificate of that CA."""

    directory: Path
    etcd: Etcd
    tls: dict[str, str] | None = None
    listen_tls: dict[str, str] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.listen_tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            "etcd",
            "grpc-proxy",
            "start",
            f"--endpoints={self.etcd.endpoint}",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--data-dir={self.directory / 'data'}",
        ]
        if self.tls:
            command += [
                f"--cacert={self.tls['ca']}",
                f"--cert={self.tls['client_cert']}",
                f"--key={self.tls['client_key']}",
            ]
        if self.listen_tls:
            command += [
                f"--trusted-ca-file={self.listen_tls['ca']}",
                f"--cert-file={self.listen_tls['server_cert']}",
                f"--key-file={self.listen_tls['server_key']}",
            ]
        return command

    def start(self) -> None:
        self.directory.mkdir(exist_ok=True)
        log = open(self.directory / "proxy.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log)
        wait_for(lambda: _port_open(self.port), what="etcd grpc-proxy to listen")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd(tmp_path / "etcd")
    server.start()
    yield server
    server.stop(signal.SIGKILL)


# --- Kubernetes objects, stored as the API server stores them ------------------------------


def service(namespace: str, name: str, node_port: int | None = None) -> dict[str, Any]:
    return builders.service(namespace, name, node_port=node_port)


def endpoint_slice(
    namespace: str, service_name: str, servers: list[tuple[str, int]]
) -> dict[str, Any]:
    """A Service's EndpointSlice with every server ready (one port for all of them)."""
    ports = sorted({port for _, port in servers}) or [8080]
    assert len(ports) == 1, "an EndpointSlice port applies to all its endpoints"
    endpoints = [(address, dict(builders.READY)) for address, _ in servers]
    return builders.endpoint_slice(namespace, service_name, endpoints, port=ports[0])


def ingress(
    namespace: str,
    name: str,
    host: str,
    service_name: str,
    path: str = "/",
    path_type: str = "Prefix",
    annotations: dict[str, str] | None = None,
    tls_secret: str | None = None,
) -> dict[str, Any]:
    """An Ingress with one rule (host, path -> service port "http")."""
    tls = [{"hosts": [host], "secretName": tls_secret}] if tls_secret else None
    return builders.ingress(
        namespace, name, [(host, path, path_type, service_name)], annotations=annotations, tls=tls
    )


def store(etcd: Etcd, obj: dict[str, Any], encoding: str = "protobuf") -> int:
    """Write an object as the API server does: protobuf by default, JSON if asked."""
    return etcd.put(storage_key(obj), storage_value(obj, encoding))


# --- HTTP backends -----------------------------------------------------------------------


class Backend:
    """A real HTTP server on a loopback address; answers its name, counts requests."""

    def __init__(self, name: str, address: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.requests: Counter[str] = Counter()
        self.headers: dict[str, dict[str, str]] = {}  # the last request's, by path
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's algorithm
            # holds the body for the client's delayed ACK (~40 ms a keep-alive request).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                backend.requests[self.path] += 1
                backend.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
                body = f"{backend.name} {self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if "set-cookie" in self.path:
                    self.send_header("Set-Cookie", "session=abc")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # HAProxy may reset idle keep-alive connections; not an error here

        self.server = Server((address, port), Handler)
        self.server.daemon_threads = True
        self.address = address
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends() -> Iterator[Callable[[str], Backend]]:
    """Start backends like a Service's pods: each its own address, all one port."""
    started: list[Backend] = []
    port = free_port()

    def start(name: str) -> Backend:
        backend = Backend(name, f"127.0.0.{11 + len(started)}", port)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.close()


# --- HAProxy -------------------------------------------------------------------------------


@dataclass
class HAProxy:
    directory: Path
    settings: HAProxySettings
    varnish: VarnishSettings | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_port(self) -> int:
        return int(self.settings.http_binds[0].rsplit(":", 1)[1])

    @property
    def https_port(self) -> int:
        return int(self.settings.https_binds[0].rsplit(":", 1)[1])

    def start(self) -> None:
        # The first configuration, as the haproxy role renders it: no routes yet.
        rendered, _layout = render_shaped(Catalog(), None, {}, self.settings, self.varnish)
        from breakwater.targets.staging import ensure_node_state, write_generation

        os.makedirs(self.settings.config_dir, exist_ok=True)
        ensure_node_state(self.settings.config_dir)
        write_generation(rendered)
        Path(self.settings.config_file).write_text(rendered.config)
        log = open(self.directory / "haproxy.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["haproxy", "-W", "-S", self.settings.master_socket, "-f", self.settings.config_file],
            stdout=log,
            stderr=log,
        )
        wait_for(lambda: _port_open(self.http_port), what="haproxy to listen")
        wait_for(lambda: os.path.exists(self.settings.stats_socket), what="stats socket")

    def master(self, command: str) -> str:
        # The master refuses connections for a moment while it re-executes.
        return str(wait_for(lambda: self._master(command), what=f"master CLI {command!r}"))

    def _master(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.settings.master_socket)
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def processes(self) -> Any:
        return parse_show_proc(self.master("show proc"))

    def worker_pid(self) -> int:
        return int(self.processes().workers[0])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)  # soft stop
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def haproxy_settings(directory: Path) -> HAProxySettings:
    return HAProxySettings(
        config_dir=str(directory / "breakwater"),
        config_file=str(directory / "haproxy.cfg"),
        stats_socket=str(directory / "admin.sock"),
        master_socket=str(directory / "master.sock"),
        http_binds=(f"127.0.0.1:{free_port()}",),
        https_binds=(f"127.0.0.1:{free_port()}",),
        monitor_binds=(f"127.0.0.1:{free_port()}",),
        metrics_binds=(f"127.0.0.1:{free_port()}",),
        hard_stop_after="10s",
        log_target="stderr",
        maxconn=1000,
    )


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[HAProxy]:
    directory = tmp_path / "haproxy"
    directory.mkdir()
    server = HAProxy(directory, haproxy_settings(directory))
    server.start()
    yield server
    server.stop()


# --- Varnish -------------------------------------------------------------------------------


@dataclass
class Varnish:
    directory: Path
    settings: VarnishSettings
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configure(cls, directory: Path, return_socket: str) -> Varnish:
        directory.mkdir()
        secret = directory / "secret"
        secret.write_bytes(os.urandom(32))
        settings = VarnishSettings(
            enabled=True,
            server=f"127.0.0.1:{free_port()}",
            return_socket=return_socket,
            return_socket_group=None,
            health=f"127.0.0.1:{free_port()}",
            admin=f"127.0.0.1:{free_port()}",
            secret_file=str(secret),
            vcl_file=str(directory / "breakwater.vcl"),
            keep_vcls=3,
            health_interval="200ms",
        )
        return cls(directory, settings)

    def start(self) -> None:
        Path(self.settings.vcl_file).write_text(render_vcl(self.settings))
        log = open(self.directory / "varnish.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "varnishd",
                "-F",
                "-j",
                "none",
                "-a",
                self.settings.server,
                "-a",
                f"health={self.settings.health}",
                "-T",
                self.settings.admin,
                "-S",
                self.settings.secret_file,
                "-f",
                self.settings.vcl_file,
                "-n",
                str(self.directory / "work"),
                "-s",
                "malloc,64m",
                "-p",
                "ban_lurker_sleep=0.01",
                "-p",
                "ban_lurker_age=0",
            ],
            stdout=log,
            stderr=log,
        )
        port = int(self.settings.server.rsplit(":", 1)[1])
        wait_for(lambda: _port_open(port), timeout=60, what="varnish to listen")

    def stat(self, counter: str) -> int:
        output = subprocess.run(
            ["varnishstat", "-n", str(self.directory / "work"), "-1", "-f", counter],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(output.split()[1])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Edge:
    haproxy: HAProxy
    varnish: Varnish


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """HAProxy with the Varnish tier: HAProxy first (it binds the return socket)."""
    directory = tmp_path / "haproxy"
    directory.mkdir()
    settings = haproxy_settings(directory)
    varnish = Varnish.configure(tmp_path / "varnish", str(directory / "varnish-return.sock"))
    proxy = HAProxy(directory, settings, varnish.settings)
    proxy.start()
    varnish.start()
    yield Edge(proxy, varnish)
    varnish.stop()
    proxy.stop()


def http_get(port: int, host: str, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# --- the watcher, as the daemon it is -----------------------------------------------------------


@dataclass
class WatcherProcess:
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "breakwater.cli",
                "watch",
                "--config",
                str(self.config_path),
                *extra,
            ],
            stdout=log,
            stderr=log,
            # A watcher that does not stop is asked for every thread's traceback
            # (faulthandler, on SIGABRT) before it is killed: see stop().
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)  # tracebacks into the log
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                print("the watcher did not stop within 10 s of SIGTERM; its log ends:")
                print(self.log()[-6000:])
        return self.process.returncode


def watcher_config(
    tmp_path: Path, etcd_server: Etcd, haproxy_server: HAProxy, **sections: dict[str, Any]
) -> Path:
    settings = haproxy_server.settings
    varnish = haproxy_server.varnish
    document: dict[str, Any] = {
        "etcd": {"endpoints": [etcd_server.endpoint], "backoff_initial": 0.1, "backoff_max": 1.0},
        "haproxy": {
            "config_dir": settings.config_dir,
            "config_file": settings.config_file,
            "stats_socket": settings.stats_socket,
            "master_socket": settings.master_socket,
            "http_binds": list(settings.http_binds),
            "https_binds": list(settings.https_binds),
            "monitor_binds": list(settings.monitor_binds),
            "metrics_binds": list(settings.metrics_binds),
            "hard_stop_after": settings.hard_stop_after,
            "log_target": settings.log_target,
        },
        "watcher": {
            "status_file": str(tmp_path / "status.json"),
            "heartbeat_file": str(tmp_path / "heartbeat.json"),
            "log_level": "DEBUG",
            "metrics_listen": f"127.0.0.1:{free_port()}",
        },
        # The test backends listen on loopback addresses, which the edge refuses by default.
        "catalog": {"allow_special_addresses": True},
    }
    if varnish is not None:
        document["varnish"] = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(varnish).items()
        }
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    path = tmp_path / "watcher.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def watcher(tmp_path: Path, etcd: Etcd, haproxy: HAProxy) -> Iterator[WatcherProcess]:
    process = WatcherProcess(watcher_config(tmp_path, etcd, haproxy), tmp_path / "watcher.log")
    process.start()
    yield process
    returncode = process.stop()
    print(process.log()[-5000:])
    assert returncode == 0, "the watcher did not exit cleanly on SIGTERM"
