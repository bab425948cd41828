"""The backend sections of ``haproxy.cfg``: which exist, in which order, and which
backend each serves -- so that routes to new Services and routes removed change
nothing HAProxy would need a reload for.

HAProxy 2.6 cannot add a backend at runtime.  So the rendered file keeps idle
*spare* sections (``bw_spare_<n>``: default options, free server slots).  A route to a
new Service takes a spare: its servers arrive through the runtime API, then the route
maps point at the spare's name.  A backend whose routes are all gone keeps its
section, with no servers, until the next reload.  The file written meanwhile says the
same (a spare in use carries a ``# serves <backend>`` comment, which is how the
watcher and the Ansible lookups find the placement again in a file); the next reload
renders every backend under its own name, with a fresh pool of spares.

A :class:`Shape` is that placement; :func:`sectioned` turns a catalog into the one the
renderer writes under it (backends keyed by section name, routes pointing at
sections), so the renderer, slots, screen and templates need to know nothing of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

from breakwater.catalog import Backend, BackendOptions, Catalog, Route
from breakwater.catalog.model import Split

SPARE_PREFIX = "bw_spare_"
"""Spare sections are named ``bw_spare_<n>``: backends rendered from Services are
``be_...``, so the two never meet."""

SERVES_COMMENT = "    # serves "


@dataclass(frozen=True)
class Shape:
    """The backend sections HAProxy runs, in file order, and what each serves."""

    sections: tuple[str, ...] = ()
    # A spare section in use -> the backend it serves (absent: idle, or named after it).
    serving: Mapping[str, str] = field(default_factory=dict)
    # Sections of backends gone since the last reload -> the options still rendered.
    kept: Mapping[str, BackendOptions] = field(default_factory=dict)

    @property
    def spares(self) -> int:
        return sum(1 for name in self.sections if name.startswith(SPARE_PREFIX))

    def free_spares(self) -> int:
        """Spares a new Service may take: neither in use nor kept."""
        kept = sum(1 for name in self.kept if name.startswith(SPARE_PREFIX))
        return self.spares - len(self.serving) - kept

    def section_of(self) -> dict[str, str]:
        """Backend -> the section serving it, for the backends served by a spare."""
        return {backend: section for section, backend in self.serving.items()}


def spare_count(backends: int, minimum: int) -> int:
    """Spares a fresh render keeps: ``minimum``, or a quarter of the backends (to the
    next power of two) in a large cluster.  A function of the catalog alone, so the
    watcher and the Ansible lookups render the same file from the same objects."""
    if minimum <= 0:
        return 0
    count = 1
    while count < backends:
        count *= 2
    return max(minimum, count // 4)


def fresh_shape(catalog: Catalog, minimum_spares: int) -> Shape:
    """Every backend under its own name, then the spares (what a reload renders)."""
    spares = spare_count(len(catalog.backends), minimum_spares)
    names = tuple(catalog.backends) + tuple(f"{SPARE_PREFIX}{i}" for i in range(1, spares + 1))
    return Shape(sections=names)


def place(catalog: Catalog, live: Shape) -> Shape | None:
    """``catalog``'s backends placed in the sections of ``live``: a backend keeps its
    section, a new one takes the first idle spare, a section whose backend is gone is
    kept -- a spare too: it is idle again only after the next reload, so that no new
    Service takes a spare whose old routes and servers are still being let go in the
    same batch.  None when there are not enough spares."""
    serving: dict[str, str] = {}
    sections = set(live.sections)
    placed = set(catalog.backends) & sections
    for section, backend in live.serving.items():
        if backend in catalog.backends and backend not in placed:
            serving[section] = backend
            placed.add(backend)
    new = [name for name in catalog.backends if name not in placed]
    if new:
        idle = (
            name
            for name in live.sections
            if name.startswith(SPARE_PREFIX)
            and name not in serving
            and name not in live.serving
            and name not in live.kept
            and name not in catalog.backends
        )
        for backend in new:
            spare = next(idle, None)
            if spare is None:
                return None
            serving[spare] = backend
    kept = {
        name: live.kept.get(name, BackendOptions())
        for name in live.sections
        if name not in catalog.backends
        and name not in serving
        and (not name.startswith(SPARE_PREFIX) or name in live.serving or name in live.kept)
    }
    return Shape(sections=live.sections, serving=serving, kept=kept)


def kept_options(shape: Shape, old: Catalog | None) -> Shape:
    """``shape`` with the options of kept sections taken from ``old`` (the catalog
    HAProxy was brought to last), so a backend that goes keeps its section as it was."""
    if old is None or not shape.kept:
        return shape
    kept = {
        name: old.backends[name].options if name in old.backends else options
        for name, options in shape.kept.items()
    }
    return replace(shape, kept=kept)


@lru_cache(maxsize=8192)
def _idle_section(name: str, options: BackendOptions) -> Backend:
    """A section without servers (an idle spare, a kept section): the same object each
    time, which the screen need not check again."""
    return Backend(name, "", "", "", options, ())


def sectioned(catalog: Catalog, shape: Shape) -> Catalog:
    """The catalog the renderer writes under ``shape``: one backend per section, in the
    sections' order (a spare in use takes its backend's options and servers; idle
    spares and kept sections have none), routes pointing at sections."""
    section_of = shape.section_of()
    backends: dict[str, Backend] = {}
    for name in shape.sections:
        served = shape.serving.get(name, name)
        backend = catalog.backends.get(served)
        if backend is not None:
            backends[name] = backend if served == name else replace(backend, name=name)
        else:
            backends[name] = _idle_section(name, shape.kept.get(name, BackendOptions()))
    if not section_of:
        return replace(catalog, backends=backends)
    routes = [_route_in(route, section_of) for route in catalog.routes]
    default = catalog.default_backend
    return replace(
        catalog,
        routes=routes,
        backends=backends,
        default_backend=section_of.get(default, default) if default else default,
    )


def _route_in(route: Route, section_of: Mapping[str, str]) -> Route:
    """``route`` pointing at the sections serving its backends."""
    if route.backend in section_of:
        route = replace(route, backend=section_of[route.backend])
    canary = route.canary
    if canary is not None and canary.backend in section_of:
        route = replace(route, canary=replace(canary, backend=section_of[canary.backend]))
    split = route.split
    if split is not None and any(name in section_of for name, _weight in split.backends):
        shares = tuple((section_of.get(name, name), weight) for name, weight in split.backends)
        route = replace(route, split=Split(shares))
    if route.chain:
        chain = tuple((c, _route_in(alternative, section_of)) for c, alternative in route.chain)
        if chain != route.chain:
            route = replace(route, chain=chain)
    return route


_BACKEND = re.compile(r"^backend (\S+)\n(?:    # serves (\S+)\n)?", re.MULTILINE)


def shape_from_config(config: str) -> Shape:
    """The shape a rendered ``haproxy.cfg`` holds (its backend sections and what the
    spares in it serve); the options of kept sections are not read back."""
    sections: list[str] = []
    serving: dict[str, str] = {}
    for match in _BACKEND.finditer(config):
        name = match[1]
        if not (name.startswith("be_") or name.startswith(SPARE_PREFIX)):
            continue
        sections.append(name)
        if match[2] and name.startswith(SPARE_PREFIX):
            serving[name] = match[2]
    return Shape(sections=tuple(sections), serving=serving)
