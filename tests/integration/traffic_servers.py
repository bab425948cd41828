"""Real servers and clients for the traffic tests, each from a well-kept library.

- :class:`GrpcEcho` and :func:`grpc_unary` / :func:`grpc_stream` (grpcio, identity
  serializers: bytes in, bytes out);
- :class:`WebSocketEcho` and :func:`websocket_connect` (websockets, the sync API);
- :func:`h2_get`: HTTP/2 over TLS (ALPN) or cleartext with prior knowledge (httpx[http2]);
- :func:`proxy_v1_header`, :func:`proxy_v2_header` and :func:`proxy_request`: a client
  that speaks the PROXY protocol (haproxy's doc/proxy-protocol.txt) before HTTP/1.1;
- :class:`H2Backend`: an HTTP/2 server (the ``h2`` library), TLS with ALPN h2 or
  cleartext with prior knowledge, that reports the request's pseudo-headers;
- :class:`HTTPSBackend`: http.server over TLS that answers its name and the SNI it got;
- :class:`ProxyProtocolBackend`: http.server that requires a PROXY header (v1 or v2),
  as a server behind ``send-proxy`` does, and reports it;
- :class:`CertificateAuthority`: a CA made with ``cryptography``, issuing server
  certificates.

Every server listens on a given loopback address and port (0: any), answers with its
name so a test sees which one served, and stops with ``close()``.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import http.server
import ipaddress
import json
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as ws_serve

# --- certificates ------------------------------------------------------------------------


class CertificateAuthority:
    """A CA of its own (EC P-256), issuing server certificates for given names."""

    def __init__(self, name: str = "breakwater test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, *names: str) -> tuple[bytes, bytes]:
        """A server certificate for ``names`` (DNS names or IP addresses; the first is
        the CN) and its key, in PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        alternative: list[x509.GeneralName] = []
        for name in names:
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternative.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        ca_public = self.key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(certificate: tuple[bytes, bytes], alpn: Sequence[str]) -> ssl.SSLContext:
    """A server TLS context with ``certificate`` (cert PEM, key PEM) offering ``alpn``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(certificate[0])
        key_file.write_bytes(certificate[1])
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(list(alpn))
    return context


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca_pem`` only (and checks the hostname)."""
    return ssl.create_default_context(cadata=ca_pem.decode())


# --- gRPC ----------------------------------------------------------------------------------

GRPC_SERVICE = "breakwater.test.Echo"
UNARY = f"/{GRPC_SERVICE}/Unary"
STREAM = f"/{GRPC_SERVICE}/Stream"
#: Messages a streaming call answers with, unless its metadata ``x-count`` says otherwise.
STREAM_COUNT = 3


class GrpcEcho:
    """A gRPC server with two methods, bytes in and out (no protobuf):

    - ``Unary``: answers ``b"<name>: <request>"``;
    - ``Stream`` (server streaming): answers ``b"<name> <i>: <request>"`` for i in
      0..count-1 (``x-count`` metadata, default :data:`STREAM_COUNT`).

    Cleartext (h2c, what a ``proto h2`` server line speaks) unless ``tls`` is a
    (certificate PEM, key PEM) pair.  ``metadata`` keeps each call's metadata.
    """

    def __init__(
        self,
        name: str,
        address: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.metadata: list[dict[str, str]] = []

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.metadata.append(dict(context.invocation_metadata()))
            return f"{name}: ".encode() + request

        def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            metadata = dict(context.invocation_metadata())
            self.metadata.append(metadata)
            for index in range(int(metadata.get("x-count", STREAM_COUNT))):
                yield f"{name} {index}: ".encode() + request

        handler = grpc.method_handlers_generic_handler(
            GRPC_SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary),
                "Stream": grpc.unary_stream_rpc_method_handler(stream),
            },
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            handlers=[handler],
            options=[("grpc.so_reuseport", 0)],
        )
        if tls is None:
            self.port = self.server.add_insecure_port(f"{address}:{port}")
        else:
            credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.port = self.server.add_secure_port(f"{address}:{port}", credentials)
        if not self.port:
            raise OSError(f"gRPC server {name} could not listen on {address}:{port}")
        self.server.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def close(self) -> None:
        self.server.stop(grace=None).wait(5)


def grpc_channel(
    target: str,
    authority: str | None = None,
    root_ca: bytes | None = None,
    server_name: str | None = None,
) -> grpc.Channel:
    """A channel to ``target`` ("address:port"): cleartext h2c, or TLS trusting
    ``root_ca`` and checking (and sending as SNI) ``server_name``.  ``authority`` is the
    ``:authority`` (the Host an edge routes by); default: the server name, or target."""
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    authority = authority or server_name
    if authority:
        options.append(("grpc.default_authority", authority))
    if root_ca is None:
        return grpc.insecure_channel(target, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=root_ca)
    return grpc.secure_channel(target, credentials, options=options)


def grpc_unary(
    target: str,
    payload: bytes,
    authority: str | None = None,
    root_ca: bytes | None = None,
    server_name: str | None = None,
    timeout: float = 5.0,
) -> bytes:
    """One ``Unary`` call; raises :class:`grpc.RpcError` (``.code()``) if it fails."""
    with grpc_channel(target, authority, root_ca, server_name) as channel:
        call = channel.unary_unary(UNARY)
        return bytes(call(payload, timeout=timeout))


def grpc_stream(
    target: str,
    payload: bytes,
    count: int = STREAM_COUNT,
    authority: str | None = None,
    root_ca: bytes | None = None,
    server_name: str | None = None,
    timeout: float = 5.0,
) -> list[bytes]:
    """One ``Stream`` call, every message it answers with."""
    with grpc_channel(target, authority, root_ca, server_name) as channel:
        call = channel.unary_stream(STREAM)
        return [
            bytes(m) for m in call(payload, timeout=timeout, metadata=[("x-count", str(count))])
        ]


# --- WebSocket -----------------------------------------------------------------------------


class WebSocketEcho:
    """A WebSocket server that answers each message with ``"<name>: <message>"``.

    ``requests`` keeps each handshake's path and headers (names in lower case)."""

    def __init__(self, name: str, address: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.address = address
        self.requests: list[tuple[str, dict[str, str]]] = []

        def handler(connection: ServerConnection) -> None:
            request = connection.request
            assert request is not None
            headers = {key.lower(): value for key, value in request.headers.raw_items()}
            self.requests.append((request.path, headers))
            for message in connection:
                text = message if isinstance(message, str) else message.decode()
                connection.send(f"{name}: {text}")

        self.server = ws_serve(handler, address, port, compression=None)
        self.port = int(self.server.socket.getsockname()[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def close(self) -> None:
        self.server.shutdown()


def websocket_connect(
    port: int,
    host: str,
    path: str = "/",
    address: str = "127.0.0.1",
    ca: bytes | None = None,
    timeout: float = 5.0,
) -> ClientConnection:
    """A WebSocket connection to ``address:port`` for ``host`` (its Host header, and
    with ``ca`` its SNI: ``wss``, trusting ``ca``).  Use it as a context manager."""
    sock = socket.create_connection((address, port), timeout=timeout)
    sock.settimeout(None)  # as websockets leaves its own: an idle connection stays open
    scheme = "wss" if ca else "ws"
    try:
        return ws_connect(
            f"{scheme}://{host}{path}",
            sock=sock,
            ssl=client_context(ca) if ca else None,
            compression=None,
            open_timeout=timeout,
            close_timeout=timeout,
            proxy=None,
        )
    except Exception:
        sock.close()
        raise


# --- HTTP/2 --------------------------------------------------------------------------------


@dataclass(frozen=True)
class H2Response:
    status: int
    body: str
    http_version: str  # as negotiated: "HTTP/2" or "HTTP/1.1"
    headers: dict[str, str]


def h2_get(
    port: int,
    host: str,
    path: str = "/",
    address: str = "127.0.0.1",
    ca: bytes | None = None,
    timeout: float = 5.0,
) -> H2Response:
    """GET with an HTTP/2 client: with ``ca``, over TLS offering ALPN ``h2,http/1.1``
    (SNI and Host ``host``, certificate checked against ``ca``), the version being the
    one negotiated; without, cleartext HTTP/2 with prior knowledge (h2c, no upgrade)."""
    if ca is not None:
        client = httpx.Client(http2=True, verify=client_context(ca), trust_env=False)
        url = f"https://{address}:{port}{path}"
    else:
        client = httpx.Client(http1=False, http2=True, trust_env=False)
        url = f"http://{address}:{port}{path}"
    with client:
        response = client.get(
            url,
            headers={"Host": host},
            extensions={"sni_hostname": host},
            timeout=timeout,
        )
        return H2Response(
            response.status_code,
            response.text,
            response.http_version,
            {key.lower(): value for key, value in response.headers.items()},
        )


# --- the PROXY protocol --------------------------------------------------------------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_TCP4 = 0x11  # AF_INET, STREAM
_V2_TCP6 = 0x21  # AF_INET6, STREAM


def proxy_v2_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY protocol v2 header (binary): signature, version 2 and command PROXY
    (0x21), TCP over IPv4 or IPv6, then the addresses and ports."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination of different families")
    family = _V2_TCP4 if src.version == 4 else _V2_TCP6
    addresses = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return PROXY_V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(addresses)) + addresses


def proxy_v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY protocol v1 header (text): ``PROXY TCP4 src dst sport dport\\r\\n``."""
    family = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


@dataclass(frozen=True)
class ProxyHeader:
    version: int  # 1 or 2
    command: str  # "PROXY", or "LOCAL" (v2: a health check of the proxy's own)
    family: str  # "TCP4", "TCP6", "UNKNOWN"
    source: tuple[str, int] | None
    destination: tuple[str, int] | None


def _read(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream (a raw socket file returns
    what one recv gave)."""
    data = b""
    while len(data) < size and (chunk := stream.read(size - len(data))):
        data += chunk
    return data


def read_proxy_header(stream: BinaryIO) -> ProxyHeader:
    """The PROXY header at the start of ``stream`` (v1 or v2), consumed and no byte
    more (so TLS may start right after it on an unbuffered socket file); ValueError if
    the stream does not start with one."""
    start = _read(stream, 6)
    if start == b"PROXY ":
        line = stream.readline(108 - 6)  # a v1 header is at most 107 bytes
        if not line.endswith(b"\r\n"):
            raise ValueError(f"PROXY v1 header without CRLF: {start + line!r}")
        fields = line[:-2].decode("ascii").split(" ")
        if fields[0] == "UNKNOWN":
            return ProxyHeader(1, "PROXY", "UNKNOWN", None, None)
        if fields[0] not in ("TCP4", "TCP6") or len(fields) != 5:
            raise ValueError(f"bad PROXY v1 header: {start + line!r}")
        return ProxyHeader(
            1, "PROXY", fields[0], (fields[1], int(fields[3])), (fields[2], int(fields[4]))
        )
    head = start + _read(stream, 16 - len(start))
    if len(head) < 16 or head[:12] != PROXY_V2_SIGNATURE:
        raise ValueError(f"no PROXY header: {head!r}")
    version_command, family, length = struct.unpack("!BBH", head[12:16])
    payload = _read(stream, length)
    if version_command >> 4 != 2 or len(payload) != length:
        raise ValueError(f"bad PROXY v2 header: {head + payload!r}")
    command = {0: "LOCAL", 1: "PROXY"}.get(version_command & 0x0F)
    if command is None:
        raise ValueError(f"bad PROXY v2 command {version_command:#x}")
    size = {_V2_TCP4: 4, _V2_TCP6: 16}.get(family)
    if command == "LOCAL" or size is None:
        return ProxyHeader(2, command, "UNKNOWN", None, None)
    if length < 2 * size + 4:
        raise ValueError(f"PROXY v2 addresses too short: {payload!r}")
    src = ipaddress.ip_address(payload[:size])
    dst = ipaddress.ip_address(payload[size : 2 * size])
    sport, dport = struct.unpack("!HH", payload[2 * size : 2 * size + 4])
    name = "TCP4" if family == _V2_TCP4 else "TCP6"
    return ProxyHeader(2, command, name, (str(src), sport), (str(dst), dport))


def proxy_request(
    port: int,
    host: str,
    path: str = "/",
    version: int | None = 2,
    source: tuple[str, int] = ("198.18.5.5", 51234),
    destination: tuple[str, int] | None = None,
    headers: dict[str, str] | None = None,
    address: str = "127.0.0.1",
    bind: str | None = None,
    ca: bytes | None = None,
    timeout: float = 5.0,
) -> tuple[int, str, dict[str, str]]:
    """An HTTP/1.1 GET to ``address:port`` (from ``bind``, if given) that first sends a
    PROXY header of ``version`` (1, 2; None: none) claiming the client is ``source``
    (destination: the address connected to), then, with ``ca``, TLS (SNI ``host``,
    trusting ``ca``) as a TCP load balancer in front of a TLS server does.  Returns
    status, body and headers (names in lower case); raises
    http.client.RemoteDisconnected (a ConnectionError) if no answer came."""
    destination = destination or (address, port)
    preamble = b""
    if version == 2:
        preamble = proxy_v2_header(source, destination)
    elif version == 1:
        preamble = proxy_v1_header(source, destination)
    elif version is not None:
        raise ValueError(f"PROXY protocol version {version}")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(
            socket.create_connection(
                (address, port), timeout=timeout, source_address=(bind, 0) if bind else None
            )
        )
        if ca is not None:
            sock.sendall(preamble)
            sock = stack.enter_context(client_context(ca).wrap_socket(sock, server_hostname=host))
            sock.sendall(request)
        else:
            sock.sendall(preamble + request)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            body = response.read().decode(errors="replace")
        finally:
            response.close()
        return response.status, body, {k.lower(): v for k, v in response.getheaders()}


# --- HTTP backends of the special kinds -----------------------------------------------------


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client (HAProxy) that drops a connection is not an error here


@dataclass
class _Seen:
    paths: list[str] = field(default_factory=list)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # the last, by path


class _ThreadedServer:
    """A started http.server in a thread; subclasses make ``self.server`` first."""

    server: http.server.ThreadingHTTPServer
    name: str
    address: str

    def _serve(self) -> None:
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _answer(handler: http.server.BaseHTTPRequestHandler, document: dict[str, Any]) -> None:
    body = (json.dumps(document) + "\n").encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class HTTPSBackend(_ThreadedServer):
    """An HTTPS server (ALPN http/1.1) with ``certificate`` = (cert PEM, key PEM).

    Answers GETs with JSON ``{"backend": name, "path": …, "sni": the SNI of the
    connection or null}``; ``snis`` keeps the SNI of every TLS handshake that had one
    (those the client then failed too), ``seen`` the requests."""

    def __init__(
        self,
        name: str,
        certificate: tuple[bytes, bytes],
        address: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.address = address
        self.snis: list[str | None] = []
        self.seen = _Seen()
        context = server_context(certificate, ["http/1.1"])
        sni_by_socket: dict[int, str | None] = {}

        def sni_callback(sock: Any, server_name: str | None, _context: Any) -> None:
            # Kept even when the handshake fails after it (a client refusing the
            # certificate): the client did connect and ask for that name.
            self.snis.append(server_name)
            sni_by_socket[id(sock)] = server_name

        context.sni_callback = sni_callback
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request.settimeout(10)
                self.request.do_handshake()  # here, in the connection's own thread
                self.sni = sni_by_socket.pop(id(self.request), None)
                super().setup()

            def do_GET(self) -> None:
                backend.seen.paths.append(self.path)
                backend.seen.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
                _answer(self, {"backend": backend.name, "path": self.path, "sni": self.sni})

            def log_message(self, *args: Any) -> None:
                pass

        class Server(_QuietServer):
            def get_request(self) -> tuple[Any, Any]:
                sock, client = self.socket.accept()
                wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return wrapped, client

        self.server = Server((address, port), Handler)
        self._serve()


class ProxyProtocolBackend(_ThreadedServer):
    """An HTTP/1.1 server behind a proxy that sends the PROXY protocol: each connection
    must start with a v1 or v2 header (one without is closed unanswered, as nginx's
    ``proxy_protocol`` listener does).  ``headers_received`` keeps every connection's
    header; GETs are answered with JSON ``{"backend", "path", "tls", "proxy": {version,
    command, family, source, destination}}`` of their connection's header.  With
    ``certificate`` (cert PEM, key PEM), TLS follows the header (ALPN http/1.1)."""

    def __init__(
        self,
        name: str,
        address: str = "127.0.0.1",
        port: int = 0,
        certificate: tuple[bytes, bytes] | None = None,
    ) -> None:
        context = server_context(certificate, ["http/1.1"]) if certificate else None
        self.name = name
        self.address = address
        self.headers_received: list[ProxyHeader] = []
        self.refused: list[str] = []  # connections without a valid header, and why
        self.seen = _Seen()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            rbufsize = 0  # the header is read byte-exact: TLS may follow it

            def handle(self) -> None:
                try:
                    self.proxy = read_proxy_header(self.rfile)
                except (ValueError, UnicodeDecodeError) as exc:
                    backend.refused.append(str(exc))
                    return
                backend.headers_received.append(self.proxy)
                if context is not None:
                    self.connection = context.wrap_socket(self.connection, server_side=True)
                    self.wfile.close()
                    self.wfile = self.connection.makefile("wb", 0)
                self.rfile.close()
                self.rfile = self.connection.makefile("rb")
                super().handle()

            def finish(self) -> None:
                super().finish()
                if context is not None:
                    self.connection.close()  # the TLS socket; the server closes the other

            def do_GET(self) -> None:
                backend.seen.paths.append(self.path)
                backend.seen.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
                proxy = {
                    "version": self.proxy.version,
                    "command": self.proxy.command,
                    "family": self.proxy.family,
                    "source": list(self.proxy.source) if self.proxy.source else None,
                    "destination": (
                        list(self.proxy.destination) if self.proxy.destination else None
                    ),
                }
                tls = context is not None
                document = {"backend": backend.name, "path": self.path, "tls": tls}
                _answer(self, {**document, "proxy": proxy})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer((address, port), Handler)
        self._serve()


class H2Backend:
    """An HTTP/2-only server (the ``h2`` library's state machine on plain sockets): with
    ``certificate`` (cert PEM, key PEM), TLS offering ALPN ``h2`` only; without, h2c
    with prior knowledge.  Answers every request with JSON ``{"backend", "method",
    "path", "authority", "scheme", "http_version": "HTTP/2"}``; ``requests`` keeps
    each request's headers (pseudo-headers included)."""

    def __init__(
        self,
        name: str,
        address: str = "127.0.0.1",
        port: int = 0,
        certificate: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.requests: list[dict[str, str]] = []
        self.context = server_context(certificate, ["h2"]) if certificate else None
        self.listener = socket.create_server((address, port))
        self.port = int(self.listener.getsockname()[1])
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            try:
                sock.settimeout(30)
                if self.context is not None:
                    sock = self.context.wrap_socket(sock, server_side=True)
                self._speak(sock)
            except (OSError, h2.exceptions.ProtocolError):
                pass  # a client that goes away, or speaks something else

    def _speak(self, sock: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        connection = h2.connection.H2Connection(config=config)
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        requests: dict[int, dict[str, str]] = {}
        while data := sock.recv(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = {str(k): str(v) for k, v in event.headers or []}
                elif isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    self._respond(connection, event.stream_id, requests.pop(event.stream_id))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    sock.sendall(connection.data_to_send())
                    return
            sock.sendall(connection.data_to_send())

    def _respond(
        self, connection: h2.connection.H2Connection, stream_id: int, headers: dict[str, str]
    ) -> None:
        self.requests.append(headers)
        document = {
            "backend": self.name,
            "method": headers.get(":method"),
            "path": headers.get(":path"),
            "authority": headers.get(":authority", headers.get("host")),
            "scheme": headers.get(":scheme"),
            "http_version": "HTTP/2",
        }
        body = (json.dumps(document) + "\n").encode()
        connection.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ],
        )
        connection.send_data(stream_id, body, end_stream=True)

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        self.listener.close()
        self.thread.join(5)


def https_get(
    port: int,
    server_name: str,
    ca: bytes,
    path: str = "/",
    address: str = "127.0.0.1",
    timeout: float = 5.0,
) -> tuple[int, str]:
    """A plain HTTP/1.1 GET over TLS (SNI and Host ``server_name``, trusting ``ca``)."""
    context = client_context(ca)
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(tls)
        response.begin()
        try:
            return response.status, response.read().decode()
        finally:
            response.close()
