"""HAProxy's two control sockets: the worker's runtime API and the master CLI.

The runtime API session is persistent (``prompt`` mode), because spawning a client
per command costs milliseconds while a command itself costs microseconds.  Reloads
go through the master socket and are confirmed by a new worker generation: the
master's ``reload`` prints nothing in 2.6 and refuses connections while it
re-executes, so a reload is only done when ``show proc`` shows a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_PROMPT = b"\n> "
# The longest reply read: 'show servers state' at 10,000 backends of 16 slots (and the
# spare sections) is tens of megabytes; asyncio's default limit is 64 KiB.
_REPLY_LIMIT = 256 * 1024 * 1024


class HAProxyError(Exception):
    """A runtime API or master CLI command failed; the message says which and why."""


class RuntimeSession:
    """A persistent interactive session on HAProxy's stats socket, closed after
    ``idle_close`` seconds without a command: an open session keeps the worker it
    reached alive after a reload from outside (HAProxy lets an old worker go only once
    its connections are closed), for as long as ``stats timeout``."""

    def __init__(self, path: str, timeout: float = 5.0, idle_close: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.idle_close = idle_close
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._busy = 0
        self._idle: asyncio.TimerHandle | None = None

    def _used(self) -> None:
        """(Re)arm the idle close after a command."""
        if self._idle is not None:
            self._idle.cancel()
        if self._writer is not None and self.idle_close > 0:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_close, self._close_idle)

    def _close_idle(self) -> None:
        self._idle = None
        if self._busy or self._writer is None:
            return
        writer, self._reader, self._writer = self._writer, None, None
        writer.close()

    async def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path, limit=_REPLY_LIMIT), self.timeout
            )
            writer.write(b"prompt\n")
            await writer.drain()
            await asyncio.wait_for(reader.readuntil(b"> "), self.timeout)
            self._reader, self._writer = reader, writer
        return self._reader, self._writer

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def command(self, line: str) -> str:
        """Run one command; reconnects once if the worker behind the socket changed.

        Refuses a line that would be more than one command: HAProxy runs what follows
        a ``;`` or a newline as commands of their own.
        """
        check_command(line)
        self._busy += 1
        try:
            for attempt in (1, 2):
                try:
                    reader, writer = await self._streams()
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    reply = await asyncio.wait_for(reader.readuntil(_PROMPT), self.timeout)
                    return reply[: -len(_PROMPT)].decode(errors="replace").strip()
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    await self.close()
                    if attempt == 2:
                        what = f"{self.path}: {line!r}: {exc!r}"
                        raise HAProxyError(f"runtime API {what}") from exc
            raise AssertionError("unreachable")
        finally:
            self._busy -= 1
            self._used()

    async def batch(self, commands: Sequence[str | tuple[str, str]]) -> list[str]:
        """Run ``commands`` as one write on the session and return their replies.

        HAProxy runs them one after the other as it reads them, with no round trip
        between: a rollout's server moves land together, not a round trip apart.  A
        command is a line, or a line ending in ``<<`` and its payload (lines of
        printable text, none empty).  Not retried: a failure raises
        :class:`HAProxyError` and the caller decides (what ran, ran).
        """
        data = bytearray()
        for command in commands:
            if isinstance(command, str):
                check_command(command)
                data += command.encode() + b"\n"
            else:
                line, payload = command
                check_command(line)
                check_payload(line, payload)
                data += line.encode() + b"\n" + payload.encode() + b"\n"
        if not data:
            return []
        self._busy += 1
        try:
            reader, writer = await self._streams()
            writer.write(bytes(data))
            await writer.drain()
            replies = []
            for _command in commands:
                reply = await asyncio.wait_for(reader.readuntil(_PROMPT), self.timeout)
                text = reply[: -len(_PROMPT)].decode(errors="replace")
                replies.append(_CONTINUATION.sub("", text).strip())
            return replies
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await self.close()
            what = f"batch of {len(commands)}"
            raise HAProxyError(f"runtime API {self.path}: {what}: {exc!r}") from exc
        finally:
            self._busy -= 1
            self._used()


_CONTINUATION = re.compile(r"^(?:\+ )+")  # prompt mode's "+ " for each payload line


_NOT_PAYLOAD = re.compile(r"[^ -~\n]", re.ASCII)  # one class: one fast pass in C


def check_payload(line: str, payload: str) -> None:
    """Raise :class:`HAProxyError` unless ``payload`` is lines of printable ASCII, none
    empty (an empty line ends a payload: what followed would run as commands)."""
    unsafe = _NOT_PAYLOAD.search(payload) or "\n\n" in payload or payload.startswith("\n")
    if not line.endswith(" <<") or not payload.endswith("\n") or unsafe:
        raise HAProxyError(f"refused runtime payload for {line[:80]!r}: not lines of text")


_UNSAFE_COMMAND = re.compile(r"[^ -~]|;", re.ASCII)


def check_command(line: str) -> None:
    """Raise :class:`HAProxyError` unless ``line`` is one printable command without ``;``."""
    unsafe = _UNSAFE_COMMAND.search(line)
    if unsafe is not None:
        raise HAProxyError(
            f"refused runtime command {line[:80]!r}: it carries {unsafe[0]!r}, "
            "which would end the command"
        )


def runtime_reply_ok(command: str, reply: str) -> bool:
    """Whether a runtime API reply means success for the commands we send."""
    if command.startswith("add server "):
        return reply.startswith("New server registered")
    if " addr " in command:
        return "changed from" in reply or "no need to change" in reply
    return reply == ""


async def master_command(path: str, line: str, timeout: float = 5.0) -> str:
    """One command on the master CLI (non-interactive: the master closes after it)."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        writer.write_eof()  # the master answers, then closes, once it sees the end
        data = await asyncio.wait_for(reader.read(), timeout)
        return data.decode(errors="replace")
    finally:
        writer.close()


@dataclass(frozen=True)
class ProcessTable:
    master_pid: int
    reloads: int
    failed: int
    workers: tuple[int, ...]  # current workers


_MASTER_RE = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.MULTILINE)


def parse_show_proc(text: str) -> ProcessTable:
    master = _MASTER_RE.search(text)
    if master is None:
        raise HAProxyError(f"unexpected 'show proc' output: {text[:200]!r}")
    workers: list[int] = []
    section = None
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").split()[0] if line.strip("# ") else None
            continue
        fields = line.split()
        if section == "workers" and len(fields) > 1 and fields[1] == "worker":
            workers.append(int(fields[0]))
    return ProcessTable(int(master[1]), int(master[2]), int(master[3]), tuple(workers))


async def show_proc(path: str, timeout: float = 5.0) -> ProcessTable:
    return parse_show_proc(await master_command(path, "show proc", timeout))


async def reload(path: str, timeout: float = 30.0) -> ProcessTable:
    """Reload through the master socket and wait for the new worker generation.

    Retries while the master re-executes (connection refused), and raises
    :class:`HAProxyError` if the master reports a failed reload or no new worker
    appears within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    before = await _retrying(path, deadline)
    delay = 0.01
    while True:
        try:
            await master_command(path, "reload")
            break
        except (TimeoutError, OSError) as exc:
            if time.monotonic() > deadline:
                raise HAProxyError(f"master socket {path}: reload refused: {exc!r}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
    while True:
        await asyncio.sleep(0.005)
        try:
            now = await show_proc(path)
        except (TimeoutError, OSError, HAProxyError):
            now = None
        if now is not None:
            if now.failed > before.failed:
                raise HAProxyError("HAProxy rejected the new configuration (reload failed)")
            if (
                now.reloads > before.reloads
                and now.workers
                and not set(now.workers) & set(before.workers)
            ):
                return now
        if time.monotonic() > deadline:
            raise HAProxyError(f"no new HAProxy worker within {timeout:.0f}s after reload")


async def _retrying(path: str, deadline: float) -> ProcessTable:
    while True:
        try:
            return await show_proc(path)
        except (TimeoutError, OSError, HAProxyError) as exc:
            if time.monotonic() > deadline:
                raise HAProxyError(f"master socket {path}: {exc!r}") from exc
            await asyncio.sleep(0.05)
