"""Varnish's management CLI (``varnishd -T``), spoken directly.

The controller and the watcher need no ``varnishadm``: a line per command, answers
framed as ``<status> <length>\\n<body>\\n``, and a challenge-response login with the
shared secret file (``-S``), which never crosses the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import dataclass

_STATUS_OK = 200
_STATUS_AUTH = 107


class VarnishError(Exception):
    """A Varnish CLI command failed; names the node, the command and Varnish's answer."""


def split_address(address: str, default_port: int = 6082) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host.strip("[]"), int(port)


def parse_status_line(header: bytes) -> tuple[int, int] | None:
    """``<status> <length>`` of an answer's first line; None: not an answer's first line."""
    parts = header.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


def auth_response(challenge: str, secret: bytes) -> str:
    """The ``auth`` argument for ``challenge``: sha256 of challenge, secret, challenge."""
    line = challenge.encode() + b"\n"
    return hashlib.sha256(line + secret + line).hexdigest()


class VarnishCLI:
    """One authenticated session on a Varnish management interface."""

    def __init__(self, address: str, secret: bytes, timeout: float = 30.0) -> None:
        self.address = address
        self.secret = secret
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> VarnishCLI:
        host, port = split_address(self.address)
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.timeout
            )
            status, body = await self._read()
            if status == _STATUS_AUTH:
                challenge = body.split("\n", 1)[0]
                status, body = await self._send(f"auth {auth_response(challenge, self.secret)}")
            if status != _STATUS_OK:
                raise VarnishError(f"varnish {self.address}: login refused ({status}: {body})")
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise VarnishError(f"varnish {self.address}: cannot connect: {exc!r}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(self) -> tuple[int, str]:
        assert self._reader is not None
        header = await asyncio.wait_for(self._reader.readline(), self.timeout)
        framing = parse_status_line(header)
        if framing is None:
            raise VarnishError(f"varnish {self.address}: unexpected answer {header!r}")
        status, length = framing
        body = await asyncio.wait_for(self._reader.readexactly(length + 1), self.timeout)
        return status, body[:-1].decode(errors="replace")

    async def _send(self, line: str) -> tuple[int, str]:
        assert self._writer is not None
        self._writer.write(line.encode() + b"\n")
        await self._writer.drain()
        return await self._read()

    async def command(self, *words: str) -> str:
        """Run a command; arguments are quoted for the CLI.  Raises on a non-200 answer."""
        line = " ".join(quote(word) for word in words)
        try:
            status, body = await self._send(line)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            raise VarnishError(f"varnish {self.address}: {words[0]}: {exc!r}") from exc
        if status != _STATUS_OK:
            raise VarnishError(f"varnish {self.address}: {words[0]} failed ({status}): {body}")
        return body


def quote(word: str) -> str:
    """Quote one CLI argument (backslash and double quote escaped)."""
    if word and re.fullmatch(r"[A-Za-z0-9_.:/=~!&|<>-]+", word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def read_secret(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@dataclass(frozen=True)
class LoadedVCL:
    name: str
    active: bool


def parse_vcl_list(text: str) -> list[LoadedVCL]:
    """``vcl.list``: ``active|available|discarded  auto|cold|warm  temp  busy  name [...]``."""
    loaded = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] in ("active", "available"):
            loaded.append(LoadedVCL(fields[4], fields[0] == "active"))
    return loaded
