"""HAProxy as a target: place servers, render, and bring HAProxy to the catalog --
through the runtime API when only servers changed, else staged, checked, swapped and
reloaded through the master socket.  Its settings live here, beside it."""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace

from breakwater.catalog import (
    Backend,
    Catalog,
    Rejection,
    route_sources,
    source_fingerprints,
    without_sources,
)
from breakwater.catalog.tls import served_names
from breakwater.memory import collector_paused
from breakwater.render.haproxy import (
    RenderedConfig,
    render_generation,
    render_haproxy,
    render_shaped,
    structure_key,
)
from breakwater.render.shape import (
    SPARE_PREFIX,
    Shape,
    fresh_shape,
    kept_options,
    place,
    sectioned,
    shape_from_config,
)
from breakwater.render.slots import (
    Layout,
    added_server_options,
    assign_slots,
    layout_from_config,
    runtime_commands,
    structure_of,
)
from breakwater.targets import Plan, Target
from breakwater.targets.haproxy_api import HAProxyError, RuntimeSession, reload, runtime_reply_ok
from breakwater.targets.haproxy_routes import (
    MAP_FILES,
    Command,
    LiveFiles,
    RouteChange,
    entry_command,
    live_directory,
    map_commands,
    prepared_version,
    reply_ok,
    route_change,
)
from breakwater.targets.isolate import find_culprits
from breakwater.targets.settings import HAProxySettings, VarnishSettings
from breakwater.targets.staging import (
    ApplyResult,
    CheckFailed,
    FileTarget,
    ensure_node_state,
    generation_dirs,
    remove_old_generations,
    write_generation,
)

log = logging.getLogger(__name__)

RENAME_LULL = 1.0
"""Seconds without a route change before spares running low are renamed (a reload)."""
RENAME_LULL_MAX = 10.0
"""Seconds at most that rename waits for a lull once spares run low."""


Structure = tuple[str, tuple[tuple[str, int], ...]]  # see render.slots.structure_of


@dataclass(kw_only=True)
class HAProxyPlan(Plan):
    """``none``: the file says it already; ``runtime``: no reload needed -- server
    ``commands``, and ``routes`` (maps, certificates) when ``rendered`` (None: only
    the servers of the backends named, the file is left stale); ``reload``: anything
    else; ``dry-run``: ``diff``."""

    layout: Layout  # slots after the plan (runtime without rendered: those backends')
    cause: str = "config"  # of a reload: see ApplyResult.cause
    structure: Structure | None = None
    rendered: RenderedConfig | None = None
    commands: list[str] = field(default_factory=list)
    routes: RouteChange | None = None
    shape: Shape | None = None  # the backend sections after the plan
    catalog: Catalog | None = None
    key: Hashable = None  # the structure key after the plan (see render.haproxy)
    placed: Mapping[str, Backend] | None = None  # the sections' backends after the plan


@dataclass
class HAProxyTarget(Target[HAProxyPlan]):
    settings: HAProxySettings
    varnish: VarnishSettings | None = None
    haproxy_binary: str = "haproxy"
    dry_run: bool = False
    reload_timeout: float = 30.0
    layout: Layout = field(default_factory=dict)
    structure: Structure | None = None
    stale_since: float | None = None  # monotonic time HAProxy got ahead of the file
    stale_last: float = 0.0  # monotonic time of the last server-only change

    def __post_init__(self) -> None:
        self.file = FileTarget(self.settings.config_file, [self.haproxy_binary, "-c", "-f", "{}"])
        self.session = RuntimeSession(self.settings.stats_socket)
        # Held by whatever writes haproxy.cfg (a sync that renders all, or flush());
        # server-only syncs do not write it, so they never wait for a write.
        self._file_lock = asyncio.Lock()
        # Held by a full apply (plan, runtime or reload); server-only syncs wait for it,
        # so none lands on a worker a reload is replacing, nor between a plan and its
        # batch.  (The file lock alone lets them run beside the flush's write.)
        self._full = asyncio.Lock()
        self._outside = False  # a runtime plan found HAProxy reloaded from outside
        self._runtime_changes = 0  # server-only syncs that sent commands, ever
        self.refused: tuple[Rejection, ...] = ()  # what the last render left out
        # The backend sections HAProxy runs (spares in use, sections kept), the files
        # it serves from its generation directory, the catalog it was brought to.
        self.shape: Shape | None = None
        self.live: LiveFiles | None = None
        self._live_checked = False  # live.directory confirmed by 'show map' this session
        self.served: Catalog | None = None
        self.rename_at: float | None = None  # monotonic: the reload that renames spares
        self._rename_soon = False  # that reload comes soon (spares running low)
        self._low_since: float | None = None  # when the spares started running low
        self._flush_overtaken = False  # route changes came while the last flush rendered
        self._names: dict[str, frozenset[str]] = {}  # certificate PEM -> SNI names
        self._key: Hashable = None  # the structure key of what HAProxy runs
        self._placed: Mapping[str, Backend] = {}  # section -> the backend it runs
        # Sections whose servers changed alone since: not what _placed says any more.
        self._displaced: set[str] = set()
        # Objects whose configuration HAProxy's check refused: source -> (reason,
        # fingerprint).  Held back until they change (see _isolate).
        self.held_back: dict[str, tuple[str, str]] = {}
        current = self.file.current()
        if not self.layout and current:
            self.layout = layout_from_config(current)  # keep HAProxy's slots as they are
        if current:
            self.shape = shape_from_config(current)

    async def apply(self, catalog: Catalog, servers_only: list[str] | None = None) -> ApplyResult:
        """Bring HAProxy and its file to ``catalog``: plan, check, swap, activate.

        ``servers_only``: the backends whose servers changed when nothing else did;
        they are changed live and the file is left stale (see :meth:`flush`).  When
        the check fails, the objects it refuses are held back and the rest applied.
        """
        result = None
        if servers_only is not None:
            async with self._full:  # not while a full apply (the flush's rename) runs
                plan = self._plan_servers(catalog, servers_only)
                if plan is not None:
                    result = await self._runtime(plan)
        if result is None:
            async with self._file_lock:
                result = await self._apply_all(catalog)
                if result.check_failed and await self._isolate(catalog, result.check_failed):
                    result = await self._apply_all(catalog)  # the rest, without them
        result.refused = self.refused
        return result

    async def _apply_all(self, catalog: Catalog, fresh: bool = False) -> ApplyResult:
        async with self._full:
            return await self._apply_full(catalog, fresh)

    async def _apply_full(self, catalog: Catalog, fresh: bool) -> ApplyResult:
        plan = await self.plan(catalog, fresh=fresh)
        if plan.action == "runtime":
            self._outside = False
            result = await self._runtime(plan)
            if result is None and self._outside:
                # HAProxy was reloaded from outside: what it runs was read back from
                # the file; planned again from that, once.
                plan = await self.plan(catalog, fresh=fresh)
                if plan.action != "runtime":
                    return await self._reload_path(plan)
                result = await self._runtime(plan)
            if result is not None:
                return result
            # HAProxy takes the whole file instead: never a half-applied change -- a
            # reload even when the file already says it (HAProxy may run half of it).
            plan = replace(await self.plan(catalog, fresh=True), cause="runtime-refused")
            if plan.action == "none":
                plan = replace(plan, action="reload", previous=self.file.current())
        return await self._reload_path(plan)

    async def _reload_path(self, plan: HAProxyPlan) -> ApplyResult:
        """Check, swap and activate a plan that is not runtime work alone."""
        try:
            await self.check(plan)
            await self.swap(plan)
        except CheckFailed as exc:
            detail = f"kept the last good configuration: {exc}"
            return ApplyResult("failed", detail, check_failed=str(exc))
        except OSError as exc:
            return ApplyResult("failed", f"kept the last good configuration: {exc}")
        try:
            return await self.activate(plan)
        except HAProxyError as exc:
            self.file.restore(plan.previous)
            return ApplyResult("failed", f"reload failed, previous file restored: {exc}")

    async def _runtime(self, plan: HAProxyPlan) -> ApplyResult | None:
        """Activate, then swap: the file never names servers HAProxy was not given.
        None: the runtime API refused a command, so it takes a reload."""
        try:
            result = await self.activate(plan)
        except HAProxyError as exc:
            log.warning("runtime update failed, reloading instead: %s", exc)
            return None
        failed = await self._write_servers(plan)
        if failed is not None:
            return failed
        if plan.rendered is not None:
            self.stale_since = None
        return result

    async def plan(
        self, catalog: Catalog, servers_only: list[str] | None = None, fresh: bool = False
    ) -> HAProxyPlan:
        """Render and decide; nothing is written or sent.

        ``servers_only``: those backends alone are placed, if their slots hold them.
        The catalog is first rendered in the backend sections HAProxy runs (new
        Services in spares, gone ones kept): if that differs from what HAProxy loaded
        in servers, routes and certificates alone, it takes no reload.  Else (or
        ``fresh``) it is rendered afresh, every backend under its own name, and
        reloaded.
        """
        if servers_only is not None:
            plan = self._plan_servers(catalog, servers_only)
            if plan is not None:
                return plan
        shape = None
        if not (fresh or self.dry_run or self.shape is None):
            shape = place(self._holding_back(catalog), self.shape)
        cause = "rename" if fresh else "spares" if self.shape and shape is None else "config"
        if shape is not None:
            shape = kept_options(shape, self.served)
            fast = self._plan_fast(catalog, shape)
            if fast is not None:
                return fast
        current = self.file.current()
        if shape is not None:
            rendered, layout, shape = self.render(catalog, shape)
            if rendered.config == current:
                return self._plan_none(catalog, rendered, layout, shape)
            structure = structure_of(rendered.config, layout)
            if self.structure is not None and structure[0] == self.structure[0]:
                plan = self._plan_runtime(catalog, rendered, layout, shape, structure)
                if plan is not None:
                    return plan
                grows = self._commands(self.layout, layout) is not None
                cause = "certificates" if grows else "slots"
        rendered, layout, shape = self.render(catalog, None)
        if rendered.config == current:
            return self._plan_none(catalog, rendered, layout, shape)
        if self.dry_run:
            diff = "".join(
                difflib.unified_diff(
                    (current or "").splitlines(keepends=True),
                    rendered.config.splitlines(keepends=True),
                    self.settings.config_file,
                    self.settings.config_file + " (rendered)",
                )
            )
            return HAProxyPlan(action="dry-run", layout=layout, rendered=rendered, diff=diff)
        return HAProxyPlan(
            action="reload",
            layout=layout,
            structure=structure_of(rendered.config, layout),
            rendered=rendered,
            previous=current,
            cause=cause,
            shape=shape,
            catalog=catalog,
        )

    def _plan_fast(self, catalog: Catalog, shape: Shape) -> HAProxyPlan | None:
        """With the default template, when the structure key says that routes, spares in
        use and certificates alone changed: the runtime plan without rendering
        haproxy.cfg (tens of milliseconds at 1,000 backends).  The file is then stale,
        and written off the event path (:meth:`flush`), which checks the structure
        again.  None: it takes the full render."""
        if self.settings.template or self.live is None or self.structure is None:
            return None
        held = self._holding_back(catalog)
        with collector_paused():
            # The sections HAProxy runs passed the screen: the same objects pass again.
            generation = render_generation(sectioned(held, shape), self.settings, self._placed)
            placed, before, displaced = generation.catalog.backends, self._placed, self._displaced
            changed = {
                name: backend
                for name, backend in placed.items()
                if name in displaced
                or (before.get(name) is not backend and before.get(name) != backend)
            }
            layout = dict(self.layout)
            if changed:
                layout.update(
                    assign_slots(Catalog(backends=changed), self.layout, self.settings.min_slots)
                )
        key = structure_key(generation, layout)
        if key is None or key != self._key:
            return None
        # Only the sections whose backend changed can have servers to move.
        old = {name: self.layout[name] for name in changed if name in self.layout}
        commands = self._commands(old, {name: layout[name] for name in old})
        routes = route_change(self.live, generation.files, self._served_names)
        if commands is None or routes is None:
            return None
        self.refused = generation.refused + self._held_back_rejections()
        if not (commands or routes) and shape == self.shape:
            # HAProxy runs this already (a change to objects no route uses): nothing to
            # send, and the file, stale or not, is left to the flush.
            return HAProxyPlan(action="none", layout=self.layout, structure=self.structure)
        return HAProxyPlan(
            action="runtime",
            layout=layout,
            structure=self.structure,
            commands=commands,
            routes=routes,
            shape=shape,
            catalog=catalog,
            key=key,
            placed=placed,
        )

    def _plan_none(
        self, catalog: Catalog, rendered: RenderedConfig, layout: Layout, shape: Shape
    ) -> HAProxyPlan:
        structure = structure_of(rendered.config, layout)
        return HAProxyPlan(
            action="none",
            layout=layout,
            structure=structure,
            rendered=rendered,
            shape=shape,
            catalog=catalog,
        )

    def _plan_runtime(
        self,
        catalog: Catalog,
        rendered: RenderedConfig,
        layout: Layout,
        shape: Shape,
        structure: Structure,
    ) -> HAProxyPlan | None:
        """The runtime plan to a render whose structure HAProxy runs; None: it takes a
        reload (a backend cannot grow, or certificates that must be reloaded)."""
        commands = self._commands(self.layout, layout)
        if commands is None or self.live is None:
            return None
        routes = route_change(self.live, rendered.generation_files, self._served_names)
        if routes is None:
            return None
        return HAProxyPlan(
            action="runtime",
            layout=layout,
            structure=structure,
            rendered=rendered,
            commands=commands,
            routes=routes,
            shape=shape,
            catalog=catalog,
        )

    def _served_names(self, pem: str) -> frozenset[str]:
        names = self._names.get(pem)
        if names is None:
            names = self._names[pem] = served_names(pem)
        return names

    def _plan_servers(self, catalog: Catalog, names: list[str]) -> HAProxyPlan | None:
        """The servers of ``names`` placed alone; None: it takes the whole catalog."""
        if self.structure is None or self.dry_run:
            return None
        section_of = self.shape.section_of() if self.shape is not None else {}
        backends = {
            section_of.get(name, name): catalog.backends[name]
            for name in names
            if name in catalog.backends
        }
        if len(backends) != len(names) or any(name not in self.layout for name in backends):
            return None
        old = {name: self.layout[name] for name in backends}
        new = assign_slots(Catalog(backends=backends), old, self.settings.min_slots)
        commands = self._commands(old, new)
        if commands is None:
            return None  # a backend outgrew its slots and cannot grow: that takes a reload
        structure = self.structure
        if any(len(new[name]) != len(old[name]) for name in backends):
            text, counts = self.structure
            sizes = dict(counts) | {name: len(slots) for name, slots in new.items()}
            structure = (text, tuple(sorted(sizes.items())))
        return HAProxyPlan(action="runtime", layout=new, structure=structure, commands=commands)

    def _commands(self, old: Layout, new: Layout) -> list[str] | None:
        """The runtime commands from ``old`` to ``new``, servers added to backends that
        outgrew their slots (given what the configuration HAProxy loaded gives them);
        None when one of those cannot take servers at runtime."""
        grown = [name for name, slots in new.items() if len(slots) != len(old[name])]
        added: dict[str, str | None] = {}
        if grown and self.structure is not None:
            added = added_server_options(self.structure[0], grown)
        if any(added.get(name) is None for name in grown):
            return None
        return runtime_commands(old, new, added)

    async def check(self, plan: HAProxyPlan) -> None:
        """Write the generation directory and the staged file, and run ``haproxy -c``.

        A runtime plan is not checked: see :meth:`swap`.
        """
        if plan.action != "reload" or plan.rendered is None:
            return
        os.makedirs(self.settings.config_dir, mode=0o755, exist_ok=True)
        ensure_node_state(self.settings.config_dir)
        write_generation(plan.rendered)
        await self.file.stage(plan.rendered.config)

    async def swap(self, plan: HAProxyPlan) -> None:
        """Rename the checked file into place; for a runtime plan, write the file.

        A runtime plan's file differs from the live one in server lines, comments and
        the generation directory alone: its structure is that of the file HAProxy
        loaded at the last reload, server lines are rendered from validated addresses,
        and the maps and certificates in the directory are what HAProxy took at
        runtime -- while ``haproxy -c`` costs seconds of CPU at 10,000 backends.  So it
        is not checked again.
        """
        if plan.rendered is None:
            return
        if plan.action == "reload":
            self.file.swap()
        elif plan.action == "runtime":
            previous = self.file.current()
            write_generation(plan.rendered)
            await self.file.write_checked(plan.rendered.config, check=False)
            self._remove_generations(plan.rendered, previous)

    async def activate(self, plan: HAProxyPlan) -> ApplyResult:
        """Runtime commands, or a reload through the master socket confirmed by a new
        worker generation.  Raises :class:`HAProxyError` when HAProxy refuses."""
        if plan.action == "dry-run":
            return ApplyResult("dry-run", "would change haproxy.cfg", diff=plan.diff)
        if plan.action == "none":
            if plan.rendered is not None:  # else: nothing rendered, nothing to settle
                self._settle(plan)
            return ApplyResult("none")
        if plan.action == "runtime":
            return await self._send(plan)
        if not os.path.exists(self.settings.master_socket):
            self._settle(plan)
            return ApplyResult("written", "HAProxy is not running; it will start with this file")
        try:
            await reload(self.settings.master_socket, self.reload_timeout)
        finally:
            await self.session.close()  # the old worker's runtime session is gone
        self._settle(plan)
        if plan.rendered is not None:
            self._remove_generations(plan.rendered, plan.previous)
        return ApplyResult("reload", "configuration reloaded", cause=plan.cause)

    def _remove_generations(self, rendered: RenderedConfig, previous: str | None) -> None:
        """Old generation directories go; kept: the file's, the one HAProxy loaded (its
        maps' and certificates' names), and the previous file's."""
        keep = {rendered.generation_dir}
        if self.live is not None:
            keep.add(self.live.directory)
        if previous:
            keep.update(generation_dirs(previous))
        remove_old_generations(self.settings.config_dir, keep)

    def _settle(self, plan: HAProxyPlan) -> None:
        """HAProxy runs the whole plan (loaded from the file), and the file says so."""
        self.layout, self.structure, self.stale_since = plan.layout, plan.structure, None
        self.shape, self.served, self.rename_at = plan.shape, plan.catalog, None
        self._rename_soon, self._low_since = False, None
        if plan.rendered is not None:
            self._placing(plan.rendered.structure_key, plan.rendered.backends)
        if plan.rendered is not None and (plan.action == "reload" or self.live is None):
            # Loaded from the file (nothing to do at start: what HAProxy loaded, it is
            # assumed, and checked before the first route change).
            files = plan.rendered.generation_files
            self.live = LiveFiles.of(plan.rendered.generation_dir, files)
            self._live_checked = False

    async def _send(self, plan: HAProxyPlan) -> ApplyResult:
        """The plan's commands as one batch: servers placed, certificates loaded, route
        maps replaced (each in one commit), then servers freed and certificates
        dropped -- so a route never points at a backend before its servers are there,
        nor loses them before it stops pointing there."""
        batch = await self._batch(plan)
        replies = await self.session.batch(batch)
        failed = next(
            (
                (command, reply)
                for command, reply in zip(batch, replies, strict=True)
                if not _reply_ok(command, reply)
            ),
            None,
        )
        if failed is not None:
            command, reply = failed
            if replies[0].startswith("Proxy is disabled"):
                # The session is on an old worker: HAProxy was reloaded by someone else
                # (an operator, a handler), from a file whose sections may not be ours.
                await self._reloaded_from_outside()
                raise HAProxyError("HAProxy was reloaded from outside")
            await self._abort(batch)
            line = command if isinstance(command, str) else command[0]
            raise HAProxyError(f"runtime API refused {line!r}: {reply[:300]}")
        self.structure = plan.structure  # the same, or with more slots (added servers)
        if plan.rendered is not None:
            self.layout = plan.layout
            self.shape, self.served = plan.shape, plan.catalog
            self._placing(plan.rendered.structure_key, plan.rendered.backends)
            self._routes_applied(plan)
        elif plan.routes is not None:  # routes without a render: the file is left stale
            self.layout = plan.layout
            self.shape, self.served = plan.shape, plan.catalog
            self._placing(plan.key, plan.placed or {})
            self._routes_applied(plan)
            self._runtime_changes += 1
            self.mark_stale()
        else:  # those backends alone: the file is left stale
            self.layout.update(plan.layout)
            # Their servers are no longer those of the backends last placed: the next
            # route plan places them again.
            self._displaced.update(plan.layout)  # O(change): not a copy of every section
            if plan.commands:
                self._runtime_changes += 1
                self.mark_stale()
        count = len(batch)
        return ApplyResult("runtime", f"{count} runtime commands", count)

    async def _batch(self, plan: HAProxyPlan) -> list[Command]:
        """The plan's commands in the order :meth:`_send` gives; the route maps'
        versions are prepared first (one more round trip, when maps change)."""
        commanded = {command.split()[2].partition("/")[0] for command in plan.commands}
        freed = _freed_servers(
            self.layout, {name: plan.layout[name] for name in commanded if name in plan.layout}
        )
        placing = [c for c in plan.commands if c.split()[2] not in freed]
        freeing = [c for c in plan.commands if c.split()[2] in freed]
        routes = plan.routes
        if not routes or self.live is None:
            return [*placing, *freeing]
        await self._check_live()
        live = self.live
        maps: list[Command] = []
        whole = {}  # maps that take a new version
        for name, text in routes.maps.items():
            entry = entry_command(live.path(name), live.maps.get(name, ""), text)
            if entry is not None:
                maps.append(entry)
            else:
                whole[name] = text
        if whole:
            prepare = [f"prepare map {live.path(name)}" for name in whole]
            replies = await self.session.batch(prepare)
            versions = {}
            for name, command, reply in zip(whole, prepare, replies, strict=True):
                version = prepared_version(reply)
                if version is None:
                    raise HAProxyError(f"runtime API refused {command!r}: {reply[:300]}")
                versions[name] = version
            maps += map_commands(live, whole, versions)
        return [*placing, *routes.before_maps, *maps, *freeing, *routes.after_maps]

    async def _check_live(self) -> None:
        """Before route work: the session must be on the current worker (after a reload
        from outside, an old, stopping worker keeps it -- and takes map changes that
        nobody is served by), and HAProxy's maps named as :attr:`live` says (checked
        once a session: it may run a file someone else reloaded)."""
        checks = ["show info"] if self._live_checked else ["show info", "show map"]
        replies = await self.session.batch(checks)
        if "\nStopping: 1" in "\n" + replies[0]:
            await self._reloaded_from_outside()
            raise HAProxyError("HAProxy was reloaded from outside (a stopping worker)")
        if self._live_checked or self.live is None:
            return
        directory = live_directory(replies[1], self.live.directory)
        if directory is None:
            raise HAProxyError("runtime API: 'show map' lists no route map")
        if directory != self.live.directory:
            expected = self.live.directory
            await self._reloaded_from_outside()
            raise HAProxyError(f"HAProxy runs the maps of {directory}, not {expected}")
        self._live_checked = True

    async def _reloaded_from_outside(self) -> None:
        """HAProxy was reloaded by someone else, from the file as it stands (whatever it
        was rendered by): what runs is read back from it, as at start, and the change
        that found out goes the full way (a reload, unless the file says it all)."""
        log.info("HAProxy was reloaded from outside: taking what runs from %s", self.file.path)
        self._outside = True
        await self.session.close()
        current = self.file.current() or ""
        self.layout = layout_from_config(current)
        self.shape = shape_from_config(current) if current else None
        self._placing(None, {})
        self._live_checked = False
        self.live = _generation_of(current)
        self.structure = structure_of(current, self.layout) if self.live is not None else None

    async def _abort(self, batch: list[Command]) -> None:
        """Certificate transactions a failed batch left open are aborted (uncommitted
        map versions are never seen, and the next prepare starts afresh)."""
        for command in batch:
            if isinstance(command, tuple) and command[0].startswith("set ssl cert "):
                path = command[0].split()[3]
                try:
                    await self.session.command(f"abort ssl cert {path}")
                except HAProxyError:
                    return
        self._live_checked = False

    def _routes_applied(self, plan: HAProxyPlan) -> None:
        """HAProxy serves the plan's maps and certificates (under the live names)."""
        routes, live = plan.routes, self.live
        if routes is None or live is None:
            return
        live.maps.update(routes.maps)
        if routes.before_maps or routes.after_maps:
            live.certificates, live.default = dict(routes.certificates), routes.default
        if routes or (plan.shape is not None and (plan.shape.serving or plan.shape.kept)):
            self._schedule_rename(plan.shape)

    def _placing(self, key: Hashable, placed: Mapping[str, Backend]) -> None:
        """HAProxy runs the sections ``placed`` (structure key ``key``) as they are."""
        self._key, self._placed, self._displaced = key, placed, set()

    def _schedule_rename(self, shape: Shape | None) -> None:
        """Spare sections in use (or sections kept) are renamed by a reload once routes
        have been quiet for ``rename_after``; when fewer than a quarter of the spares
        are idle, in the next lull of route changes (:data:`RENAME_LULL`), at most
        :data:`RENAME_LULL_MAX` later -- a reload in the middle of a burst would hold
        the burst's next change; when fewer than an eighth are, at once."""
        if shape is None or not (shape.serving or shape.kept):
            return
        now, idle, spares = time.monotonic(), shape.free_spares(), shape.spares
        if spares and idle * 8 < spares:
            self._rename_soon, self.rename_at = True, now
        elif spares and idle * 4 < spares:
            if self._low_since is None:
                self._low_since = now
            self._rename_soon = True
            self.rename_at = min(now + RENAME_LULL, self._low_since + RENAME_LULL_MAX)
        elif self.settings.rename_after > 0:
            self._rename_soon, self.rename_at = False, now + self.settings.rename_after

    def mark_stale(self, restart: bool = False) -> None:
        """HAProxy runs servers the file does not name (``restart``: wait afresh)."""
        self.stale_last = time.monotonic()
        if restart or self.stale_since is None:
            self.stale_since = self.stale_last

    def flush_due(self, delay: float, max_delay: float) -> float | None:
        """When :meth:`flush` should run: ``delay`` after the last server-only change,
        at most ``max_delay`` after the first, or when spares are to be renamed
        (monotonic time); None: nothing to do."""
        due = []
        if self.stale_since is not None:
            due.append(min(self.stale_last + delay, self.stale_since + max_delay))
        if self.rename_at is not None:
            quiet = self.stale_last + delay
            due.append(self.rename_at if self._rename_soon else max(self.rename_at, quiet))
        return min(due) if due else None

    async def flush(self, catalog: Catalog) -> ApplyResult:
        """Rewrite a stale file (staged and swapped) so that it says what HAProxy runs.

        Meant to run beside syncs: it renders from a copy of the slots, in a thread,
        and the file stays marked stale if servers changed meanwhile.  Route changes
        are not held while it renders (a thousand backends: a few hundred ms); when
        one came meanwhile, what was rendered is dropped and the next flush -- at the
        next lull, or :attr:`~CoalesceSettings.file_max_delay` later -- holds them
        while it renders, so that a burst cannot keep the file stale for long.
        """
        async with self._file_lock:
            if self.rename_at is not None and time.monotonic() >= self.rename_at:
                result = await self._apply_all(catalog, fresh=True)
                if result.action != "failed":
                    return result
                # Not now (the check or the reload failed): later, and the file
                # written meanwhile as it stands.
                log.error("renaming spare sections: %s", result.detail)
                self._rename_soon, self._low_since = False, None
                self.rename_at = time.monotonic() + max(self.settings.rename_after, 60.0)
            if self.stale_since is None or self.structure is None or self.shape is None:
                return ApplyResult("none")
            changes, layout, shape = self._runtime_changes, dict(self.layout), self.shape
            held = set(self.held_back)
            if self._flush_overtaken:
                self._flush_overtaken = False
                rendered, structure = await asyncio.to_thread(
                    self._render_as_is, catalog, layout, shape, held
                )
                return await self._write_flushed(catalog, rendered, structure, layout, changes)
        rendered, structure = await asyncio.to_thread(
            self._render_as_is, catalog, layout, shape, held
        )
        async with self._file_lock:
            if self.stale_since is None:
                return ApplyResult("none")  # a change that rendered the file came meanwhile
            if self.shape is not shape:
                # Routes changed (or HAProxy was reloaded) while it rendered.
                self._flush_overtaken = True
                self.mark_stale(restart=True)
                return ApplyResult("none")
            return await self._write_flushed(catalog, rendered, structure, layout, changes)

    async def _write_flushed(
        self,
        catalog: Catalog,
        rendered: RenderedConfig,
        structure: Structure,
        layout: Layout,
        changes: int,
    ) -> ApplyResult:
        if structure != self.structure:
            if self._runtime_changes != changes:
                return ApplyResult("none")  # servers moved on meanwhile: the next flush
            return await self._apply_all(catalog)  # not servers alone: the full path
        plan = HAProxyPlan(action="runtime", layout=layout, structure=structure, rendered=rendered)
        failed = await self._write_servers(plan)
        if failed is not None:
            return failed
        if self._runtime_changes == changes:
            self.stale_since = None
        return ApplyResult("written", "haproxy.cfg written after runtime changes")

    async def _write_servers(self, plan: HAProxyPlan) -> ApplyResult | None:
        """Swap a runtime plan's file in; the failure, if it could not be written."""
        try:
            await self.swap(plan)
        except OSError as exc:
            self.mark_stale()
            return ApplyResult("failed", f"servers updated live, file not written: {exc}")
        return None

    def render(
        self, catalog: Catalog, shape: Shape | None = None
    ) -> tuple[RenderedConfig, Layout, Shape]:
        """Render under ``shape`` (None: afresh); what the render left out is kept in
        :attr:`refused`."""
        held = self._holding_back(catalog)
        if shape is None:
            shape = fresh_shape(held, self.settings.spare_backends)
        rendered, layout = self._render_trial(held, shape)
        self.refused = rendered.refused + self._held_back_rejections()
        return rendered, layout, shape

    def _held_back_rejections(self) -> tuple[Rejection, ...]:
        return tuple(
            Rejection(source, reason) for source, (reason, _fingerprint) in self.held_back.items()
        )

    def _render_trial(self, catalog: Catalog, shape: Shape) -> tuple[RenderedConfig, Layout]:
        with collector_paused():
            return render_shaped(catalog, shape, self.layout, self.settings, self.varnish)

    def _render_as_is(
        self, catalog: Catalog, layout: Layout, shape: Shape, held: set[str]
    ) -> tuple[RenderedConfig, Structure]:
        """What HAProxy runs now, rendered (the slots ``layout``, the sections ``shape``,
        without the objects ``held`` back).  Runs in a thread: reads nothing that
        changes meanwhile."""
        with collector_paused():
            catalog = sectioned(without_sources(catalog, held), shape)
            rendered = render_haproxy(
                catalog, layout, self.settings, varnish=self.varnish, serving=shape.serving
            )
        return rendered, structure_of(rendered.config, layout)

    def _holding_back(self, catalog: Catalog) -> Catalog:
        """``catalog`` without the objects held back; one that changed is tried again."""
        if not self.held_back:
            return catalog
        fingerprints = source_fingerprints(catalog, set(self.held_back))
        for source, (_reason, fingerprint) in list(self.held_back.items()):
            if fingerprints.get(source) != fingerprint:
                del self.held_back[source]
        return without_sources(catalog, set(self.held_back))

    async def _isolate(self, catalog: Catalog, failure: str) -> bool:
        """Bisect the objects to find those whose configuration the check refuses; hold
        them back.  False when no object is to blame (the fault is elsewhere)."""
        base = self._holding_back(catalog)
        os.makedirs(self.settings.config_dir, mode=0o755, exist_ok=True)
        ensure_node_state(self.settings.config_dir)

        async def passes(held: set[str]) -> bool:
            trial = without_sources(base, held)
            shape = fresh_shape(trial, self.settings.spare_backends)
            rendered, _layout = self._render_trial(trial, shape)
            try:
                write_generation(rendered)
                await self.file.check_text(rendered.config)
            except (CheckFailed, OSError):
                return False
            return True

        culprits = await find_culprits(route_sources(base), passes)
        if not culprits:
            return False
        fingerprints = source_fingerprints(base, set(culprits))
        alert = next(
            (line.strip() for line in failure.splitlines() if "ALERT" in line), failure[-300:]
        )
        for culprit in culprits:
            reason = f"HAProxy's check refused the configuration: {alert[-300:]}"
            self.held_back[culprit] = (reason, fingerprints[culprit])
            log.error("%s held back: %s", culprit, reason)
        return True

    def slot_usage(self) -> tuple[int, int]:
        """Server slots used and free, over all backends -- idle spare sections left out
        (safe from another thread: the layout's lists are replaced, never changed in
        place)."""
        used = free = 0
        shape = self.shape
        idle = set()
        if shape is not None:
            idle = {name for name in shape.sections if name.startswith(SPARE_PREFIX)}
            idle -= set(shape.serving)
        for name, slots in dict(self.layout).items():
            if name in idle:
                continue
            taken = len(slots) - slots.count(None)
            used, free = used + taken, free + len(slots) - taken
        return used, free

    async def close(self) -> None:
        await self.session.close()


def _freed_servers(old: Layout, new: Layout) -> set[str]:
    """``backend/sN`` of the slots that held a server in ``old`` and are free in ``new``."""
    freed = set()
    for backend, slots in new.items():
        before = old.get(backend, [])
        for index, (was, now) in enumerate(zip(before, slots, strict=False), 1):
            if was is not None and now is None:
                freed.add(f"{backend}/s{index}")
    return freed


def _reply_ok(command: Command, reply: str) -> bool:
    if isinstance(command, tuple):
        return reply_ok(command[0], reply)
    if command.startswith(("set server", "set weight", "add server", "enable health")):
        return runtime_reply_ok(command, reply)
    return reply_ok(command, reply)


def _generation_of(config: str) -> LiveFiles | None:
    """The generation directory a rendered file names, read from disk; None if there is
    none or it cannot be read whole."""
    named = generation_dirs(config)
    if not named:
        return None
    directory = named[0]
    try:
        files = {name: _read(os.path.join(directory, name)) for name in MAP_FILES}
        files["crt-list"] = _read(os.path.join(directory, "crt-list"))
        certs = os.path.join(directory, "certs")
        for name in sorted(os.listdir(certs)) if os.path.isdir(certs) else []:
            files[f"certs/{name}"] = _read(os.path.join(certs, name))
    except OSError:
        return None
    return LiveFiles.of(directory, files)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()
