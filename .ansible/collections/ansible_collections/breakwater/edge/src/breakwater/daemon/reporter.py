"""What the watcher tells the world: systemd (READY, WATCHDOG, STATUS, STOPPING) and the
status file.  The status file is written in a thread (at 10,000 backends it is
megabytes), one writer at a time, staged and renamed so a reader never sees half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("breakwater.watcher")


def sd_notify(message: str) -> bool:
    """Send a state line to systemd (sd_notify(3)); False when not under systemd.

    The protocol is one datagram on $NOTIFY_SOCKET; the PyPI clients for it are
    unmaintained, and this is the whole of it.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


class Reporter:
    """systemd notifications and the status file of one watcher."""

    def __init__(self, status_file: str | None) -> None:
        self.status_file = status_file  # None: no status file (dry runs, or turned off)
        self.ready_sent = False
        self._lock = threading.Lock()

    def ready(self) -> None:
        """READY=1, once: after the first sync, or when etcd is away at start."""
        if not self.ready_sent:
            self.ready_sent = True
            sd_notify("READY=1")

    @staticmethod
    def status_line(revision: int, error: str | None) -> None:
        sd_notify(f"STATUS=revision {revision}; {error or 'ok'}")

    @staticmethod
    def stopping() -> None:
        sd_notify("STOPPING=1")

    @staticmethod
    async def watchdog(stopping: asyncio.Event) -> None:
        """WATCHDOG=1 every half WatchdogSec, for as long as the event loop runs."""
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if not usec:
            return
        while not stopping.is_set():
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(usec / 2_000_000)

    @staticmethod
    async def heartbeat(
        path: str | None,
        interval: float,
        stopping: asyncio.Event,
        build: Callable[[], dict[str, Any]],
        now: asyncio.Event,
    ) -> None:
        """A few bytes every ``interval`` seconds, and at once when ``now`` is set: the
        watcher's pulse, for ``breakwater edge-health`` (the status file is only
        written on changes)."""
        if not path:
            return
        while not stopping.is_set():
            now.clear()
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path + ".staged", "w", encoding="utf-8") as handle:
                    json.dump(build(), handle)
                os.replace(path + ".staged", path)
            except OSError as exc:
                log.warning("cannot write heartbeat file %s: %s", path, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(now.wait(), interval)

    async def write_status(self, build: Callable[[], dict[str, Any]]) -> None:
        """Write the status ``build()`` makes -- built and written in a thread."""
        if self.status_file:
            await asyncio.to_thread(self._write, self.status_file, build)

    def _write(self, path: str, build: Callable[[], dict[str, Any]]) -> None:
        with self._lock:
            status = build()
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                staged = path + ".staged"
                with open(staged, "w", encoding="utf-8") as handle:
                    json.dump(status, handle)
                os.replace(staged, path)
            except OSError as exc:
                log.warning("cannot write status file %s: %s", path, exc)
