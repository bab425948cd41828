"""Following etcd: list at one revision, then watch from the next; reconnect with a
jittered backoff (rotating endpoints), resume from the last revision seen, re-list
when it was compacted.  The follower keeps the :class:`ClusterState` and hands out
catalogs of it; a full build runs in a thread while the follower waits, so the event
loop (the etcd stream, the systemd watchdog) never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from breakwater.catalog import Catalog
from breakwater.catalog.live import LiveCatalog
from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.source import Compacted, EtcdSettings, EtcdSource, SourceError
from breakwater.cluster.state import ClusterState
from breakwater.config import Config
from breakwater.daemon.metrics import Metrics

log = logging.getLogger("breakwater.watcher")


class Backoff:
    """Exponential backoff with jitter: each delay is drawn from the upper half of the
    current step, so many edges that lost etcd together do not return together.

    The step doubles from ``initial`` up to ``maximum`` and goes back to ``initial``
    as soon as a list or a watch is established, so a short blip after a long outage
    is retried as quickly as the first one.  After etcd is reachable again the
    follower is back within one delay: at most ``maximum``, and less than the outage
    itself (the steps double, so the last one is shorter than the time already waited).
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum = initial, max(initial, maximum)
        self.step = initial

    def reset(self) -> None:
        self.step = self.initial

    def next(self) -> float:
        delay = self.step * random.uniform(0.5, 1.0)
        self.step = min(self.step * 2, self.maximum)
        return delay


class Outage:
    """An etcd outage as the log tells it: its first failure at once, then one line a
    minute while it lasts, and its end with how long it took -- not a line for each of
    the hundreds of retries a long outage takes."""

    REPEAT = 60.0  # seconds between "still unavailable" lines

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time of the first failure
        self.attempts = 0
        self._logged = 0.0

    def failed(self, reason: str) -> None:
        now = time.monotonic()
        self.attempts += 1
        if self.since is None:
            self.since, self._logged = now, now
            log.error("etcd unavailable, serving the last good configuration: %s", reason)
        elif now - self._logged >= self.REPEAT:
            self._logged = now
            log.error(
                "etcd still unavailable after %.0f s (%d attempts): %s",
                now - self.since,
                self.attempts,
                reason,
            )
        else:
            log.debug("etcd unavailable (attempt %d): %s", self.attempts, reason)

    def ended(self, how: str) -> None:
        if self.since is not None:
            log.info(
                "etcd reachable again after %.1f s (%d failed attempts): %s",
                time.monotonic() - self.since,
                self.attempts,
                how,
            )
        self.since, self.attempts = None, 0


class Follower:
    """The cluster as etcd says, kept current; changes reported through ``on_change``."""

    def __init__(
        self,
        settings: EtcdSettings,
        on_change: Callable[[list[str]], None],
        on_outage: Callable[[str], None],
        on_connected: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        resources: list[str] | None = None,
    ) -> None:
        self.settings = settings
        # What is listed and watched under the prefix (config.read_resources).
        self.source = EtcdSource(settings, list(RESOURCES) if resources is None else resources)
        self._relist = False  # the resources read changed (SIGHUP): list afresh
        self.state = ClusterState.for_settings(settings)
        self.live = LiveCatalog()  # the catalog of the state, kept between changes
        self.connected = False
        self.backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self.outage = Outage()
        self._on_change = on_change
        self._on_outage = on_outage  # called with the reason, each time following stops
        self._on_connected = on_connected  # called when a list or watch is established
        self.metrics = metrics
        # Held while the state changes, or while a full build reads it (in a thread).
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Future[None]] = set()

    async def list_once(self) -> None:
        """One full list, then disconnect (``--once``)."""
        self.state = await ClusterState.listed(self.source, self.settings)
        await self.source.disconnect()

    async def run(self, stopping: asyncio.Event) -> None:
        """List, then watch; reconnect and resume or re-list, until ``stopping``."""
        listed = False
        while not stopping.is_set():
            try:
                if not listed or self._relist:
                    self._relist = False
                    await self._list()
                    listed = True
                async for batch in self.source.watch(self.state.revision + 1):
                    if not self.connected:
                        self._established(f"watching from revision {self.state.revision + 1}")
                    if not batch:
                        continue
                    async with self._lock:
                        keys = self.state.apply(batch)
                    if self.metrics is not None:
                        deletes = sum(1 for change in batch if change.value is None)
                        self.metrics.events(len(batch) - deletes, deletes)
                    self._on_change(keys)
            except Compacted as exc:
                log.warning("revision %d compacted (%s): re-listing", self.state.revision, exc)
                listed = False
            except Exception as exc:
                # etcd away (SourceError, OSError) -- or anything else: following stops
                # for nothing; it backs off, reconnects and, for the unexpected, re-lists.
                self.connected = False
                if isinstance(exc, SourceError | OSError):
                    self.outage.failed(str(exc))
                    self._on_outage(str(exc))
                else:
                    listed = False
                    log.exception("following etcd failed; re-listing after a backoff")
                    self._on_outage(f"following etcd failed: {exc!r}")
                await self.source.disconnect(rotate=True)
                delay = self.backoff.next()
                log.debug("reconnecting to etcd in %.2f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)

    def _established(self, how: str) -> None:
        """A list or a watch is established: connected, and the backoff starts afresh."""
        self.connected = True
        self.backoff.reset()
        self.outage.ended(how)
        if self._on_connected is not None:
            self._on_connected()

    async def _list(self) -> None:
        state = await ClusterState.listed(self.source, self.settings)
        async with self._lock:
            self.state = state
        self._established(f"listed at revision {state.revision}")
        self._on_change([f"list at revision {state.revision}"])

    async def catalog(self, config: Config) -> tuple[Catalog, list[str] | None]:
        """The catalog after the changes so far, and the backends whose servers alone
        changed (None after a full build, which runs in a thread)."""
        async with self._lock:
            refreshed = self.live.refresh(self.state, config.catalog)
            if refreshed is not None:
                return refreshed
            return await asyncio.to_thread(self.live.rebuild, self.state, config.catalog)

    @property
    def servers_only(self) -> bool:
        """Only servers changed since the last catalog (no need to wait for more)."""
        return self.live.servers_only(self.state)

    def reconfigure(self, settings: EtcdSettings, resources: list[str] | None = None) -> None:
        """New etcd settings or resources to read (SIGHUP): the next connection uses
        them; new resources are listed afresh (what is no longer read is let go)."""
        self.settings = settings
        self.backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self.source.settings = settings
        if resources is not None and list(resources) != list(self.source.resources):
            self.source.resources = list(resources)
            self._relist = True
        self._background.add(asyncio.ensure_future(self.source.disconnect()))

    async def close(self) -> None:
        await self.source.disconnect()
