"""Protocols through the edge (docs/traffic.md), end to end: real etcd, the watcher and
HAProxy, objects written into etcd as the API server does, and real clients and
servers of each protocol (traffic_servers.py): HTTP/2 and h2c to clients, gRPC,
HTTPS to backends, WebSockets across a reload, the PROXY protocol in and out."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import builders
import httpx
import pytest
from harness import (
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    free_port,
    http_get,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)
from traffic_servers import (
    CertificateAuthority,
    GrpcEcho,
    H2Backend,
    HTTPSBackend,
    ProxyProtocolBackend,
    WebSocketEcho,
    grpc_stream,
    grpc_unary,
    h2_get,
    https_get,
    proxy_request,
    websocket_connect,
)

NAMESPACE = "traffic"
CLIENT = ("198.18.5.5", 40000)  # the address a PROXY header claims for the client


# --- the watcher, objects, waiting ----------------------------------------------------------


@pytest.fixture
def start_watcher(
    tmp_path: Path, etcd: Etcd, haproxy: HAProxy
) -> Iterator[Callable[..., WatcherProcess]]:
    """Start the watcher with the given ``haproxy:`` settings (none: the defaults)."""
    started: list[WatcherProcess] = []

    def start(**haproxy_settings: Any) -> WatcherProcess:
        config = watcher_config(tmp_path, etcd, haproxy, haproxy=haproxy_settings)
        process = WatcherProcess(config, tmp_path / "watcher.log")
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        running = process.process is not None and process.process.poll() is None
        returncode = process.stop()
        print(process.log()[-5000:])
        if running:
            assert returncode == 0, "the watcher did not exit cleanly on SIGTERM"


def rejected(watcher: WatcherProcess) -> dict[str, str]:
    """The objects the watcher rejects, with the reason, from its status file."""
    try:
        status = json.loads((watcher.config_path.parent / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return {r["object"]: r["reason"] for r in (status.get("catalog") or {}).get("rejected", [])}


def until(watcher: WatcherProcess, predicate: Callable[[], Any], what: str) -> Any:
    """wait_for, failing at once if the watcher exits, and telling what it rejects."""

    def check() -> Any:
        assert watcher.process is not None
        if watcher.process.poll() is not None:
            pytest.fail(f"the watcher exited ({watcher.process.returncode}):\n{watcher.log()}")
        return predicate()

    try:
        return wait_for(check, timeout=10, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nrejected: {rejected(watcher)}") from None


def ok(fetch: Callable[[], Any]) -> Callable[[], Any]:
    """A predicate for until(): what ``fetch`` returns (a response with ``.status``, or
    a tuple whose first item is the status), once that is 200; None before."""

    def check() -> Any:
        result = fetch()
        status = result.status if hasattr(result, "status") else result[0]
        return result if status == 200 else None

    return check


def pods(etcd: Etcd, name: str, servers: list[tuple[str, int]]) -> None:
    """A Service (port "http") and its ready endpoints."""
    store(etcd, service(NAMESPACE, name))
    store(etcd, endpoint_slice(NAMESPACE, name, servers))


def route(etcd: Etcd, name: str, data: dict[str, str]) -> None:
    """A route ConfigMap for the Service ``name``."""
    store(etcd, builders.route_configmap(NAMESPACE, name, data))


def secret(name: str, data: dict[str, bytes], kind: str = "Opaque") -> dict[str, Any]:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": builders.meta(NAMESPACE, name),
        "type": kind,
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


@pytest.fixture(scope="module")
def edge_ca() -> CertificateAuthority:
    """The CA of the certificates the edge serves (in TLS Secrets); clients trust it."""
    return CertificateAuthority("edge CA")


def edge_certificate(etcd: Etcd, ca: CertificateAuthority, name: str, host: str) -> None:
    """A kubernetes.io/tls Secret ``name`` for ``host``, issued by ``ca``."""
    cert, key = ca.issue(host)
    store(etcd, secret(name, {"tls.crt": cert, "tls.key": key}, "kubernetes.io/tls"))


def one_port_servers(count: int, first: int) -> list[tuple[str, int]]:
    """Addresses for ``count`` pods of a Service: 127.0.0.<first>…, one port."""
    port = free_port()
    return [(f"127.0.0.{first + index}", port) for index in range(count)]


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    """Servers a test starts, closed after it."""
    started: list[Any] = []
    yield started
    for server in started:
        server.close()


# --- a. HTTP/2 to clients on the TLS bind ---------------------------------------------------


def test_http2_on_the_tls_bind(etcd, haproxy, backends, start_watcher, edge_ca) -> None:
    watcher = start_watcher()
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    edge_certificate(etcd, edge_ca, "h2-tls", "h2.example.com")
    route(etcd, "web", {"hosts": "h2.example.com", "tls-secret": "h2-tls"})

    response = until(
        watcher,
        ok(lambda: h2_get(haproxy.https_port, "h2.example.com", "/h2", ca=edge_ca.pem)),
        "an HTTP/2 answer on the TLS bind",
    )
    assert (response.status, response.http_version) == (200, "HTTP/2")
    assert response.body == "web /h2\n"
    assert web.headers["/h2"]["x-forwarded-proto"] == "https"
    # HTTP/1.1 is still offered to the clients that ask for nothing else.
    assert https_get(haproxy.https_port, "h2.example.com", edge_ca.pem, "/h1") == (200, "web /h1\n")


# --- b. h2c on cleartext binds, only when asked ----------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def raw_answer(port: int, data: bytes) -> bytes:
    """What the edge sends back to ``data`` on a fresh connection, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_h2c_is_refused_on_cleartext_by_default(etcd, haproxy, backends, start_watcher) -> None:
    watcher = start_watcher()
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    route(etcd, "web", {"hosts": "h2c.example.com"})
    until(
        watcher,
        lambda: http_get(haproxy.http_port, "h2c.example.com") == (200, "web /\n"),
        "the route over HTTP/1.1",
    )
    # The bind speaks HTTP/1 only (proto h1): a prior-knowledge HTTP/2 client gets no
    # HTTP/2 answer -- HAProxy answers the preface with an HTTP/1.1 400 and closes.
    with pytest.raises(httpx.RemoteProtocolError):
        h2_get(haproxy.http_port, "h2c.example.com", "/h2c")
    assert raw_answer(haproxy.http_port, H2_PREFACE).startswith(b"HTTP/1.1 400 ")
    assert "/h2c" not in web.requests
    assert http_get(haproxy.http_port, "h2c.example.com", "/after") == (200, "web /after\n")


def test_h2c_on_cleartext_when_enabled(etcd, haproxy, backends, start_watcher) -> None:
    watcher = start_watcher(h2c=True)
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    route(etcd, "web", {"hosts": "h2c.example.com"})
    response = until(
        watcher,
        ok(lambda: h2_get(haproxy.http_port, "h2c.example.com", "/h2c")),
        "an h2c answer",
    )
    assert (response.status, response.http_version, response.body) == (200, "HTTP/2", "web /h2c\n")
    assert "x-forwarded-proto" not in web.headers["/h2c"]  # cleartext, whatever the version
    assert http_get(haproxy.http_port, "h2c.example.com", "/h1") == (200, "web /h1\n")


# --- c. gRPC ----------------------------------------------------------------------------------


def test_grpc_through_the_tls_bind(etcd, haproxy, start_watcher, servers, edge_ca) -> None:
    watcher = start_watcher()
    addresses = one_port_servers(2, 21)
    echoes = [GrpcEcho(f"grpc-{i}", address, port) for i, (address, port) in enumerate(addresses)]
    servers.extend(echoes)
    pods(etcd, "echo", addresses)
    edge_certificate(etcd, edge_ca, "grpc-tls", "grpc.example.com")
    annotations = {"breakwater.io/backend-protocol": "grpc"}
    store(
        etcd,
        ingress(
            NAMESPACE,
            "echo",
            "grpc.example.com",
            "echo",
            annotations=annotations,
            tls_secret="grpc-tls",
        ),
    )
    target = f"127.0.0.1:{haproxy.https_port}"
    tls = {"root_ca": edge_ca.pem, "server_name": "grpc.example.com"}

    answer = until(watcher, lambda: grpc_unary(target, b"ping", **tls), "a gRPC answer")
    assert answer in (b"grpc-0: ping", b"grpc-1: ping")
    # Balanced per call (roundrobin): both pods answer.
    names = {grpc_unary(target, b"ping", **tls).split(b":")[0] for _ in range(4)}
    assert names == {b"grpc-0", b"grpc-1"}
    messages = grpc_stream(target, b"tick", 50, **tls)
    name = messages[0].split()[0].decode()
    assert messages == [f"{name} {i}: tick".encode() for i in range(50)]


def test_grpc_over_h2c_when_enabled(etcd, haproxy, start_watcher, servers) -> None:
    watcher = start_watcher(h2c=True)
    [(address, port)] = one_port_servers(1, 25)
    servers.append(GrpcEcho("grpc-plain", address, port))
    pods(etcd, "echo", [(address, port)])
    route(etcd, "echo", {"hosts": "grpc.example.com", "backend-protocol": "grpc"})
    target = f"127.0.0.1:{haproxy.http_port}"

    answer = until(
        watcher,
        lambda: grpc_unary(target, b"ping", authority="grpc.example.com"),
        "a gRPC answer over h2c",
    )
    assert answer == b"grpc-plain: ping"
    assert grpc_stream(target, b"tick", authority="grpc.example.com") == [
        b"grpc-plain 0: tick",
        b"grpc-plain 1: tick",
        b"grpc-plain 2: tick",
    ]


def test_backend_protocol_h2(etcd, haproxy, start_watcher, servers) -> None:
    watcher = start_watcher()
    [(address, port)] = one_port_servers(1, 27)
    h2 = H2Backend("h2-pod", address, port)
    servers.append(h2)
    pods(etcd, "h2", [(address, port)])
    route(etcd, "h2", {"hosts": "h2-backend.example.com", "backend-protocol": "h2"})

    # An HTTP/1.1 client; the edge speaks HTTP/2 with prior knowledge to the pod.
    status, body = until(
        watcher,
        ok(lambda: http_get(haproxy.http_port, "h2-backend.example.com", "/p")),
        "the HTTP/2 backend to answer",
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["backend"] == "h2-pod" and answer["http_version"] == "HTTP/2"
    assert (answer["method"], answer["path"]) == ("GET", "/p")
    assert answer["authority"] == "h2-backend.example.com"


# --- d. HTTPS to backends ---------------------------------------------------------------------


def test_https_backends_ca_and_sni(etcd, haproxy, start_watcher, servers) -> None:
    watcher = start_watcher()
    backend_ca, other_ca = CertificateAuthority("backend CA"), CertificateAuthority("other CA")
    store(etcd, secret("backend-ca", {"ca.crt": backend_ca.pem}))
    store(etcd, secret("other-ca", {"ca.crt": other_ca.pem}))
    started = {}
    for index, name in enumerate(("secure", "plain", "wrong")):
        [(address, port)] = one_port_servers(1, 31 + index)
        certificate = backend_ca.issue("api.internal", f"{name}.example.com")
        started[name] = HTTPSBackend(name, certificate, address, port)
        pods(etcd, name, [(address, port)])
    servers.extend(started.values())
    https = {"backend-protocol": "https"}
    route(
        etcd,
        "secure",
        {
            **https,
            "hosts": "secure.example.com",
            "backend-ca": "secret/backend-ca",
            "backend-sni": "api.internal",
        },
    )
    # No CA: not verified (as ingress-nginx); no SNI set: the request's Host.
    route(etcd, "plain", {**https, "hosts": "plain.example.com"})

    def answer(host: str, path: str) -> tuple[int, dict[str, Any] | str]:
        status, body = http_get(haproxy.http_port, host, path)
        return status, json.loads(body) if status == 200 else body

    status, body = until(
        watcher,
        ok(lambda: answer("secure.example.com", "/s")),
        "the HTTPS backend verified with the CA",
    )
    assert (status, body) == (200, {"backend": "secure", "path": "/s", "sni": "api.internal"})
    assert until(watcher, ok(lambda: answer("plain.example.com", "/p")), "the unverified one") == (
        200,
        {"backend": "plain", "path": "/p", "sni": "plain.example.com"},
    )

    # Verified against a CA that did not issue the backend's certificate: HAProxy
    # refuses the handshake, the client gets 503, and the other routes keep serving.
    route(
        etcd,
        "wrong",
        {
            **https,
            "hosts": "wrong.example.com",
            "backend-ca": "secret/other-ca",
            "backend-sni": "api.internal",
        },
    )

    def routed() -> int | None:  # 404 until the route is live
        status = http_get(haproxy.http_port, "wrong.example.com", "/w")[0]
        return None if status == 404 else status

    assert until(watcher, routed, "the wrongly verified route to be live") == 503
    assert started["wrong"].seen.paths == []  # nothing got through
    assert started["wrong"].snis  # HAProxy did try: the handshake reached the server
    assert answer("secure.example.com", "/again") == (
        200,
        {"backend": "secure", "path": "/again", "sni": "api.internal"},
    )


# --- e. WebSockets across a reload -----------------------------------------------------------


def test_websocket_keeps_echoing_across_a_reload(
    etcd, haproxy, backends, start_watcher, servers
) -> None:
    watcher = start_watcher()
    [(address, port)] = one_port_servers(1, 41)
    echo = WebSocketEcho("chat-pod", address, port)
    servers.append(echo)
    pods(etcd, "chat", [(address, port)])
    store(
        etcd,
        ingress(
            NAMESPACE,
            "chat",
            "ws.example.com",
            "chat",
            annotations={"breakwater.io/timeout-tunnel": "1h"},
        ),
    )
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    route(etcd, "web", {"hosts": "reload.example.com", "timeout-server": "30s"})
    until(
        watcher,
        lambda: http_get(haproxy.http_port, "reload.example.com")[0] == 200,
        "the other route",
    )

    def echoes() -> bool:
        with websocket_connect(haproxy.http_port, "ws.example.com", "/probe") as probe:
            probe.send("probe")
            return probe.recv(timeout=5) == "chat-pod: probe"

    until(watcher, echoes, "the WebSocket route")
    with websocket_connect(haproxy.http_port, "ws.example.com", "/chat") as connection:
        connection.send("before")
        assert connection.recv(timeout=5) == "chat-pod: before"
        worker, reloads = haproxy.worker_pid(), haproxy.processes().reloads

        # A structural change (another backend's timeout) reloads HAProxy.
        route(etcd, "web", {"hosts": "reload.example.com", "timeout-server": "31s"})
        until(watcher, lambda: haproxy.processes().reloads > reloads, "a reload")
        until(watcher, lambda: haproxy.worker_pid() != worker, "a new worker")

        # The connection the old worker holds keeps echoing (until hard-stop-after).
        for message in ("after", "still"):
            connection.send(message)
            assert connection.recv(timeout=5) == f"chat-pod: {message}"
    assert echoes()  # and the new worker takes new connections
    headers = dict(echo.requests)["/chat"]
    assert (headers["host"], headers["x-forwarded-for"]) == ("ws.example.com", "127.0.0.1")


# --- f. the PROXY protocol from a load balancer in front of the edge -------------------------


def test_proxy_protocol_from_trusted_sources(
    etcd, haproxy, backends, start_watcher, edge_ca
) -> None:
    watcher = start_watcher(proxy_protocol_sources=["127.0.0.0/8"])
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    edge_certificate(etcd, edge_ca, "pp-tls", "pp.example.com")
    route(etcd, "web", {"hosts": "pp.example.com", "tls-secret": "pp-tls"})
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}

    until(
        watcher,
        lambda: (
            proxy_request(haproxy.http_port, "pp.example.com", "/ready", source=CLIENT)[0] == 200
        ),
        "a request after a PROXY v2 header",
    )
    for version in (2, 1):
        path = f"/v{version}"
        status, body, _ = proxy_request(
            haproxy.http_port, "pp.example.com", path, version, CLIENT, headers=forged
        )
        assert (status, body) == (200, f"web {path}\n")
        assert web.headers[path]["x-forwarded-for"] == "198.18.5.5"
        assert "x-forwarded-proto" not in web.headers[path]
    # PROXY, then TLS (a TCP load balancer passing TLS through): on the TLS bind too.
    status, body, _ = proxy_request(
        haproxy.https_port, "pp.example.com", "/tls", 2, CLIENT, headers=forged, ca=edge_ca.pem
    )
    assert (status, body) == (200, "web /tls\n")
    assert web.headers["/tls"]["x-forwarded-for"] == "198.18.5.5"
    assert web.headers["/tls"]["x-forwarded-proto"] == "https"
    # A trusted source must send the header: a request without one is not served.
    with pytest.raises(ConnectionError):
        proxy_request(haproxy.http_port, "pp.example.com", "/bare", version=None)
    assert "/bare" not in web.requests


def test_proxy_protocol_from_an_untrusted_source(etcd, haproxy, backends, start_watcher) -> None:
    watcher = start_watcher(proxy_protocol_sources=["127.0.0.2/32"])
    web = backends("web")
    pods(etcd, "web", [web.endpoint])
    route(etcd, "web", {"hosts": "pp.example.com"})

    # From the trusted address, the header is taken (so the setting is in force) ...
    until(
        watcher,
        lambda: (
            proxy_request(
                haproxy.http_port, "pp.example.com", "/trusted", source=CLIENT, bind="127.0.0.2"
            )[0]
            == 200
        ),
        "a PROXY header from the trusted source",
    )
    assert web.headers["/trusted"]["x-forwarded-for"] == "198.18.5.5"
    # ... from any other, a PROXY header is no HTTP: 400, and nothing reaches the backend.
    for version in (2, 1):
        status, _, _ = proxy_request(
            haproxy.http_port, "pp.example.com", f"/claim-v{version}", version, CLIENT
        )
        assert status == 400
        assert f"/claim-v{version}" not in web.requests
    # A plain request from it is served, its own address forwarded, a forged one dropped.
    status, body, _ = proxy_request(
        haproxy.http_port,
        "pp.example.com",
        "/plain",
        version=None,
        headers={"X-Forwarded-For": "6.6.6.6"},
    )
    assert (status, body) == (200, "web /plain\n")
    assert web.headers["/plain"]["x-forwarded-for"] == "127.0.0.1"


# --- g. the PROXY protocol to backends --------------------------------------------------------


def get_from(port: int, host: str, path: str) -> tuple[int, str, int]:
    """GET over HTTP/1.1; status, body and the local port the request came from."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.connect()
        assert connection.sock is not None
        local_port = int(connection.sock.getsockname()[1])
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(), local_port
    finally:
        connection.close()


def test_backend_proxy_protocol(etcd, haproxy, start_watcher, servers) -> None:
    watcher = start_watcher()
    started = {}
    for index, version in enumerate(("v2", "v1")):
        [(address, port)] = one_port_servers(1, 51 + index)
        started[version] = ProxyProtocolBackend(f"pp-{version}", address, port)
        pods(etcd, f"pp-{version}", [(address, port)])
    servers.extend(started.values())
    route(etcd, "pp-v2", {"hosts": "v2.example.com", "backend-proxy-protocol": "v2"})
    store(
        etcd,
        ingress(
            NAMESPACE,
            "pp-v1",
            "v1.example.com",
            "pp-v1",
            annotations={"breakwater.io/backend-proxy-protocol": "v1"},
        ),
    )

    for version in ("v2", "v1"):
        host = f"{version}.example.com"
        until(
            watcher,
            lambda h=host: http_get(haproxy.http_port, h, "/ready")[0] == 200,
            f"the PROXY {version} backend to answer",
        )
        status, body, local_port = get_from(haproxy.http_port, host, "/who")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["backend"] == f"pp-{version}"
        assert answer["proxy"] == {
            "version": int(version[1]),
            "command": "PROXY",
            "family": "TCP4",
            "source": ["127.0.0.1", local_port],
            "destination": ["127.0.0.1", haproxy.http_port],
        }
    # Every connection HAProxy opened to them started with the header.
    assert started["v2"].refused == [] and started["v1"].refused == []


def test_backend_proxy_protocol_carries_a_proxied_client(
    etcd, haproxy, start_watcher, servers
) -> None:
    """PROXY in and PROXY out: the backend is told the client the load balancer saw."""
    watcher = start_watcher(proxy_protocol_sources=["127.0.0.0/8"])
    [(address, port)] = one_port_servers(1, 55)
    backend = ProxyProtocolBackend("pp-chain", address, port)
    servers.append(backend)
    pods(etcd, "chain", [(address, port)])
    route(etcd, "chain", {"hosts": "chain.example.com", "backend-proxy-protocol": "v2"})

    def answer() -> dict[str, Any] | None:
        status, body, _ = proxy_request(haproxy.http_port, "chain.example.com", "/c", 2, CLIENT)
        return json.loads(body) if status == 200 else None

    proxied = until(watcher, answer, "the chained PROXY route")
    assert (proxied["backend"], proxied["proxy"]["source"]) == ("pp-chain", list(CLIENT))
