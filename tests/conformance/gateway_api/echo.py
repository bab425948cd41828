"""An echo backend like the Gateway API conformance suite's echo-basic, for our tests.

echo-basic (kubernetes-sigs/gateway-api-conformance-images, echo-basic/echo-basic.go) answers
every request with a JSON description of the request it received; the suite's client reads
it to check where a request went and how it arrived. :class:`EchoServer` answers the same
way on its HTTP/1.1 port (a ``ThreadingHTTPServer``, keep-alive, daemon threads)::

    {"path": <the request target as received, query included>, "host": <Host>,
     "method": ..., "proto": "HTTP/1.1", "headers": {<Canonical-Name>: [values]},
     "httpPort": <its port>, "namespace": ..., "ingress": "", "service": "", "pod": ...}

with ``Content-Type: application/json`` (the client only parses a JSON content type, so a
response without it is "not from the echo"). Header names are canonicalised as Go's
textproto.CanonicalMIMEHeaderKey does (``x-foo`` -> ``X-Foo``; a name with a byte that is
not a token character is kept as is); repeated headers list every value; Host and
Transfer-Encoding are not among the headers, as in Go's server.

It also does what the conformance cases rely on:

- ``X-Echo-Set-Header: Name:value,Name:value``: those response headers, names as given (a
  name repeated: its values joined with ``,``).
- ``?delay=<Go duration>`` (``500ms``, ``1s``, ``1m30s``): wait that long before answering.
- ``/status/<NNN>``: answer that status with no body (the whole target must be that).
- ``/health``: ``OK``.
- ``/retry/...?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]``: the first N requests
  with uuid U fail - the connection is reset (SO_LINGER 0), or answered with status C - after
  waiting D if given; later ones are echoed. One lock serialises them, as in echo-basic.
- ``/ws``: a WebSocket (RFC 6455) that echoes every frame back.

echo-basic's h2c port (3001) and TLS port (8443) are not imitated.

Every echoed request is recorded (:attr:`EchoServer.requests`), as echo-basic logs
"Echoing back request made to <path> to client" - how the suite checks mirroring. The suite
tells backends apart by pod name prefix and, for weights, by the pod name without its last
two dash-separated parts: name pods ``<service>-<hash>-<hash>``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def canonical_header_key(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey."""
    if not _token(name):
        return name
    out = []
    upper = True
    for ch in name:
        out.append(ch.upper() if upper else ch.lower())
        upper = ch == "-"
    return "".join(out)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (time.ParseDuration); ValueError if invalid."""
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if not match or match.group(1) in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


@dataclass(frozen=True)
class EchoRecord:
    """A request the server echoed."""

    method: str
    path: str
    host: str
    headers: dict[str, list[str]]
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], echo: EchoServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.echo = echo
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away (or close() dropping a connection) is not an error here.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.echo._track(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.echo._untrack(self.connection)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler calls do_<METHOD>: every method is served.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    # --- request ----------------------------------------------------------------------------

    def _echo_headers(self) -> dict[str, list[str]]:
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            key = canonical_header_key(name)
            if key in ("Host", "Transfer-Encoding"):
                continue
            headers.setdefault(key, []).append(value)
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)

    def _param(self, name: str) -> str:
        return self._query().get(name, [""])[0]

    # --- response ---------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        # As Go's server: no Server header.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _answer(
        self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in headers or ():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, message: str, status: int = 500) -> None:
        body = json.dumps({"message": message}).encode()
        self._answer(
            status,
            body,
            [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")],
        )

    # --- handlers ---------------------------------------------------------------------------

    def _serve(self) -> None:
        self._read_body()
        path = urllib.parse.urlsplit(self.path).path.replace("//", "/")
        if path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        elif path == "/health":
            self._answer(200, b"OK", [("Content-Type", "text/plain; charset=utf-8")])
        elif path.startswith("/status/"):
            match = re.fullmatch(r"/status/(\d\d\d)", self.path)
            self._answer(int(match.group(1)) if match else 400)
        elif path.startswith("/retry/"):
            self._retry()
        else:
            self._echo()

    def _echo(self) -> None:
        try:
            delay = parse_go_duration(self._param("delay")) if self._param("delay") else 0.0
        except ValueError as error:
            self._error(str(error))
            return
        if delay > 0:
            time.sleep(delay)
        echo = self.server.echo
        headers = self._echo_headers()
        host = self.headers.get("Host", "")
        echo._record(EchoRecord(self.command, self.path, host, headers, time.time()))
        body = json.dumps(
            {
                "path": self.path,
                "host": host,
                "method": self.command,
                "proto": self.request_version,
                "headers": dict(sorted(headers.items())),
                "httpPort": str(echo.port),
                "namespace": echo.namespace,
                "ingress": "",
                "service": "",
                "pod": echo.pod,
            },
            indent=1,
        ).encode()
        out = [
            (n, v)
            for n, v in _echo_set_headers(headers)
            if n not in ("Content-Type", "X-Content-Type-Options")
        ]
        out += [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
        self._answer(200, body, out)

    def _retry(self) -> None:
        uuid = self._param("uuid")
        if not uuid:
            self._answer(400, b"uuid is required")
            return
        try:
            succeed_after = int(self._param("succeedAfter"))
        except ValueError:
            self._answer(400, b"succeedAfter is required")
            return
        try:
            response_code: int | None = int(self._param("responseCode"))
        except ValueError:
            response_code = None
        echo = self.server.echo
        with echo._retry_lock:
            if echo._attempts.get(uuid, 0) >= succeed_after:
                self._echo()
                return
            echo._attempts[uuid] = echo._attempts.get(uuid, 0) + 1
            delay_text = self._param("delayRetry")
            try:
                delay = parse_go_duration(delay_text) if delay_text else 0.0
            except ValueError as error:
                self._error(str(error))
                return
            if delay > 0:
                time.sleep(delay)
            if response_code is not None:
                self._answer(response_code)
                return
            # A TCP reset: close with SO_LINGER 0.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Sec-WebSocket-Version") != "13" or not key:
            self._answer(400, b"Bad Request")
            return
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = _read_frame(self.rfile)
            if frame is None:
                return
            fin, opcode, payload = frame
            if opcode == 0x8:  # close: answer it, then stop
                _write_frame(self.wfile, True, 0x8, payload[:2])
                return
            if opcode == 0x9:  # ping
                _write_frame(self.wfile, True, 0xA, payload)
            elif opcode != 0xA:  # data (text, binary, continuation): back as it came
                _write_frame(self.wfile, fin, opcode, payload)


def _echo_set_headers(headers: dict[str, list[str]]) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for value in headers.get("X-Echo-Set-Header", []):
        for pair in value.split(","):
            name, _, setting = pair.strip().partition(":")
            if name in out:
                out[name] += "," + setting.strip()
            else:
                out[name] = setting.strip()
    # Go's server drops the header names it cannot write (an empty one, say).
    return [(n, v) for n, v in out.items() if _token(n)]


def _token(name: str) -> bool:
    raw = name.encode("latin-1", "replace")
    return bool(raw) and all(b in _TOKEN for b in raw)


def _read_exactly(stream: Any, size: int) -> bytes | None:
    data = stream.read(size) if size else b""
    return data if len(data) == size else None


def _read_frame(stream: Any) -> tuple[bool, int, bytes] | None:
    head = _read_exactly(stream, 2)
    if head is None:
        return None
    fin = bool(head[0] & 0x80)
    opcode = head[0] & 0x0F
    masked = bool(head[1] & 0x80)
    length = head[1] & 0x7F
    if length == 126:
        extended = _read_exactly(stream, 2)
        if extended is None:
            return None
        length = struct.unpack("!H", extended)[0]
    elif length == 127:
        extended = _read_exactly(stream, 8)
        if extended is None:
            return None
        length = struct.unpack("!Q", extended)[0]
    mask = _read_exactly(stream, 4) if masked else b""
    payload = _read_exactly(stream, length)
    if mask is None or payload is None:
        return None
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload


def _write_frame(stream: Any, fin: bool, opcode: int, payload: bytes) -> None:
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    stream.write(head + payload)
    stream.flush()


class EchoServer:
    """An echo backend on ``address``, any free port; ``close()`` stops it."""

    def __init__(self, namespace: str, pod: str, address: str = "127.0.0.1") -> None:
        self.namespace = namespace
        self.pod = pod
        self._lock = threading.Lock()
        self._records: list[EchoRecord] = []
        self._connections: set[socket.socket] = set()
        self._retry_lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._server = _Server((address, 0), self)
        self.address: str = address
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"echo {namespace}/{pod}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EchoServer({self.namespace}/{self.pod} at {self.address}:{self.port})"

    @property
    def requests(self) -> list[EchoRecord]:
        """The requests echoed so far, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def close(self) -> None:
        """Stop serving and drop the open connections."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _record(self, record: EchoRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
