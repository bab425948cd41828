"""Build the catalog from the cluster, refresh it when only servers changed, and hold
objects back from it."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from breakwater import validate
from breakwater.catalog.builder import Builder, BuildState, Trace, as_mapping
from breakwater.catalog.gateway import KINDS as GATEWAY_KINDS
from breakwater.catalog.gateway import gateway_candidates
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    Catalog,
    CatalogSettings,
    Problems,
    Route,
    describe,
    problem_rejections,
)
from breakwater.catalog.precedence import merge
from breakwater.catalog.servers import backend_servers
from breakwater.catalog.sources import (
    configmap_routes,
    default_class,
    ingress_is_ours,
    ingress_routes,
    plain_route,
)
from breakwater.cluster import plain_routes
from breakwater.cluster.index import (
    ClusterIndex,
    Object,
    SecretUnreadable,
    index_objects,
)
from breakwater.validate import reason_of


def _creation_order(item: tuple[str, tuple[str, str], Object]) -> tuple[str, str, str]:
    _kind, ident, obj = item
    metadata = obj.get("metadata")
    created = metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None
    return (created if isinstance(created, str) else "", ident[0], ident[1])


def _check_ident(kind: str, ident: tuple[str, str]) -> None:
    """The names that become parts of backend, certificate and file names."""
    namespace, name = ident
    if kind == plain_routes.KIND:
        validate.dns_label(name, "route name")
        return
    validate.dns_label(namespace, "namespace")
    validate.dns_subdomain(name, f"{kind} name")


def _is_route_configmap(configmap: Object, settings: CatalogSettings) -> bool:
    metadata = as_mapping(configmap.get("metadata"), "metadata")
    labels = as_mapping(metadata.get("labels"), "metadata.labels")
    return bool(labels.get(settings.configmap_label) == settings.configmap_label_value)


def _selectors(settings: CatalogSettings, default: bool) -> dict[str, Any]:
    """Which ConfigMaps and Ingresses make routes, by kind (``default``: our
    IngressClass is the cluster's default)."""
    return {
        "ConfigMap": lambda obj: _is_route_configmap(obj, settings),
        "Ingress": lambda obj: ingress_is_ours(obj, settings, default),
    }


def _route_sources(
    builder: Builder, index: ClusterIndex, settings: CatalogSettings
) -> list[tuple[str, tuple[str, str], Object]]:
    """The objects that make routes, in the order they claim hosts and paths."""
    sources: list[tuple[str, tuple[str, str], Object]] = []
    try:
        default = default_class(index, settings)
    except Exception as exc:  # a malformed class is not the default, and is named
        builder.reject(describe("IngressClass", ("", settings.ingress_class)), reason_of(exc))
        default = False
    for kind, selected in _selectors(settings, default).items():
        for ident, obj in index.all(kind):
            try:
                if selected(obj):
                    sources.append((kind, ident, obj))
            except Exception as exc:
                builder.reject(describe(kind, ident), reason_of(exc))
                builder.unselected.add((kind, *ident))
    sources.sort(key=_creation_order)
    # Plain routes come after every Kubernetes object: a clash goes to Kubernetes.
    sources.extend((plain_routes.KIND, *item) for item in index.all(plain_routes.KIND))
    return sources


_HANDLERS = {
    "Ingress": ingress_routes,
    "ConfigMap": configmap_routes,
    plain_routes.KIND: plain_route,
}


def _handler(builder: Builder, kind: str, ident: tuple[str, str], obj: Object) -> Any:
    def handle() -> None:
        _check_ident(kind, ident)
        _HANDLERS[kind](builder, ident, obj)

    return handle


def build_catalog(
    objects: Iterable[Object] | ClusterIndex,
    settings: CatalogSettings | None = None,
    reuse: Catalog | None = None,
) -> Catalog:
    """The routing model of a set of decoded objects.  Pure: same input, same output.

    ``reuse``: the catalog built before from the same index and settings; the servers of
    Service ports whose objects are unchanged are taken from it, and so is what each
    unchanged object contributed (replayed: :class:`~breakwater.catalog.builder.Trace`).
    The result is the same.

    Conflicts (two objects routing the same host and path) go to the older object
    (creationTimestamp, then namespace/name); the newer one is rejected whole.  Plain
    routes (:mod:`breakwater.cluster.plain_routes`) come after every Kubernetes object, by name.
    Whatever goes wrong with one object -- a bad value, a malformed structure, a
    limit passed -- is that object's rejection, never the others'.  A Secret a route
    names that cannot be read (encrypted with a key the edge does not hold...) is
    rejected by name too, beside the object that names it.
    """
    settings = settings or CatalogSettings()
    index = objects if isinstance(objects, ClusterIndex) else index_objects(objects)
    if reuse is not None and isinstance(objects, ClusterIndex):
        grown = _grown(index, settings, reuse)
        if grown is not None:
            return grown
    builder = Builder(index, settings)
    if reuse is not None:
        builder.reuse, builder.reuse_traces = reuse.server_entries, reuse.traces
        builder.reuse_backends = reuse.backends
        if reuse.build_state is not None:
            builder.reuse_world = reuse.build_state.gateway_world
    # Secrets are decoded as routes name them, once each, and let go after the build.
    with index.secret_reads() as unreadable_secrets:
        sources = _route_sources(builder, index, settings)
        for kind, ident, obj in sources:
            try:
                reason = builder.source((kind, ident), obj, _handler(builder, kind, ident, obj))
            except Exception as exc:  # a replayed claim met one made first this time
                reason = reason_of(exc)
            if reason is not None:
                builder.reject(describe(kind, ident), reason)
        builder.join_canaries()
        catalog = builder.catalog
        if settings.gateway_api:
            candidates, catalog.gateway = gateway_candidates(builder, index)
            catalog.routes, dropped = merge(catalog.routes, candidates)
            for owner, reason in dropped:
                builder.ignore(owner, reason)
        for ident, reason in sorted(unreadable_secrets.items()):
            builder.reject(describe("Secret", ident), reason)
    catalog.ignored.sort(key=lambda item: (item.object, item.reason))
    catalog.server_entries, catalog.traces = builder.entries, builder.traces
    depended = {*builder.unselected, ("IngressClass", "", settings.ingress_class)}
    catalog.build_state = builder.state(
        depended, set(), builder.traces.values(), builder.contested()
    )
    catalog.build_state.gateway = bool(catalog.gateway)
    catalog.build_state.gateway_world = builder.world
    used = {name for route in catalog.routes for name in route.backends}
    used.add(catalog.default_backend or "")
    catalog.backends = {name: b for name, b in sorted(catalog.backends.items()) if name in used}
    catalog.routes.sort(key=_route_order)
    return catalog


def _route_order(route: Route) -> tuple[str, str, str]:
    return (route.host, route.path, route.match)


def _grown(index: ClusterIndex, settings: CatalogSettings, previous: Catalog) -> Catalog | None:
    """:func:`build_catalog` when the objects touched since ``previous`` are only new
    Ingresses or route ConfigMaps (with objects nothing else read: their Services,
    Secrets) that build cleanly: ``previous`` and what they add, without going over
    every other object again.  None: it takes the full build.

    Clean means that where the new objects sort among the others cannot matter: no
    rejection (their own, or of an EndpointSlice of their Services), no host or path
    another object claims, no backend options another keeps, no default backend, no
    certificate another brings.  A new object that is not clean takes the full build,
    which gives the claims to the older object.
    """
    state: BuildState | None = previous.build_state
    if (
        state is None
        or state.settings != settings
        or settings.mode != "pods"
        or state.reader_generation != index.reader_generation
        or state.canaries
        or state.gateway
    ):
        return None
    added = []
    selectors: dict[str, Any] | None = None
    for key in index.touched:
        if _depended(key, state, previous):
            return None
        kind, namespace, name = key
        if kind == plain_routes.KIND:
            return None  # plain routes go by name, after every Kubernetes object
        if settings.gateway_api and (kind in GATEWAY_KINDS or kind == "Namespace"):
            return None  # a Gateway API object: built with all the others
        obj = index.get(kind, namespace, name)
        if kind not in ("Ingress", "ConfigMap") or obj is None:
            continue  # not ours, or gone again: nothing read it
        try:
            selectors = selectors or _selectors(settings, default_class(index, settings))
            if selectors[kind](obj):
                added.append((kind, (namespace, name), obj))
        except Exception:
            return None  # rejected as it is selected: the full build names it
    if not added:
        return previous  # what was touched makes no route, nor feeds one
    added.sort(key=_creation_order)
    builder = Builder(index, settings)
    builder.resume(previous, state)
    rejected = len(builder.catalog.rejected)
    new_traces = []
    with index.secret_reads():
        for ident in state.secrets:  # read again: kept decoded, as a full build keeps them
            with contextlib.suppress(SecretUnreadable):
                index.secret(*ident)
        for kind, ident, obj in added:
            try:
                reason = builder.source((kind, ident), obj, _handler(builder, kind, ident, obj))
            except Exception:
                return None
            trace = builder.traces.get((kind, ident))
            if (
                reason is not None
                or trace is None
                or not _clean(trace, builder, previous, state.contested)
            ):
                return None
            new_traces.append(trace)
    if len(builder.catalog.rejected) != rejected:
        return None
    catalog = builder.catalog
    catalog.rejected = previous.rejected  # the same rejections, in the same order
    catalog.ignored.sort(key=lambda item: (item.object, item.reason))
    catalog.server_entries, catalog.traces = builder.entries, builder.traces
    depended = set(state.depended)
    # The new objects are clean: the routes others were refused for are the same.
    catalog.build_state = builder.state(depended, set(state.secrets), new_traces, state.contested)
    catalog.build_state.grown = True
    # The routes the new objects added, moved into their places among the sorted others.
    routes = catalog.routes[len(previous.routes) :]
    del catalog.routes[len(previous.routes) :]
    for route in routes:
        bisect.insort(catalog.routes, route, key=_route_order)
    backends = dict(previous.backends)
    for name in {name for route in routes for name in route.backends}:
        backends[name] = catalog.backends[name]
    catalog.backends = dict(sorted(backends.items()))
    return catalog


def _depended(key: tuple[str, str, str], state: BuildState, previous: Catalog) -> bool:
    """Whether a change to the index key ``key`` may change what ``previous`` holds:
    an object that made routes (or tried), a Service whose servers were computed, or
    something else one of them read."""
    kind, namespace, name = key
    if kind == "service":
        return (namespace, name) in previous.server_problems
    return key in state.depended or (kind, (namespace, name)) in previous.traces


def _clean(
    trace: Trace, builder: Builder, previous: Catalog, contested: set[tuple[str, str, str]]
) -> bool:
    """Whether a new object's build is the same wherever it sorts (see :func:`_grown`)."""
    for name, args in trace.steps:
        if name in ("set_default_backend", "claim_canary"):  # changes what others made
            return False
        if name == "add_certificate" and args[0].name in previous.certificates:
            return False
        if name == "add_routes" and any(
            (route.host, route.path, route.match) in contested for route in args[0]
        ):
            return False  # a route an object was refused for: its reason may name this one
        # Options of its own for a Service routed before: which object keeps them (and
        # is named to those that disagree) hangs on the order.
        if (
            name == "checked_backend"
            and args[3] != BackendOptions()
            and (args[0], args[1]) in previous.server_refs
        ):
            return False
    catalog = builder.catalog
    for service in trace.services:
        if catalog.server_problems.get(service) or service in catalog.servers_rejected:
            return False
    return True


def refresh_servers(
    catalog: Catalog,
    index: ClusterIndex,
    services: Iterable[tuple[str, str]],
    settings: CatalogSettings | None = None,
) -> tuple[Catalog, list[str]] | None:
    """``catalog`` after a change to the EndpointSlices/Endpoints of ``services`` only.

    The work is in proportion to the change, not to the cluster: only those services'
    backends are recomputed, everything else is shared with ``catalog``.  The result
    equals :func:`build_catalog` of the same objects (a unit test holds it to that).
    Returns the new catalog and the backends whose servers changed, or None when the
    change needs a full build (NodePort mode, where servers come from Nodes; a Service
    whose servers were or become refused; a slice that is or was malformed).
    """
    settings = settings or CatalogSettings()
    if settings.mode != "pods":
        return None
    backends: dict[str, Backend] | None = None
    changed = []
    for namespace, service in services:
        key = (namespace, service)
        if key in catalog.servers_rejected:
            return None
        problems: Problems = {}
        for name, port in catalog.server_refs.get(key, ()):
            try:
                _label, servers = backend_servers(
                    index, namespace, service, port, settings, problems
                )
            except Exception:
                return None  # the Service itself changed: not a servers-only change
            old = catalog.backends.get(name)
            if old is not None and servers != old.servers:
                if backends is None:
                    backends = dict(catalog.backends)
                backends[name] = replace(old, servers=servers)
                changed.append(name)
        if problem_rejections(problems) != catalog.server_problems.get(key, ()):
            return None  # a slice became malformed, or stopped being: rejections change
    if backends is None:
        return catalog, []
    return replace(catalog, backends=backends), changed


def without_sources(catalog: Catalog, sources: set[str]) -> Catalog:
    """``catalog`` without the routes and certificates of the objects ``sources`` names
    (and the backends only they used): what is served when those objects are held back."""
    if not sources:
        return catalog
    routes = [route for route in catalog.routes if route.source not in sources]
    used = {name for route in routes for name in route.backends} | {catalog.default_backend}
    return replace(
        catalog,
        routes=routes,
        backends={name: b for name, b in catalog.backends.items() if name in used},
        certificates={
            name: cert for name, cert in catalog.certificates.items() if cert.source not in sources
        },
    )


def route_sources(catalog: Catalog) -> list[str]:
    """The objects that put routes or certificates into ``catalog``, in a stable order."""
    return sorted(
        {r.source for r in catalog.routes} | {c.source for c in catalog.certificates.values()}
    )


def source_fingerprints(catalog: Catalog, sources: set[str]) -> dict[str, str]:
    """A digest of what each of ``sources`` contributes: it changes when the object does."""
    parts: dict[str, list[str]] = {source: [] for source in sources}
    for route in catalog.routes:
        if route.source in parts:
            backend = catalog.backends.get(route.backend)
            options = backend.options if backend is not None else None
            parts[route.source].append(repr((route, options)))
    for certificate in catalog.certificates.values():
        if certificate.source in parts:
            parts[certificate.source].append(certificate.name)
    return {
        source: hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()
        for source, texts in parts.items()
        if texts
    }
