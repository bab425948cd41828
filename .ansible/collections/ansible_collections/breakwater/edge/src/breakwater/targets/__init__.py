"""What the edge configures: HAProxy (:mod:`.haproxy`, its control sockets in
:mod:`.haproxy_api`) and Varnish (:mod:`.varnish`, its management CLI in
:mod:`.varnish_cli`, bans and purges in :mod:`.invalidate`), with staging shared by
both (:mod:`.staging`).

Both are a :class:`Target`, brought to a catalog by the same row of steps:

``plan``
    render and decide -- nothing to do, runtime commands alone, a reload, or (dry
    run) the change as a diff.  Nothing is written, nothing is sent.
``check``
    write what must exist for the check (generation directory, staged file) and run
    the daemon's own checker on it; raises :class:`~.staging.CheckFailed`.
``swap``
    rename the staged file into place (atomic); for a runtime plan, write the file
    whose server lines alone changed, unchecked.
``activate``
    make the daemon run it: runtime commands, a master-socket reload confirmed by a
    new worker generation, or ``vcl.load`` + ``vcl.use`` and the old VCLs discarded.

``apply`` runs that row with the failure handling each target needs (the last good
file kept or put back, objects the checker refuses held back); ``flush`` rewrites a
file that runtime changes left stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from breakwater.catalog import Catalog
    from breakwater.targets.staging import ApplyResult

PlanAction = Literal["none", "runtime", "reload", "dry-run"]


@dataclass(kw_only=True)
class Plan:
    """What a target will do to reach a catalog, decided before anything is written."""

    action: PlanAction
    previous: str | None = None  # the file as it stood: put back if activation fails
    diff: str = ""  # dry run: the change, as a unified diff


PlanT = TypeVar("PlanT", bound=Plan)


class Target(Protocol[PlanT]):
    """A daemon the edge configures from the catalog."""

    async def plan(self, catalog: Catalog, servers_only: list[str] | None = None) -> PlanT:
        """Render and decide what it takes; writes and sends nothing.

        ``servers_only``: the backends whose servers changed when nothing else did.
        """

    async def check(self, plan: PlanT) -> None:
        """Stage what the plan needs and run the daemon's checker; raises CheckFailed."""

    async def swap(self, plan: PlanT) -> None:
        """Put the staged file in place (atomic rename)."""

    async def activate(self, plan: PlanT) -> ApplyResult:
        """Make the daemon run what the plan says."""

    async def apply(self, catalog: Catalog, servers_only: list[str] | None = None) -> ApplyResult:
        """plan, check, swap, activate -- and what to do when one of them fails."""

    async def flush(self, catalog: Catalog) -> ApplyResult:
        """Rewrite a file that runtime changes left stale."""

    async def close(self) -> None:
        """Close the control connections the target keeps open."""
