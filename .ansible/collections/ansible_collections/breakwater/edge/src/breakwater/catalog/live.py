"""The catalog of a followed cluster, kept between changes: built whole after a change
that is not only servers, refreshed per Service when only servers changed (the cost of
an endpoint event follows the change, not the cluster).  Keys that could not be read
are listed as rejected beside the objects the catalog rejected.
"""

from __future__ import annotations

from dataclasses import replace

from breakwater.catalog.build import build_catalog, refresh_servers
from breakwater.catalog.model import Catalog, CatalogSettings, Rejection
from breakwater.cluster.index import ClusterIndex
from breakwater.cluster.state import ClusterState
from breakwater.memory import collector_paused


def with_unread(catalog: Catalog, state: ClusterState) -> Catalog:
    """``catalog`` with the keys of ``state`` that could not be read, as rejections."""
    if not state.undecodable:
        return catalog
    unread = [Rejection(key, reason) for key, reason in sorted(state.undecodable.items())]
    return replace(catalog, rejected=catalog.rejected + unread)


def full_catalog(state: ClusterState, settings: CatalogSettings) -> Catalog:
    """The catalog of every object of ``state``, built afresh (lookups, ``catalog``)."""
    with collector_paused():
        return with_unread(build_catalog(state.index, settings), state)


class LiveCatalog:
    """The last catalog of one followed :class:`ClusterState`, and how to bring it up to
    date: :meth:`refresh` when only servers changed, else :meth:`rebuild`."""

    def __init__(self) -> None:
        self._base: Catalog | None = None  # the last catalog, without the unread keys
        self._settings: CatalogSettings | None = None
        self._index: ClusterIndex | None = None  # the index the last catalog came from

    def servers_only(self, state: ClusterState) -> bool:
        """True when the changes since the last catalog only touch servers."""
        return not state.structural and self._base is not None

    def update(
        self, state: ClusterState, settings: CatalogSettings
    ) -> tuple[Catalog, list[str] | None]:
        """The catalog after the changes since the last call, and what they touched.

        The second value lists the backends whose servers changed when nothing else
        did, and is None after a full build.
        """
        refreshed = self.refresh(state, settings)
        return refreshed if refreshed is not None else self.rebuild(state, settings)

    def refresh(
        self, state: ClusterState, settings: CatalogSettings
    ) -> tuple[Catalog, list[str]] | None:
        """:meth:`update` when only servers changed (cheap); None: it takes :meth:`rebuild`."""
        if state.structural or self._base is None or self._settings != settings:
            return None
        refreshed = refresh_servers(self._base, state.index, state.changed_services, settings)
        if refreshed is None:
            return None
        state.changed_services = set()
        self._base, changed = refreshed
        return with_unread(self._base, state), changed

    def rebuild(self, state: ClusterState, settings: CatalogSettings) -> tuple[Catalog, None]:
        """The catalog built afresh from every object (:meth:`update`'s full build)."""
        state.changed_services, state.structural = set(), False
        # Built from the last catalog only if that came from this very index: a new one
        # (a list after a compaction) says nothing of the objects gone meanwhile.
        same = self._settings == settings and self._index is state.index
        reuse = self._base if same else None
        with collector_paused():
            self._base = build_catalog(state.index, settings, reuse)
        state.index.settle()  # the next build replays from this one
        self._settings, self._index = settings, state.index
        return with_unread(self._base, state), None
