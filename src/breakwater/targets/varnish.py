"""Varnish: its management CLI, VCL reloads without restarts, bans and purges.

The CLI protocol (``varnishd -T``) is spoken directly, so the controller and the
watcher need no ``varnishadm``: a line per command, answers framed as
``<status> <length>\\n<body>\\n``, and a challenge-response login with the shared
secret file (``-S``), which never crosses the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from breakwater import validate
from breakwater.render.vcl import render_vcl
from breakwater.targets.staging import ApplyResult, CheckFailed, FileTarget, write_file

log = logging.getLogger(__name__)

VCL_PREFIX = "bw_"
_STATUS_OK = 200
_STATUS_AUTH = 107


class VarnishError(Exception):
    """A Varnish CLI command failed; names the node, the command and Varnish's answer."""


def split_address(address: str, default_port: int = 6082) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host.strip("[]"), int(port)


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
                digest = hashlib.sha256(
                    challenge.encode() + b"\n" + self.secret + challenge.encode() + b"\n"
                ).hexdigest()
                status, body = await self._send(f"auth {digest}")
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
        parts = header.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
            raise VarnishError(f"varnish {self.address}: unexpected answer {header!r}")
        body = await asyncio.wait_for(self._reader.readexactly(int(parts[1]) + 1), self.timeout)
        return int(parts[0]), body[:-1].decode(errors="replace")

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


@dataclass(frozen=True)
class VarnishSettings:
    """The Varnish tier: where HAProxy sends cacheable requests, and the way back.

    Varnish's misses return to HAProxy through ``return_socket``, a unix socket
    bound by HAProxy's internal frontend: no client can open it, so no header a
    client sends can route around the cache or into the internal frontend.
    """

    enabled: bool = False
    server: str = "127.0.0.1:6081"  # HAProxy server address of Varnish's listener
    return_socket: str = "/run/haproxy/varnish-return.sock"
    return_socket_mode: str = "660"
    return_socket_group: str | None = "varnish"
    admin: str = "127.0.0.1:6082"  # varnishd -T
    secret_file: str = "/etc/varnish/secret"  # varnishd -S
    vcl_file: str = "/etc/varnish/breakwater.vcl"
    template: str | None = None  # a path: the operator's own VCL template
    keep_vcls: int = 3  # loaded VCLs kept (the active one included)
    varnishd: str = "varnishd"
    nodes: tuple[str, ...] = ()  # admin addresses of every edge's Varnish, for ban/purge
    health_interval: str = "1s"


@dataclass
class VarnishTarget:
    """Render, check (``varnishd -C``), load under a new name, use, discard the old."""

    settings: VarnishSettings
    dry_run: bool = False

    def __post_init__(self) -> None:
        self.file = FileTarget(
            self.settings.vcl_file,
            # -j none: compile as the calling user, who just wrote the staged file.
            [self.settings.varnishd, "-C", "-j", "none", "-f", "{}"],
            check_timeout=120,
        )

    def _cli(self) -> VarnishCLI:
        return VarnishCLI(self.settings.admin, read_secret(self.settings.secret_file))

    async def active_source(self, cli: VarnishCLI) -> str | None:
        """The source of the VCL in use, as Varnish has it."""
        loaded = parse_vcl_list(await cli.command("vcl.list"))
        active = next((vcl.name for vcl in loaded if vcl.active), None)
        return await cli.command("vcl.show", active) if active else None

    async def apply(self, vcl: str | None = None) -> ApplyResult:
        vcl = render_vcl(self.settings) if vcl is None else vcl
        try:
            async with self._cli() as cli:
                source = await self.active_source(cli)
                if source is not None and source.rstrip("\n") == vcl.rstrip("\n"):
                    return ApplyResult("none")
                if self.dry_run:
                    return ApplyResult("dry-run", "would load a new VCL")
                previous = self.file.current()
                try:
                    await self.file.write_checked(vcl)
                except (CheckFailed, OSError) as exc:
                    return ApplyResult("failed", f"VCL not loaded, the active one stays: {exc}")
                name = f"{VCL_PREFIX}{time.time_ns()}"
                try:
                    await cli.command("vcl.load", name, self.settings.vcl_file)
                    await cli.command("vcl.use", name)
                except VarnishError as exc:
                    if previous is not None:
                        write_file(self.settings.vcl_file, previous, 0o644)
                    return ApplyResult("failed", f"VCL not loaded, the active one stays: {exc}")
                await self.discard_old(cli, name)
        except (VarnishError, OSError) as exc:
            return ApplyResult("failed", str(exc))
        return ApplyResult("reload", f"VCL {name} loaded and in use")

    async def discard_old(self, cli: VarnishCLI, current: str) -> None:
        """Keep the newest ``keep_vcls`` (the active one included); discard the rest."""
        loaded = parse_vcl_list(await cli.command("vcl.list"))
        others = [vcl.name for vcl in loaded if not vcl.active and vcl.name != current]
        ours = sorted((n for n in others if n.startswith(VCL_PREFIX)), reverse=True)
        stale = [n for n in others if not n.startswith(VCL_PREFIX)]  # e.g. "boot"
        keep = max(self.settings.keep_vcls - 1, 0)
        for name in stale + ours[keep:]:
            try:
                await cli.command("vcl.discard", name)
            except VarnishError as exc:  # a label or a busy VCL: try again next time
                log.warning("cannot discard VCL %s: %s", name, exc)


# --- invalidation -----------------------------------------------------------------------


def _regex(value: str, what: str) -> str:
    if not value or len(value) > 1024 or not value.isprintable():
        raise validate.InvalidValue(f"{what} {value!r} must be a printable regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise validate.InvalidValue(f"{what} {value!r} is not a regular expression: {exc}") from exc
    return value


def ban_expression(host: str, path_pattern: str, lurker: bool) -> list[str]:
    """CLI words of a ban on ``host`` and URLs matching ``path_pattern``.

    ``lurker``: match on object headers (``obj.http.*``) so Varnish's ban lurker
    removes the objects in the background -- a purge by pattern.  Otherwise match on
    the request (``req.*``): objects are dropped when next requested.
    """
    host = validate.hostname(host)
    pattern = _regex(path_pattern, "path pattern")
    if lurker:
        return [
            "obj.http.X-Breakwater-Host",
            "==",
            host,
            "&&",
            "obj.http.X-Breakwater-Url",
            "~",
            pattern,
        ]
    return ["req.http.host", "==", host, "&&", "req.url", "~", pattern]


@dataclass(frozen=True)
class NodeResult:
    node: str
    ok: bool
    detail: str


async def invalidate(
    nodes: Sequence[str],
    secret: bytes,
    host: str,
    path_pattern: str,
    purge: bool,
    timeout: float = 10.0,
) -> list[NodeResult]:
    """Ban (or purge) on every node at once; one result per node, failures included."""
    words = ["ban", *ban_expression(host, path_pattern, lurker=purge)]

    async def one(node: str) -> NodeResult:
        try:
            async with VarnishCLI(node, secret, timeout) as cli:
                await cli.command(*words)
        except VarnishError as exc:
            return NodeResult(node, False, str(exc))
        return NodeResult(node, True, "purged" if purge else "banned")

    return list(await asyncio.gather(*(one(node) for node in nodes)))


def node_secret(path: str) -> bytes:
    if not os.path.exists(path):
        raise VarnishError(f"secret file {path} does not exist")
    return read_secret(path)
