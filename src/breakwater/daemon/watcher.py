"""The watcher daemon: etcd watch -> decode -> catalog -> render -> check -> swap -> reload.

Two tasks share one :class:`ClusterState`:

* the *source* task lists the resource prefixes at one revision, then watches from
  the next one; it reconnects with backoff (rotating endpoints), resumes from the
  last revision it saw, and re-lists when that revision was compacted;
* the *sync* task waits for changes, coalesces a burst (quiet period, maximum wait),
  builds the catalog and hands it to the HAProxy target.

Faults never make the edge serve less: while etcd is away, or a value is bad, or a
check fails, the last good configuration stays in place.  Signal handlers only set
flags; SIGHUP re-reads the watcher's own configuration, SIGTERM exits cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import replace

from breakwater.catalog import (
    Catalog,
)
from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.source import Compacted, EtcdSource, SourceError
from breakwater.cluster.state import ClusterState
from breakwater.config import Config, ConfigError, load_config
from breakwater.render.templates import clear_template_cache
from breakwater.targets.haproxy import HAProxyTarget
from breakwater.targets.staging import ApplyResult
from breakwater.targets.varnish import VarnishTarget

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


def summarize(old: Catalog | None, new: Catalog, servers_only: list[str] | None = None) -> str:
    """What changed between two catalogs, in one line.

    ``servers_only``: the backends whose servers alone changed (nothing else to compare).
    """
    if old is None:
        return (
            f"{len(new.routes)} routes, {len(new.backends)} backends, {len(new.rejected)} rejected"
        )
    parts = []
    same = old.routes is new.routes
    old_routes = {} if same else {(r.host, r.path, r.match): r for r in old.routes}
    new_routes = {} if same else {(r.host, r.path, r.match): r for r in new.routes}
    for key in sorted(new_routes.keys() - old_routes.keys())[:5]:
        parts.append(f"+route {key[0]}{key[1]} ({new_routes[key].source})")
    for key in sorted(old_routes.keys() - new_routes.keys())[:5]:
        parts.append(f"-route {key[0]}{key[1]} ({old_routes[key].source})")
    names = new.backends if servers_only is None else servers_only
    for name in names:
        backend, before = new.backends[name], old.backends.get(name)
        if before is not None and before.servers != backend.servers:
            ready = sum(1 for s in backend.servers if s.state == "ready")
            parts.append(f"{name}: {len(backend.servers)} servers ({ready} ready)")
    new_rejections = (
        set() if old.rejected is new.rejected else set(new.rejected) - set(old.rejected)
    )
    parts.extend(f"rejected {r.object}: {r.reason}" for r in sorted(new_rejections, key=str)[:5])
    return "; ".join(parts[:12]) or "no routing change"


class Watcher:
    def __init__(self, config: Config, config_path: str | None, dry_run: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.dry_run = dry_run
        self.state = ClusterState.for_settings(config.etcd)
        self.target = HAProxyTarget(config.haproxy, config.varnish, dry_run=dry_run)
        self.varnish = VarnishTarget(config.varnish, dry_run=dry_run)
        self.vcl_pending = config.varnish.enabled
        self.source = EtcdSource(config.etcd, list(RESOURCES))
        self.catalog: Catalog | None = None
        self.stopping = asyncio.Event()
        self.changed = asyncio.Event()
        self.synced_once = asyncio.Event()
        self.reload_requested = False
        self.pending_keys: list[str] = []
        self.first_change = 0.0
        self.last_change = 0.0
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self.etcd_connected = False
        self._background: set[asyncio.Future[None]] = set()
        # Held while the state changes (follower) or a full build reads it (in a thread).
        self._state_lock = asyncio.Lock()
        self._flushing: asyncio.Task[None] | None = None
        self._status_lock = threading.Lock()

    # --- signals: flags only -------------------------------------------------------

    def _on_hup(self) -> None:
        self.reload_requested = True
        self.changed.set()

    def _on_term(self) -> None:
        self.stopping.set()
        self.changed.set()

    # --- the source task -----------------------------------------------------------

    def _mark_changed(self, keys: list[str]) -> None:
        now = time.monotonic()
        if not self.pending_keys:
            self.first_change = now
        self.last_change = now
        self.pending_keys.extend(keys)
        self.changed.set()

    async def follow(self) -> None:
        """List, then watch; reconnect and resume or re-list, forever."""
        settings = self.config.etcd
        delay = settings.backoff_initial
        listed = False
        while not self.stopping.is_set():
            try:
                if not listed:
                    state = await ClusterState.listed(self.source, settings)
                    async with self._state_lock:
                        self.state = state
                    listed = True
                    self.etcd_connected = True
                    self._mark_changed([f"list at revision {self.state.revision}"])
                async for batch in self.source.watch(self.state.revision + 1):
                    self.etcd_connected = True
                    delay = settings.backoff_initial
                    async with self._state_lock:
                        keys = self.state.apply(batch)
                    self._mark_changed(keys)
            except Compacted as exc:
                log.warning("revision %d compacted (%s): re-listing", self.state.revision, exc)
                listed = False
            except Exception as exc:
                # etcd away (SourceError, OSError) -- or anything else: following stops
                # for nothing; it backs off, reconnects and, for the unexpected, re-lists.
                self.etcd_connected = False
                if isinstance(exc, SourceError | OSError):
                    self.last_error = str(exc)
                    log.error("etcd unavailable, serving the last good configuration: %s", exc)
                else:
                    listed = False
                    self.last_error = f"following etcd failed: {exc!r}"
                    log.exception("following etcd failed; re-listing after a backoff")
                self._ready()  # running, and serving what HAProxy already has
                await self.source.disconnect(rotate=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, settings.backoff_max)

    def _ready(self) -> None:
        if not self.synced_once.is_set():
            self.synced_once.set()
            sd_notify("READY=1")

    # --- the sync task -------------------------------------------------------------

    async def _coalesce(self) -> None:
        if self.state.servers_only:
            return  # runtime API only: cheap, so no reason to wait for more
        quiet, maximum = self.config.coalesce.quiet_period, self.config.coalesce.max_wait
        while not self.stopping.is_set():
            now = time.monotonic()
            wait = min(self.last_change + quiet, self.first_change + maximum) - now
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def _reload_config(self) -> None:
        self.reload_requested = False
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("SIGHUP: configuration not reloaded, keeping the current one: %s", exc)
            return
        clear_template_cache()
        if config.etcd != self.config.etcd:
            log.info("SIGHUP: etcd settings changed, reconnecting")
            self.source.settings = config.etcd
            self._background.add(asyncio.ensure_future(self.source.disconnect()))
        if config.haproxy != self.config.haproxy or config.varnish != self.config.varnish:
            self.target = HAProxyTarget(config.haproxy, config.varnish, dry_run=self.dry_run)
        self.varnish = VarnishTarget(config.varnish, dry_run=self.dry_run)
        self.vcl_pending = config.varnish.enabled
        self.config = config
        log.info("SIGHUP: configuration reloaded from %s", self.config_path or "defaults")
        self._mark_changed(["configuration reloaded"])

    async def sync_vcl(self) -> None:
        """Load the VCL if it changed (start, SIGHUP); it never depends on the routes."""
        if not self.vcl_pending:
            return
        result = await self.varnish.apply()
        if result.action == "failed":
            self.last_error = result.detail
            log.error("varnish: %s", result.detail)
            return  # retried at the next sync
        self.vcl_pending = False
        if result.action != "none":
            log.info("varnish: %s", result.detail)

    async def sync(self) -> ApplyResult | None:
        await self.sync_vcl()
        keys, self.pending_keys = self.pending_keys, []
        try:
            catalog, servers_only = await self._catalog()
            result = await self.target.apply(catalog, servers_only)
        except Exception as exc:
            self.last_error = f"sync failed: {exc!r}"
            log.exception("sync failed, keeping the last good configuration")
            self.state.rebuild_next()  # what HAProxy missed is found by a full compare
            await asyncio.to_thread(self._write_status, None)  # the status says so at once
            return None
        if result.refused:
            catalog = replace(catalog, rejected=[*catalog.rejected, *result.refused])
            for rejection in result.refused:
                log.error("%s: %s", rejection.object, rejection.reason)
        cause = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        if result.action == "failed":
            self.last_error = result.detail
            log.error("%s (after %s)", result.detail, cause)
        else:
            if result.action != "none" or self.catalog is None:
                log.info(
                    "%s: %s (after %s)",
                    result.action,
                    summarize(self.catalog, catalog, servers_only),
                    cause,
                )
            self.catalog = catalog
            self.last_error = None
            self.last_sync = time.time()
        if result.diff:
            print(result.diff, flush=True)
        if self.target.stale_since is None or result.action == "failed":
            await asyncio.to_thread(self._write_status, result)  # else by flush()
        return result

    async def _catalog(self) -> tuple[Catalog, list[str] | None]:
        """The catalog after the pending changes.  A full build runs in a thread, with
        the follower waiting: the event loop (etcd stream, watchdog) never waits on it."""
        async with self._state_lock:
            refreshed = self.state.refresh(self.config)
            if refreshed is not None:
                return refreshed
            return await asyncio.to_thread(self.state.rebuild, self.config)

    async def flush(self) -> None:
        """Write the file (and the status) that server-only syncs left stale.

        Runs as a task beside the sync loop: events keep being applied meanwhile.
        """
        try:
            if self.catalog is None or self.target.stale_since is None:
                return
            result = await self.target.flush(self.catalog)
            if result.action == "failed":
                self.last_error = result.detail
                log.error("%s (writing the file after runtime changes)", result.detail)
            elif result.action != "none":
                log.info("%s: %s", result.action, result.detail)
            if result.action == "failed":
                self.target.mark_stale(restart=True)  # retried after another delay
            await asyncio.to_thread(self._write_status, result)
        finally:
            self.changed.set()  # the sync loop works out the next flush, if any

    def _flush_timeout(self) -> float | None:
        if self._flushing is not None and not self._flushing.done():
            return None  # one at a time; it wakes the loop when it ends
        coalesce = self.config.coalesce
        due = self.target.flush_due(coalesce.file_delay, coalesce.file_max_delay)
        return None if due is None else max(0.0, due - time.monotonic())

    def _write_status(self, result: ApplyResult | None) -> None:
        """Write the status file (in a thread: at 10,000 backends it is megabytes)."""
        path = self.config.watcher.status_file
        if not path or self.dry_run:
            return
        with self._status_lock:
            self._write_status_file(path, result)

    def _write_status_file(self, path: str, result: ApplyResult | None) -> None:
        status = {
            "revision": self.state.revision,
            "etcd_connected": self.etcd_connected,
            "last_sync": self.last_sync,
            "last_action": result.action if result is not None else "failed",
            "last_error": self.last_error,
            "rejected_keys_total": dict(self.state.rejected_keys),
            "catalog": self.catalog.as_dict() if self.catalog else None,
        }
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            staged = path + ".staged"
            with open(staged, "w", encoding="utf-8") as handle:
                json.dump(status, handle)
            os.replace(staged, path)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)

    async def _watchdog(self) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if not usec:
            return
        while not self.stopping.is_set():
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(usec / 2_000_000)

    async def run(self, once: bool = False) -> int:
        # File and status writes run in threads beside the event loop; a thread
        # holding the GIL is asked to hand it over after this long (default 5 ms),
        # which bounds what such a write can add to the handling of an event.
        sys.setswitchinterval(0.001)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        loop.add_signal_handler(signal.SIGTERM, self._on_term)
        loop.add_signal_handler(signal.SIGINT, self._on_term)
        if once:
            self.state = await ClusterState.listed(self.source, self.config.etcd)
            await self.source.disconnect()
            self.pending_keys = [f"list at revision {self.state.revision}"]
            result = await self.sync()
            return 0 if result is not None and result.action != "failed" else 1
        follower = asyncio.create_task(self.follow())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            while not self.stopping.is_set():
                try:
                    await asyncio.wait_for(self.changed.wait(), self._flush_timeout())
                except TimeoutError:
                    self._flushing = asyncio.create_task(self.flush())
                    continue
                self.changed.clear()
                if self.reload_requested:
                    self._reload_config()
                if self.stopping.is_set():
                    break
                if not self.pending_keys:
                    continue
                await self._coalesce()
                await self.sync()
                self._ready()
                sd_notify(f"STATUS=revision {self.state.revision}; {self.last_error or 'ok'}")
        finally:
            sd_notify("STOPPING=1")
            follower.cancel()
            watchdog.cancel()
            await asyncio.gather(follower, watchdog, return_exceptions=True)
            if self._flushing is not None:
                await asyncio.gather(self._flushing, return_exceptions=True)
            await self.flush()  # the file says what runs when the watcher is gone
            await self.source.disconnect()
            await self.target.close()
        log.info("stopped")
        return 0
