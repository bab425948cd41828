"""The watcher daemon: etcd watch -> decode -> catalog -> render -> check -> swap -> reload.

Three parts, each in its module, joined here:

* the :class:`~breakwater.daemon.follower.Follower` lists the resource prefixes at one
  revision, then watches from the next one; it reconnects with a jittered backoff
  (rotating endpoints), resumes from the last revision it saw, and re-lists when that
  revision was compacted;
* the :class:`~breakwater.daemon.scheduler.Scheduler` says when to sync: a burst is
  coalesced (quiet period, maximum wait), server-only changes go at once, the file
  they leave stale is rewritten once they stop;
* the :class:`~breakwater.daemon.reporter.Reporter` tells systemd and the status file.

The sync hands the catalog to the targets (HAProxy, Varnish).  Faults never make the
edge serve less: while etcd is away, or a value is bad, or a check fails, the last good
configuration stays in place.  Signal handlers only set flags; SIGHUP re-reads the
watcher's own configuration, SIGTERM exits cleanly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from typing import Any

from breakwater.catalog import Catalog, Route
from breakwater.config import Config, ConfigError, load_config, read_resources
from breakwater.daemon.follower import Follower
from breakwater.daemon.metrics import Metrics, MetricsError
from breakwater.daemon.reporter import Reporter
from breakwater.daemon.scheduler import Scheduler
from breakwater.memory import settle_heap
from breakwater.render.templates import clear_template_cache
from breakwater.targets.haproxy import HAProxyTarget
from breakwater.targets.staging import ApplyResult
from breakwater.targets.varnish import VarnishTarget

log = logging.getLogger("breakwater.watcher")


def summarize(old: Catalog | None, new: Catalog, servers_only: list[str] | None = None) -> str:
    """What changed between two catalogs, in one line.

    ``servers_only``: the backends whose servers alone changed (nothing else to compare).
    """
    if old is None:
        return (
            f"{len(new.routes)} routes, {len(new.backends)} backends, {len(new.rejected)} rejected"
        )
    parts = []
    old_routes: dict[tuple[str, str, str], Route] = {}
    new_routes: dict[tuple[str, str, str], Route] = {}
    if old.routes is not new.routes:  # else servers alone changed: nothing to compare
        # Routes are shared between catalogs (an unchanged object's are the same
        # objects): only those that are not can differ, found by identity.
        old_ids, new_ids = {id(r) for r in old.routes}, {id(r) for r in new.routes}
        old_routes = {(r.host, r.path, r.match): r for r in old.routes if id(r) not in new_ids}
        new_routes = {(r.host, r.path, r.match): r for r in new.routes if id(r) not in old_ids}
    for key in sorted(new_routes.keys() - old_routes.keys())[:5]:
        parts.append(f"+route {key[0]}{key[1]} ({new_routes[key].source})")
    for key in sorted(old_routes.keys() - new_routes.keys())[:5]:
        parts.append(f"-route {key[0]}{key[1]} ({old_routes[key].source})")
    if servers_only is None and old.backends is not new.backends:
        added = sorted(new.backends.keys() - old.backends.keys())
        removed = sorted(old.backends.keys() - new.backends.keys())
        parts.extend(f"+backend {name}" for name in added[:5])
        parts.extend(f"-backend {name}" for name in removed[:5])
    names = new.backends if servers_only is None else servers_only
    for name in names:
        backend, before = new.backends[name], old.backends.get(name)
        if before is not None and before is not backend and before.servers != backend.servers:
            ready = sum(1 for s in backend.servers if s.state == "ready")
            parts.append(f"{name}: {len(backend.servers)} servers ({ready} ready)")
    new_rejections = (
        set() if old.rejected is new.rejected else set(new.rejected) - set(old.rejected)
    )
    parts.extend(f"rejected {r.object}: {r.reason}" for r in sorted(new_rejections, key=str)[:5])
    return "; ".join(parts[:12]) or "no routing change"


def catalog_generation(served: dict[str, Any] | None, catalog: Catalog) -> str:
    """What a node serves, as a hash: its catalog (routes, backends with their
    servers, certificate sources, rejections) and its certificates' contents.  Not
    haproxy.cfg, which also holds the node's own settings (binds, paths), nor the
    slots, whose order is each node's history: nodes serving the same have the same."""
    digest = hashlib.sha256(json.dumps(served, sort_keys=True, default=str).encode())
    for name, certificate in sorted(catalog.certificates.items()):
        digest.update(f"\0{name}\0{certificate.pem}".encode())
    return digest.hexdigest()[:16]


class Watcher:
    """The daemon: a follower, a scheduler, a reporter, and the targets they drive."""

    def __init__(self, config: Config, config_path: str | None, dry_run: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.dry_run = dry_run
        self.scheduler = Scheduler()
        self.metrics = Metrics()
        self.follower = Follower(
            config.etcd,
            self.scheduler.mark,
            self._on_outage,
            self._on_connected,
            self.metrics,
            read_resources(config),
        )
        self.reporter = Reporter(None if dry_run else config.watcher.status_file)
        self.target = HAProxyTarget(config.haproxy, config.varnish, dry_run=dry_run)
        self.varnish = VarnishTarget(config.varnish, dry_run=dry_run)
        self.vcl_pending = config.varnish.enabled
        self.catalog: Catalog | None = None  # what is served now
        self.stopping = asyncio.Event()
        self.started_at = time.time()
        self.pulse = asyncio.Event()  # set: write the heartbeat now
        self.reload_requested = False
        self.last_error: str | None = None
        self.last_sync: float | None = None
        self.last_result: ApplyResult | None = None  # of the last sync or file write
        self._outage: str | None = None  # why following etcd stopped, while it is stopped
        self._reports: set[asyncio.Task[None]] = set()
        self._reported: tuple[Any, ...] = ()  # the headline the status file last said
        self._generation: tuple[str, float] = ("", 0.0)  # served, and since (wall time)
        self.revision_applied = 0  # the etcd revision of what is served
        snapshot = self.metrics.snapshot  # what the metrics read at scrape time
        snapshot.connected = self._connected
        snapshot.revisions = self._revisions
        snapshot.slots = self._slot_usage
        snapshot.spares = self._spare_usage
        snapshot.rejected_keys = self._rejected_keys
        self._flushing: asyncio.Task[None] | None = None

    def _connected(self) -> bool:
        return self.follower.connected

    def _revisions(self) -> tuple[int, int]:
        return self.follower.state.revision, self.revision_applied

    def _slot_usage(self) -> tuple[int, int]:
        return self.target.slot_usage()  # the target of now: SIGHUP may replace it

    def _spare_usage(self) -> tuple[int, int]:
        shape = self.target.shape
        return (len(shape.serving), shape.free_spares()) if shape is not None else (0, 0)

    def _rejected_keys(self) -> dict[str, int]:
        return dict(self.follower.state.rejected_keys)

    # --- signals: flags only -------------------------------------------------------

    def _on_hup(self) -> None:
        self.reload_requested = True
        self.scheduler.changed.set()

    def _on_term(self) -> None:
        self.stopping.set()
        self.scheduler.changed.set()

    def _on_outage(self, reason: str) -> None:
        first = self._outage is None
        self.last_error = self._outage = reason
        self.reporter.ready()  # running, and serving what HAProxy already has
        if first:  # the status says so once an outage begins, not at every retry
            self._report_soon()

    def _on_connected(self) -> None:
        """etcd is back: the status says so at once, even in a cluster where nothing
        changes (the next sync would otherwise be the first to say it)."""
        if self._outage is not None and self.last_error == self._outage:
            self.last_error = None
        self._outage = None
        self._report_soon()

    def _report_soon(self) -> None:
        """The status line and file (and the heartbeat), written beside whatever the
        loop is doing."""
        self.pulse.set()
        self.reporter.status_line(self.follower.state.revision, self.last_error)
        if self.catalog is not None:  # before the first sync there is nothing to report
            task = asyncio.ensure_future(self.report(self.last_result))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    def _reload_config(self) -> None:
        self.reload_requested = False
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("SIGHUP: configuration not reloaded, keeping the current one: %s", exc)
            return
        clear_template_cache()
        if config.watcher.metrics_listen != self.config.watcher.metrics_listen:
            log.warning("SIGHUP: watcher.metrics_listen takes effect at the next start")
        if config.etcd != self.config.etcd or read_resources(config) != read_resources(self.config):
            log.info("SIGHUP: etcd settings or what is read changed, reconnecting")
            self.follower.reconfigure(config.etcd, read_resources(config))
        # Read again even under the same path: keys are added and rotated in place.
        self.follower.state.reload_encryption(config.etcd)
        if config.haproxy != self.config.haproxy or config.varnish != self.config.varnish:
            self.target = HAProxyTarget(config.haproxy, config.varnish, dry_run=self.dry_run)
        self.varnish = VarnishTarget(config.varnish, dry_run=self.dry_run)
        self.vcl_pending = config.varnish.enabled
        self.config = config
        self.reporter.status_file = None if self.dry_run else config.watcher.status_file
        log.info("SIGHUP: configuration reloaded from %s", self.config_path or "defaults")
        self.scheduler.mark(["configuration reloaded"])

    # --- syncing -------------------------------------------------------------------

    async def sync_vcl(self) -> None:
        """Load the VCL if it changed (start, SIGHUP); it never depends on the routes."""
        if not self.vcl_pending:
            return
        result = await self.varnish.apply()
        outcome = "failed" if result.action == "failed" else "ok"
        self.metrics.syncs.labels("vcl", outcome).inc()
        if result.action == "failed":
            self.last_error = result.detail
            log.error("varnish: %s", result.detail)
            return  # retried at the next sync
        self.vcl_pending = False
        if result.action != "none":
            log.info("varnish: %s", result.detail)

    async def sync(self) -> ApplyResult | None:
        await self.sync_vcl()
        first_change, started = self.scheduler.first_change, time.monotonic()
        keys = self.scheduler.take()
        revision = self.follower.state.revision  # what the catalog holds at least
        try:
            catalog, servers_only = await self.follower.catalog(self.config)
            result = await self.target.apply(catalog, servers_only)
        except Exception as exc:
            self.last_error = f"sync failed: {exc!r}"
            log.exception("sync failed, keeping the last good configuration")
            self.follower.state.rebuild_next()  # what HAProxy missed: found by a full compare
            self.metrics.syncs.labels("error", "failed").inc()
            await self.report(None)  # the status says so at once
            return None
        now = time.monotonic()
        since_event = now - first_change if first_change else None
        self.metrics.sync(result, now - started, since_event)
        if result.refused:
            catalog = replace(catalog, rejected=[*catalog.rejected, *result.refused])
            for rejection in result.refused:
                log.error("%s: %s", rejection.object, rejection.reason)
        if result.action != "failed":
            snapshot = self.metrics.snapshot
            if self.catalog is None or catalog.rejected is not self.catalog.rejected:
                snapshot.rejected = tuple((r.object, r.reason) for r in catalog.rejected)
            self.revision_applied = revision
        if result.action == "failed":
            self.last_error = result.detail
            log.error("%s (after %s)", result.detail, self.scheduler.cause(keys))
        else:
            if result.action != "none" or self.catalog is None:
                change = summarize(self.catalog, catalog, servers_only)
                action = f"{result.action} ({result.cause})" if result.cause else result.action
                log.info("%s: %s (after %s)", action, change, self.scheduler.cause(keys))
            if self.catalog is None:
                settle_heap()  # the first catalog is applied: what lives on is known
                self.pulse.set()  # the heartbeat says "synced" now, not at the next beat
            self.catalog = catalog
            self.last_error = None
            self.last_sync = time.time()
        if result.diff:
            print(result.diff, flush=True)
        if self.target.stale_since is None or self._headline() != self._reported:
            await self.report(result)  # else with the deferred file write (flush)
        return result

    def _headline(self) -> tuple[Any, ...]:
        """What the status must say at once when it changes (an error, etcd, objects
        rejected), even while a deferred file write is pending."""
        return (self.last_error, self.follower.connected, self.metrics.snapshot.rejected)

    async def flush(self) -> None:
        """Write the file (and the status) that server-only syncs left stale.

        Runs as a task beside the sync loop: events keep being applied meanwhile.
        """
        try:
            if self.catalog is None or self.target.flush_due(0, 0) is None:
                return
            started = time.monotonic()
            result = await self.target.flush(self.catalog)
            kind = "flush" if result.action == "written" else result.action
            self.metrics.sync(result, time.monotonic() - started, kind=kind)
            if result.action == "failed":
                self.last_error = result.detail
                log.error("%s (writing the file after runtime changes)", result.detail)
                self.target.mark_stale(restart=True)  # retried after another delay
            elif result.action != "none":
                action = f"{result.action} ({result.cause})" if result.cause else result.action
                log.info("%s: %s", action, result.detail)
            await self.report(result)
        finally:
            self.scheduler.changed.set()  # the sync loop works out the next flush, if any

    def _flush_timeout(self) -> float | None:
        if self._flushing is not None and not self._flushing.done():
            return None  # one at a time; it wakes the loop when it ends
        coalesce = self.config.coalesce
        return self.scheduler.flush_timeout(
            self.target.flush_due(coalesce.file_delay, coalesce.file_max_delay)
        )

    def _pulse(self) -> dict[str, Any]:
        """The heartbeat: alive, and whether what HAProxy serves came from etcd."""
        return {
            "written_at": time.time(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "etcd_connected": self.follower.connected,
            "synced": self.catalog is not None,
            "revision": self.follower.state.revision,
            "revision_applied": self.revision_applied,
        }

    async def report(self, result: ApplyResult | None) -> None:
        """The status file, from what is served now and how the last sync went."""
        self.last_result, self._reported = result, self._headline()
        catalog, state, applied = self.catalog, self.follower.state, self.revision_applied
        now = time.time()
        stale = self.target.stale_since
        status: dict[str, Any] = {
            "written_at": now,
            "pid": os.getpid(),
            "revision": state.revision,
            "revision_applied": applied,
            "etcd_connected": self.follower.connected,
            "last_sync": self.last_sync,
            "last_action": result.action if result is not None else "failed",
            "last_error": self.last_error,
            "file_behind_since": None if stale is None else now - (time.monotonic() - stale),
            "rejected_count": len(catalog.rejected) if catalog else 0,
            "ignored_count": len(catalog.ignored) if catalog else 0,
            "rejected_keys_total": dict(state.rejected_keys),
        }

        def build() -> dict[str, Any]:  # in the writer's thread: the catalog is large
            served = catalog.as_dict() if catalog else None
            generation = catalog_generation(served, catalog) if catalog else ""
            if generation != self._generation[0]:
                self._generation = (generation, now)
            self.metrics.snapshot.generation = (generation, applied)
            return {
                **status,
                "generation": generation or None,
                "generation_since": self._generation[1] if generation else None,
                "catalog": served,
            }

        await self.reporter.write_status(build)

    # --- the main loop -------------------------------------------------------------

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
            await self.follower.list_once()
            self.scheduler.mark([f"list at revision {self.follower.state.revision}"])
            result = await self.sync()
            return 0 if result is not None and result.action != "failed" else 1
        if self.config.watcher.metrics_listen and not self.dry_run:
            try:
                self.metrics.serve(self.config.watcher.metrics_listen)
            except MetricsError as exc:
                log.error("%s", exc)
                return 1
            log.info("metrics on http://%s/metrics", self.config.watcher.metrics_listen)
        follower = asyncio.create_task(self.follower.run(self.stopping))
        watchdog = asyncio.create_task(self.reporter.watchdog(self.stopping))
        settings = self.config.watcher
        heartbeat = asyncio.create_task(
            self.reporter.heartbeat(
                None if self.dry_run else settings.heartbeat_file,
                settings.heartbeat_interval,
                self.stopping,
                self._pulse,
                self.pulse,
            )
        )
        try:
            await self._loop()
        finally:
            self.reporter.stopping()
            await cancel_and_wait([follower, watchdog, heartbeat])
            if self._flushing is not None:
                await asyncio.gather(self._flushing, return_exceptions=True)
            await self.flush()  # the file says what runs when the watcher is gone
            await self.follower.close()
            for target in (self.target, self.varnish):
                await target.close()
        log.info("stopped")
        return 0

    async def _loop(self) -> None:
        changed = self.scheduler.changed
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(changed.wait(), self._flush_timeout())
            except TimeoutError:
                self._flushing = asyncio.create_task(self.flush())
                continue
            changed.clear()
            if self.reload_requested:
                self._reload_config()
            if self.stopping.is_set():
                break
            if not self.scheduler.pending:
                continue
            servers_only = self.follower.servers_only
            await self.scheduler.coalesce(self.config.coalesce, self.stopping, servers_only)
            await self.sync()
            self.reporter.ready()
            self.reporter.status_line(self.follower.state.revision, self.last_error)


async def cancel_and_wait(tasks: list[asyncio.Task[Any]], attempts: int = 5) -> None:
    """Cancel ``tasks`` and wait until they have ended, cancelling again what still runs
    after a second.  Python 3.11's asyncio.wait_for loses a cancellation that arrives as
    what it awaits completes (CPython gh-86296, fixed in 3.12); aetcd awaits each watch
    it creates that way, so a SIGTERM during a watch's creation could leave the
    follower waiting for etcd events for good, and the watcher never stopping."""
    pending = set(tasks)
    for _attempt in range(attempts):
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=1.0)
        for task in done:  # retrieved, as gather(return_exceptions=True) did
            if not task.cancelled():
                task.exception()
        if not pending:
            return
    log.warning("stopping: %d tasks did not end when cancelled", len(pending))
