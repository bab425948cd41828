"""The traffic tests' own servers and clients (traffic_servers.py), against each other
and against fixed bytes, with no HAProxy between them: they are the test tools."""

from __future__ import annotations

import http.client
import io
import json
import ssl
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from traffic_servers import (
    STREAM_COUNT,
    CertificateAuthority,
    GrpcEcho,
    H2Backend,
    HTTPSBackend,
    ProxyHeader,
    ProxyProtocolBackend,
    WebSocketEcho,
    grpc_stream,
    grpc_unary,
    h2_get,
    https_get,
    proxy_request,
    proxy_v1_header,
    proxy_v2_header,
    read_proxy_header,
    websocket_connect,
)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    """Servers a test starts, closed after it."""
    started: list[Any] = []
    yield started
    for server in started:
        server.close()


# --- the PROXY protocol, byte for byte (haproxy's doc/proxy-protocol.txt) ------------------


def test_proxy_v2_header_bytes() -> None:
    header = proxy_v2_header(("198.18.5.5", 51234), ("127.0.0.1", 80))
    assert header == (
        b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"  # the 12-byte signature
        b"\x21"  # version 2, command PROXY
        b"\x11"  # AF_INET, SOCK_STREAM
        b"\x00\x0c"  # 12 bytes of addresses follow
        b"\xc6\x12\x05\x05"  # source 198.18.5.5
        b"\x7f\x00\x00\x01"  # destination 127.0.0.1
        b"\xc8\x22"  # source port 51234
        b"\x00\x50"  # destination port 80
    )
    six = proxy_v2_header(("2001:db8::5", 1), ("::1", 2))
    assert six[12:16] == b"\x21\x21\x00\x24" and len(six) == 16 + 36


def test_proxy_v1_header_bytes() -> None:
    header = proxy_v1_header(("198.18.5.5", 51234), ("127.0.0.1", 80))
    assert header == b"PROXY TCP4 198.18.5.5 127.0.0.1 51234 80\r\n"


def test_read_proxy_header_both_versions_and_leaves_the_request() -> None:
    request = b"GET / HTTP/1.1\r\n\r\n"
    for header, version in (
        (proxy_v2_header(("198.18.5.5", 51234), ("127.0.0.1", 80)), 2),
        (proxy_v1_header(("198.18.5.5", 51234), ("127.0.0.1", 80)), 1),
    ):
        stream = io.BytesIO(header + request)
        parsed = read_proxy_header(stream)
        expected = ProxyHeader(version, "PROXY", "TCP4", ("198.18.5.5", 51234), ("127.0.0.1", 80))
        assert parsed == expected
        assert stream.read() == request
    # A v2 LOCAL header (HAProxy's own health checks) carries no addresses; TLVs after
    # the addresses are skipped.
    local = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"
    assert read_proxy_header(io.BytesIO(local)) == ProxyHeader(2, "LOCAL", "UNKNOWN", None, None)
    with_tlv = proxy_v2_header(("10.0.0.1", 1), ("10.0.0.2", 2))
    with_tlv = with_tlv[:14] + b"\x00\x0f" + with_tlv[16:] + b"\x04\x00\x00"  # a NOOP TLV
    stream = io.BytesIO(with_tlv + request)
    assert read_proxy_header(stream).source == ("10.0.0.1", 1)
    assert stream.read() == request
    with pytest.raises(ValueError):
        read_proxy_header(io.BytesIO(request))


def test_proxy_protocol_client_and_backend(servers) -> None:
    backend = ProxyProtocolBackend("pp")
    servers.append(backend)
    for version in (2, 1):
        status, body, _ = proxy_request(
            backend.port, "pp.example", f"/v{version}", version=version, source=("198.18.5.5", 4)
        )
        answer = json.loads(body)
        assert status == 200
        assert (answer["backend"], answer["path"], answer["tls"]) == ("pp", f"/v{version}", False)
        assert answer["proxy"] == {
            "version": version,
            "command": "PROXY",
            "family": "TCP4",
            "source": ["198.18.5.5", 4],
            "destination": ["127.0.0.1", backend.port],
        }
    assert backend.seen.headers["/v2"]["host"] == "pp.example"
    # Without a header the backend closes the connection unanswered, as a real one does.
    with pytest.raises(http.client.RemoteDisconnected):
        proxy_request(backend.port, "pp.example", "/none", version=None)
    assert len(backend.refused) == 1 and "/none" not in backend.seen.paths


def test_proxy_protocol_then_tls(servers, ca) -> None:
    backend = ProxyProtocolBackend("pp-tls", certificate=ca.issue("pp.example.com"))
    servers.append(backend)
    for version in (2, 1):
        status, body, _ = proxy_request(
            backend.port, "pp.example.com", "/tls", version=version, ca=ca.pem
        )
        answer = json.loads(body)
        assert (status, answer["tls"], answer["proxy"]["version"]) == (200, True, version)
        assert answer["proxy"]["source"] == ["198.18.5.5", 51234]
    assert backend.seen.headers["/tls"]["host"] == "pp.example.com"


def test_proxy_request_from_a_given_address(servers) -> None:
    backend = ProxyProtocolBackend("pp", address="127.0.0.1")
    servers.append(backend)
    status, body, _ = proxy_request(
        backend.port, "pp.example", version=1, bind="127.0.0.2", source=("192.0.2.1", 7)
    )
    assert status == 200 and json.loads(body)["proxy"]["source"] == ["192.0.2.1", 7]


# --- gRPC ----------------------------------------------------------------------------------


def test_grpc_echo_cleartext_unary_and_stream(servers) -> None:
    echo = GrpcEcho("grpc-a", "127.0.0.1")
    servers.append(echo)
    target = f"127.0.0.1:{echo.port}"
    assert grpc_unary(target, b"ping", authority="grpc.example.com") == b"grpc-a: ping"
    assert grpc_stream(target, b"tick") == [
        f"grpc-a {i}: tick".encode() for i in range(STREAM_COUNT)
    ]
    assert grpc_stream(target, b"x", count=5)[-1] == b"grpc-a 4: x"
    assert echo.metadata[-1]["x-count"] == "5"


def test_grpc_echo_tls_with_root_ca_and_server_name(servers, ca) -> None:
    echo = GrpcEcho("grpc-tls", "127.0.0.1", tls=ca.issue("grpc.internal"))
    servers.append(echo)
    target = f"127.0.0.1:{echo.port}"
    answer = grpc_unary(target, b"secret", root_ca=ca.pem, server_name="grpc.internal")
    assert answer == b"grpc-tls: secret"
    assert grpc_stream(target, b"s", 2, root_ca=ca.pem, server_name="grpc.internal") == [
        b"grpc-tls 0: s",
        b"grpc-tls 1: s",
    ]
    # Another CA, or a name the certificate is not for: the handshake is refused.
    for root_ca, name in ((CertificateAuthority().pem, "grpc.internal"), (ca.pem, "other")):
        with pytest.raises(grpc.RpcError) as failed:
            grpc_unary(target, b"x", root_ca=root_ca, server_name=name, timeout=2)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


# --- WebSocket -----------------------------------------------------------------------------


def test_websocket_echo_with_host_header(servers) -> None:
    echo = WebSocketEcho("ws-a", "127.0.0.1")
    servers.append(echo)
    with websocket_connect(echo.port, "ws.example.com", "/chat") as connection:
        for message in ("one", "two"):
            connection.send(message)
            assert connection.recv(timeout=5) == f"ws-a: {message}"
    path, headers = echo.requests[0]
    assert path == "/chat"
    assert headers["host"] == "ws.example.com"
    assert headers["upgrade"] == "websocket"


# --- HTTP/2 --------------------------------------------------------------------------------


def test_h2_client_over_tls_negotiates_h2(servers, ca) -> None:
    backend = H2Backend("h2-tls", certificate=ca.issue("h2.example.com"))
    servers.append(backend)
    response = h2_get(backend.port, "h2.example.com", "/p?x=1", ca=ca.pem)
    assert response.status == 200 and response.http_version == "HTTP/2"
    assert json.loads(response.body) == {
        "backend": "h2-tls",
        "method": "GET",
        "path": "/p?x=1",
        "authority": "h2.example.com",
        "scheme": "https",
        "http_version": "HTTP/2",
    }
    with pytest.raises(httpx.ConnectError):  # the certificate is checked
        h2_get(backend.port, "h2.example.com", ca=CertificateAuthority().pem)


def test_h2_client_reports_http11_when_the_server_offers_only_that(servers, ca) -> None:
    backend = HTTPSBackend("h1-tls", ca.issue("h1.example.com"))
    servers.append(backend)
    response = h2_get(backend.port, "h1.example.com", ca=ca.pem)
    assert (response.status, response.http_version) == (200, "HTTP/1.1")


def test_h2c_prior_knowledge(servers) -> None:
    backend = H2Backend("h2c")
    servers.append(backend)
    response = h2_get(backend.port, "h2c.example.com", "/q")
    assert (response.status, response.http_version) == (200, "HTTP/2")
    assert json.loads(response.body)["authority"] == "h2c.example.com"
    assert json.loads(response.body)["scheme"] == "http"


# --- the HTTPS backend ---------------------------------------------------------------------


def test_https_backend_reports_sni(servers, ca) -> None:
    backend = HTTPSBackend("secure", ca.issue("api.internal", "secure.example.com"))
    servers.append(backend)
    for name in ("api.internal", "secure.example.com"):
        status, body = https_get(backend.port, name, ca.pem, "/s")
        assert status == 200
        assert json.loads(body) == {"backend": "secure", "path": "/s", "sni": name}
    assert backend.snis == ["api.internal", "secure.example.com"]
    assert backend.seen.headers["/s"]["host"] == "secure.example.com"
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(backend.port, "api.internal", CertificateAuthority().pem)
