"""When the watcher syncs: changes are marked as they arrive; a burst that changes routes
is coalesced (a quiet period, at most a maximum wait); server-only changes go at once.
After server-only changes the file is rewritten later, once they stop (the target says
when: :meth:`~breakwater.targets.haproxy.HAProxyTarget.flush_due`).
"""

from __future__ import annotations

import asyncio
import time

from breakwater.config import CoalesceSettings


class Scheduler:
    """Pending changes and the clock of the current burst."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()  # set by every change, signal and finished flush
        self.pending: list[str] = []  # what changed (etcd keys, "configuration reloaded")
        self.first_change = 0.0
        self.last_change = 0.0

    def mark(self, keys: list[str]) -> None:
        now = time.monotonic()
        if not self.pending:
            self.first_change = now
        self.last_change = now
        self.pending.extend(keys)
        self.changed.set()

    def take(self) -> list[str]:
        """The pending changes, now being synced."""
        keys, self.pending = self.pending, []
        return keys

    async def coalesce(
        self, settings: CoalesceSettings, stopping: asyncio.Event, servers_only: bool
    ) -> None:
        """Wait until the burst is over: no change for the quiet period, or the maximum
        wait since its first change.  Server-only changes do not wait (runtime API only:
        cheap, so there is no reason to wait for more)."""
        if servers_only:
            return
        while not stopping.is_set():
            now = time.monotonic()
            deadline = min(
                self.last_change + settings.quiet_period, self.first_change + settings.max_wait
            )
            if deadline <= now:
                return
            await asyncio.sleep(deadline - now)

    @staticmethod
    def cause(keys: list[str]) -> str:
        """The changes behind a sync, for its log line."""
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return ", ".join(keys[:3]) + more

    @staticmethod
    def flush_timeout(due: float | None) -> float | None:
        """Seconds until a deferred file write is due (``due``: monotonic), or None."""
        return None if due is None else max(0.0, due - time.monotonic())
