"""Varnish as a target: render the VCL, check it (``varnishd -C``), load it under a new
name and use it -- never a restart, which would empty the cache -- and discard the old
ones.  Its settings live here, beside it; its CLI is :mod:`.varnish_cli`, bans and
purges :mod:`.invalidate`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from breakwater.catalog import Catalog
from breakwater.render.vcl import render_vcl
from breakwater.targets import Plan, Target

# Re-exported: their importers (cli.py, the varnish_ban module, tests) predate the split.
from breakwater.targets.settings import VarnishSettings
from breakwater.targets.staging import ApplyResult, CheckFailed, FileTarget
from breakwater.targets.varnish_cli import VarnishCLI, VarnishError, parse_vcl_list, read_secret

log = logging.getLogger(__name__)

VCL_PREFIX = "bw_"


@dataclass(kw_only=True)
class VarnishPlan(Plan):
    """``none``: Varnish uses this VCL already; ``reload``: load it; ``dry-run``."""

    vcl: str


@dataclass
class VarnishTarget(Target[VarnishPlan]):
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

    async def apply(
        self,
        catalog: Catalog | None = None,
        servers_only: list[str] | None = None,
        *,
        vcl: str | None = None,
    ) -> ApplyResult:
        """Bring Varnish to the VCL the settings render (or to ``vcl``).

        The VCL does not depend on the catalog.
        """
        try:
            plan = await self.plan(catalog, servers_only, vcl=vcl)
        except (VarnishError, OSError) as exc:
            return ApplyResult("failed", str(exc))
        try:
            await self.check(plan)
            await self.swap(plan)
        except (CheckFailed, OSError) as exc:
            return ApplyResult("failed", f"VCL not loaded, the active one stays: {exc}")
        try:
            return await self.activate(plan)
        except (VarnishError, OSError) as exc:
            self.file.restore(plan.previous)
            return ApplyResult("failed", f"VCL not loaded, the active one stays: {exc}")

    async def plan(
        self,
        catalog: Catalog | None = None,
        servers_only: list[str] | None = None,
        *,
        vcl: str | None = None,
    ) -> VarnishPlan:
        """Render the VCL and compare it with the one Varnish uses (asks Varnish)."""
        vcl = render_vcl(self.settings) if vcl is None else vcl
        async with self._cli() as cli:
            source = await self.active_source(cli)
        if source is not None and source.rstrip("\n") == vcl.rstrip("\n"):
            return VarnishPlan(action="none", vcl=vcl)
        if self.dry_run:
            return VarnishPlan(action="dry-run", vcl=vcl)
        return VarnishPlan(action="reload", vcl=vcl, previous=self.file.current())

    async def check(self, plan: VarnishPlan) -> None:
        """Stage the VCL beside the file and compile it (``varnishd -C``)."""
        if plan.action == "reload":
            await self.file.stage(plan.vcl)

    async def swap(self, plan: VarnishPlan) -> None:
        if plan.action == "reload":
            self.file.swap()

    async def activate(self, plan: VarnishPlan) -> ApplyResult:
        """``vcl.load`` under a new name, ``vcl.use``, discard the old ones.

        Raises :class:`VarnishError` when Varnish did not take the VCL.
        """
        if plan.action == "dry-run":
            return ApplyResult("dry-run", "would load a new VCL")
        if plan.action != "reload":
            return ApplyResult("none")
        name = f"{VCL_PREFIX}{time.time_ns()}"
        async with self._cli() as cli:
            await cli.command("vcl.load", name, self.settings.vcl_file)
            await cli.command("vcl.use", name)
            try:
                await self.discard_old(cli, name)
            except VarnishError as exc:  # the new VCL is in use: only the old ones stay
                return ApplyResult("failed", str(exc))
        return ApplyResult("reload", f"VCL {name} loaded and in use")

    async def flush(self, catalog: Catalog) -> ApplyResult:
        """Nothing to do: the VCL never changes without a reload."""
        return ApplyResult("none")

    async def close(self) -> None:
        """Nothing to close: a CLI session lasts one step."""

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
