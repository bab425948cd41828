"""HAProxy as a target: place servers, render, and bring HAProxy to the catalog --
through the runtime API when only servers changed, else staged, checked, swapped and
reloaded through the master socket.  Its settings live here, beside it."""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import re
import time
from dataclasses import dataclass, field, replace

from breakwater.catalog import (
    Catalog,
    Rejection,
    Server,
    route_sources,
    source_fingerprints,
    without_sources,
)
from breakwater.memory import collector_paused
from breakwater.render.haproxy import RenderedConfig, render_haproxy
from breakwater.render.slots import (
    added_server_options,
    assign_slots,
    layout_from_config,
    runtime_commands,
    structure_of,
)
from breakwater.targets import Plan, Target
from breakwater.targets.haproxy_api import HAProxyError, RuntimeSession, reload, runtime_reply_ok
from breakwater.targets.isolate import find_culprits
from breakwater.targets.settings import HAProxySettings, VarnishSettings
from breakwater.targets.staging import (
    ApplyResult,
    CheckFailed,
    FileTarget,
    ensure_node_state,
    remove_old_generations,
    write_generation,
)

log = logging.getLogger(__name__)


Layout = dict[str, list[Server | None]]
Structure = tuple[str, tuple[tuple[str, int], ...]]  # see render.slots.structure_of


@dataclass(kw_only=True)
class HAProxyPlan(Plan):
    """``none``: the file says it already; ``runtime``: servers alone changed, and
    ``commands`` place them (``rendered`` None: only the backends named, the file is
    left stale); ``reload``: anything else; ``dry-run``: ``diff``."""

    layout: Layout  # slots after the plan (runtime without rendered: those backends')
    cause: str = "config"  # of a reload: see ApplyResult.cause
    structure: Structure | None = None
    rendered: RenderedConfig | None = None
    commands: list[str] = field(default_factory=list)


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
        self._runtime_changes = 0  # server-only syncs that sent commands, ever
        self.refused: tuple[Rejection, ...] = ()  # what the last render left out
        # Objects whose configuration HAProxy's check refused: source -> (reason,
        # fingerprint).  Held back until they change (see _isolate).
        self.held_back: dict[str, tuple[str, str]] = {}
        current = self.file.current()
        if not self.layout and current:
            self.layout = layout_from_config(current)  # keep HAProxy's slots as they are

    async def apply(self, catalog: Catalog, servers_only: list[str] | None = None) -> ApplyResult:
        """Bring HAProxy and its file to ``catalog``: plan, check, swap, activate.

        ``servers_only``: the backends whose servers changed when nothing else did;
        they are changed live and the file is left stale (see :meth:`flush`).  When
        the check fails, the objects it refuses are held back and the rest applied.
        """
        result = None
        if servers_only is not None:
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

    async def _apply_all(self, catalog: Catalog) -> ApplyResult:
        plan = await self.plan(catalog)
        if plan.action == "runtime":
            result = await self._runtime(plan)
            if result is not None:
                return result
            plan = replace(plan, action="reload", cause="runtime-refused")
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

    async def plan(self, catalog: Catalog, servers_only: list[str] | None = None) -> HAProxyPlan:
        """Render and decide; nothing is written or sent.

        ``servers_only``: those backends alone are placed, if their slots hold them.
        """
        if servers_only is not None:
            plan = self._plan_servers(catalog, servers_only)
            if plan is not None:
                return plan
        rendered, layout = self.render(catalog)
        current = self.file.current()
        if rendered.config == current:
            structure = structure_of(rendered.config, layout)
            return HAProxyPlan(action="none", layout=layout, structure=structure, rendered=rendered)
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
        structure = structure_of(rendered.config, layout)
        plan = HAProxyPlan(
            action="reload", layout=layout, structure=structure, rendered=rendered, previous=current
        )
        if self.structure is None or structure[0] != self.structure[0]:
            return plan
        # The same file but for server lines; backends with more slots than HAProxy
        # runs (slots never shrink) grow at runtime if they can.
        commands = self._commands(self.layout, layout)
        if commands is None:
            plan.cause = "slots"
        else:
            plan.action, plan.commands = "runtime", commands
        return plan

    def _plan_servers(self, catalog: Catalog, names: list[str]) -> HAProxyPlan | None:
        """The servers of ``names`` placed alone; None: it takes the whole catalog."""
        if self.structure is None or self.dry_run:
            return None
        backends = {name: catalog.backends[name] for name in names if name in catalog.backends}
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

        A runtime plan's file differs from the live one in server lines alone: its
        structure is that of the file HAProxy loaded at the last reload, and server
        lines are rendered from validated addresses -- while ``haproxy -c`` costs
        seconds of CPU at 10,000 backends.  So it is not checked again.
        """
        if plan.rendered is None:
            return
        if plan.action == "reload":
            self.file.swap()
        elif plan.action == "runtime":
            await self.file.write_checked(plan.rendered.config, check=False)

    async def activate(self, plan: HAProxyPlan) -> ApplyResult:
        """Runtime commands, or a reload through the master socket confirmed by a new
        worker generation.  Raises :class:`HAProxyError` when HAProxy refuses."""
        if plan.action == "dry-run":
            return ApplyResult("dry-run", "would change haproxy.cfg", diff=plan.diff)
        if plan.action == "none":
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
        keep = {plan.rendered.generation_dir} if plan.rendered is not None else set()
        if plan.previous:
            keep.update(re.findall(r"(/\S*/gen-[0-9a-f]{16})/", plan.previous))
        remove_old_generations(self.settings.config_dir, keep)
        return ApplyResult("reload", "configuration reloaded", cause=plan.cause)

    def _settle(self, plan: HAProxyPlan) -> None:
        """HAProxy runs the whole plan, and the file says so."""
        self.layout, self.structure, self.stale_since = plan.layout, plan.structure, None

    async def _send(self, plan: HAProxyPlan) -> ApplyResult:
        for attempt in (1, 2):
            for command in plan.commands:
                reply = await self.session.command(command)
                if runtime_reply_ok(command, reply):
                    continue
                if attempt == 1 and reply.startswith("Proxy is disabled"):
                    # The session is on an old worker: HAProxy was reloaded by someone
                    # else (an operator, a handler).  None of these commands reached the
                    # new one: send them all to it.
                    log.info("HAProxy was reloaded from outside: new runtime session")
                    await self.session.close()
                    break
                raise HAProxyError(f"runtime API refused {command!r}: {reply}")
            else:
                break
        self.structure = plan.structure  # the same, or with more slots (added servers)
        if plan.rendered is not None:
            self.layout = plan.layout
        else:  # those backends alone: the file is left stale
            self.layout.update(plan.layout)
            if plan.commands:
                self._runtime_changes += 1
                self.mark_stale()
        count = len(plan.commands)
        return ApplyResult("runtime", f"{count} runtime commands", count)

    def mark_stale(self, restart: bool = False) -> None:
        """HAProxy runs servers the file does not name (``restart``: wait afresh)."""
        self.stale_last = time.monotonic()
        if restart or self.stale_since is None:
            self.stale_since = self.stale_last

    def flush_due(self, delay: float, max_delay: float) -> float | None:
        """When :meth:`flush` should run: ``delay`` after the last server-only change,
        at most ``max_delay`` after the first (monotonic time); None: not stale."""
        if self.stale_since is None:
            return None
        return min(self.stale_last + delay, self.stale_since + max_delay)

    async def flush(self, catalog: Catalog) -> ApplyResult:
        """Rewrite a stale file (staged and swapped) so that it says what HAProxy runs.

        Meant to run beside server-only syncs: it renders from a copy of the slots, in
        a thread, and the file stays marked stale if servers changed meanwhile.
        """
        async with self._file_lock:
            if self.stale_since is None or self.structure is None:
                return ApplyResult("none")
            changes, layout = self._runtime_changes, dict(self.layout)
            rendered, structure = await asyncio.to_thread(self._render_as_is, catalog, layout)
            if structure != self.structure:
                if self._runtime_changes != changes:
                    return ApplyResult("none")  # servers moved on meanwhile: the next flush
                return await self._apply_all(catalog)  # not servers alone: the full path
            plan = HAProxyPlan(
                action="runtime", layout=layout, structure=structure, rendered=rendered
            )
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

    def render(self, catalog: Catalog) -> tuple[RenderedConfig, Layout]:
        rendered, layout = self._render_trial(self._holding_back(catalog))
        held = tuple(
            Rejection(source, reason) for source, (reason, _fingerprint) in self.held_back.items()
        )
        self.refused = rendered.refused + held
        return rendered, layout

    def _render_trial(self, catalog: Catalog) -> tuple[RenderedConfig, Layout]:
        with collector_paused():
            layout = assign_slots(catalog, self.layout, self.settings.min_slots)
            rendered = render_haproxy(catalog, layout, self.settings, varnish=self.varnish)
        return rendered, layout

    def _render_as_is(self, catalog: Catalog, layout: Layout) -> tuple[RenderedConfig, Structure]:
        with collector_paused():
            catalog = without_sources(catalog, set(self.held_back))
            rendered = render_haproxy(catalog, layout, self.settings, varnish=self.varnish)
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
            rendered, _layout = self._render_trial(without_sources(base, held))
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
        """Server slots used and free, over all backends (safe from another thread:
        the layout's lists are replaced, never changed in place)."""
        used = free = 0
        for slots in dict(self.layout).values():
            taken = len(slots) - slots.count(None)
            used, free = used + taken, free + len(slots) - taken
        return used, free

    async def close(self) -> None:
        await self.session.close()
