"""Render the routing model into HAProxy's files.

One entry point, :func:`render_haproxy`, used by the watcher, the lookup plugins and
the modules alike.  The result is a :class:`RenderedConfig`: ``haproxy.cfg`` plus its
content-addressed generation directory (route maps, crt-list, PEM files).  The
configuration names the generation directory, so identical ``haproxy.cfg`` bytes
mean identical files everywhere, and a new set of maps can be checked with
``haproxy -c`` before anything live is touched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from breakwater.catalog import Backend, Catalog, Rejection
from breakwater.render.features import backend_lines, canary_lines, generation_files
from breakwater.render.gateway import chain_lines, split_lines
from breakwater.render.maps import RouteLookup, route_lookup, route_maps
from breakwater.render.screen import screen
from breakwater.render.shape import SPARE_PREFIX, Shape, fresh_shape, sectioned
from breakwater.render.slots import FREE_SLOT, Layout, SlotLayout, assign_slots, server_lines
from breakwater.render.templates import _template
from breakwater.targets.settings import BACKEND_LOG_LEVELS, HAProxySettings, VarnishSettings


@dataclass(frozen=True)
class GenerationFiles:
    """Absolute paths, inside the generation directory, named by the template."""

    directory: str
    exact_map: str
    prefix_map: str
    crt_list: str
    # The unix sockets of the frontends bw_gateway_<shard>: this, the shard, ".sock".
    gateway_socket_prefix: str = ""


@dataclass
class RenderedConfig:
    config: str
    generation_dir: str
    generation_files: dict[str, str] = field(default_factory=dict)  # relative name -> text
    secret_files: frozenset[str] = frozenset()  # relative names written with mode 0600
    refused: tuple[Rejection, ...] = ()  # what the renderer would not write (see screen)
    structure_key: Hashable = None  # see structure_key()
    backends: Mapping[str, Backend] = field(default_factory=dict)  # as rendered, screened


@dataclass(frozen=True)
class Generation:
    """What a render writes besides ``haproxy.cfg``: of a :func:`screen`-ed catalog, the
    generation directory's files (maps, PEM files, crt-list) and what the screen left out."""

    catalog: Catalog  # screened
    refused: tuple[Rejection, ...]
    directory: str
    files: dict[str, str]  # relative name -> text
    secret_files: frozenset[str]
    lookup: RouteLookup


def render_generation(
    catalog: Catalog, settings: HAProxySettings, clean: Mapping[str, Backend] | None = None
) -> Generation:
    """The generation directory of ``catalog`` (keyed by backend section), screened
    (``clean``: see :func:`~.screen.screen`)."""
    exact_map, prefix_map = route_maps(catalog.routes)
    catalog, refused = screen(catalog, (exact_map, prefix_map), clean)
    if refused:
        exact_map, prefix_map = route_maps(catalog.routes)
    generation: dict[str, str] = {"routes-exact.map": exact_map, "routes-prefix.map": prefix_map}
    secrets = set()
    for name, certificate in sorted(catalog.certificates.items()):
        generation[f"certs/{name}.pem"] = certificate.pem
        secrets.add(f"certs/{name}.pem")
    generation.update(generation_files(catalog.backends.values()))
    digest = hashlib.sha256()
    for name, text in sorted(generation.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    directory = os.path.join(settings.config_dir, f"gen-{digest.hexdigest()[:16]}")
    crt_list = "".join(
        os.path.join(directory, f"certs/{name}.pem") + "\n" for name in sorted(catalog.certificates)
    )
    generation["crt-list"] = crt_list
    lookup = route_lookup(catalog.routes, exact_map, prefix_map)
    return Generation(catalog, refused, directory, generation, frozenset(secrets), lookup)


def structure_key(generation: Generation, layout: SlotLayout) -> Hashable:
    """What the default template's structure (:func:`~.slots.structure_of`) is made of:
    the backend sections in order with their options, the default backend, the route
    lookups, whether there are certificates, the slot counts.  Equal keys, equal
    structures (a unit test holds them together): routes alone can then change
    without rendering the file on the event path."""
    catalog = generation.catalog
    return (
        # Two flat tuples, not one pair per section: the key lives on, and a tuple per
        # section is a thousand more objects for the collector at each route change.
        tuple(catalog.backends),
        tuple(backend.options for backend in catalog.backends.values()),
        catalog.default_backend,
        generation.lookup,
        bool(catalog.certificates),
        *_slot_counts(layout),
    )


def _slot_counts(layout: SlotLayout) -> tuple[tuple[str, ...], tuple[int, ...]]:
    names = tuple(sorted(layout))
    return names, tuple(len(layout[name]) for name in names)


def render_haproxy(
    catalog: Catalog,
    layout: SlotLayout,
    settings: HAProxySettings,
    header: str = "Rendered by Breakwater; edits are overwritten.",
    varnish: VarnishSettings | None = None,
    serving: Mapping[str, str] | None = None,
) -> RenderedConfig:
    """Render ``haproxy.cfg`` and its generation directory (of a :func:`screen`-ed catalog).

    ``catalog`` is keyed by backend section (see :func:`render_shaped`); ``serving``
    names the backend each spare section in use serves.
    """
    generation = render_generation(catalog, settings)
    catalog, directory = generation.catalog, generation.directory
    files = GenerationFiles(
        directory=directory,
        exact_map=os.path.join(directory, "routes-exact.map"),
        prefix_map=os.path.join(directory, "routes-prefix.map"),
        crt_list=os.path.join(directory, "crt-list"),
        gateway_socket_prefix=os.path.join(os.path.dirname(settings.stats_socket), "gw"),
    )
    config = _template(settings.template).render(
        catalog=catalog,
        lookup=generation.lookup,
        layout=layout,
        settings=settings,
        files=files,
        serving=serving or {},
        served=sum(1 for name in catalog.backends if not name.startswith(SPARE_PREFIX))
        + len(serving or {}),
        free_slot=FREE_SLOT,
        server_lines=server_lines,
        backend_lines=backend_lines,
        canary_lines=canary_lines,
        chain_lines=chain_lines,
        split_lines=split_lines,
        header=header,
        varnish=varnish if varnish is not None and varnish.enabled else None,
        backend_log_level=BACKEND_LOG_LEVELS.get(settings.backend_log, "err"),
    )
    return RenderedConfig(
        config,
        directory,
        dict(generation.files),
        generation.secret_files,
        generation.refused,
        structure_key(generation, layout),
        catalog.backends,
    )


def render_shaped(
    catalog: Catalog,
    shape: Shape | None,
    previous: SlotLayout,
    settings: HAProxySettings,
    varnish: VarnishSettings | None = None,
) -> tuple[RenderedConfig, Layout]:
    """Render ``catalog`` under ``shape`` (None: a fresh one, as a reload renders),
    keeping the server slots of ``previous``; the rendered file and its slots, keyed
    by backend section."""
    shape = shape if shape is not None else fresh_shape(catalog, settings.spare_backends)
    placed = sectioned(catalog, shape)
    layout = assign_slots(placed, previous, settings.min_slots)
    return render_haproxy(placed, layout, settings, varnish=varnish, serving=shape.serving), layout
