"""The catalog under construction: backends (servers computed once per Service port),
routes claimed by one object each, limits per object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from breakwater import validate
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    Catalog,
    CatalogSettings,
    Problems,
    Rejected,
    Rejection,
    Route,
    Server,
    ServerState,
    problem_rejections,
)
from breakwater.catalog.servers import backend_name, backend_servers, node_addresses
from breakwater.cluster.index import (
    ClusterIndex,
)
from breakwater.validate import reason_of


@dataclass
class Builder:
    index: ClusterIndex
    settings: CatalogSettings
    catalog: Catalog = field(default_factory=Catalog)
    route_owner: dict[tuple[str, str, str], str] = field(default_factory=dict)
    option_owner: dict[str, str] = field(default_factory=dict)
    # Servers are computed once per Service port, however many paths route to it.
    computed: dict[tuple[str, str, int | str], tuple[str, tuple[Server, ...]] | str] = field(
        default_factory=dict
    )
    nodes: list[tuple[str, ServerState]] | None = None
    rejected_once: set[Rejection] = field(default_factory=set)
    # Servers computed by the build before, reused for a Service port whose Service,
    # EndpointSlices and Endpoints are the very objects they were computed from (the
    # index replaces an object that changes): a route change then costs what its
    # routes do, not a recomputation of every Service's servers.  Pods mode only.
    reuse: Mapping[tuple[str, str, int | str], ServersEntry] = field(default_factory=dict)
    entries: dict[tuple[str, str, int | str], ServersEntry] = field(default_factory=dict)

    def reject(self, what: str, reason: str) -> None:
        self.catalog.rejected.append(Rejection(what, reason))

    def _reject_once(self, rejection: Rejection) -> None:
        if rejection not in self.rejected_once:
            self.rejected_once.add(rejection)
            self.catalog.rejected.append(rejection)

    def servers(
        self, namespace: str, service: str, port: int | str
    ) -> tuple[str, tuple[Server, ...]]:
        """(port label, servers) of a Service port, computed once; raises :class:`Rejected`."""
        key = (namespace, service, port)
        computed = self.computed.get(key)
        witness: tuple[Any, ...] = ()
        if computed is None and self.settings.mode == "pods":
            witness = self._witness(namespace, service)
            entry = self.reuse.get(key)
            if entry is not None and _same_objects(entry.witness, witness):
                computed = self.computed[key] = entry.computed
                self.entries[key] = entry
                if isinstance(computed, str):
                    self.catalog.servers_rejected.add((namespace, service))
                self._problems(namespace, service, entry.problems)
        if computed is None:
            if self.settings.mode == "nodeport" and self.nodes is None:
                problems: Problems = {}
                self.nodes = node_addresses(
                    self.index, self.settings.allow_special_addresses, problems
                )
                for what, why in sorted(problems.items()):
                    self._reject_once(Rejection(what, why))
            found: Problems = {}
            try:
                computed = backend_servers(
                    self.index, namespace, service, port, self.settings, found, self.nodes
                )
            except Exception as exc:
                computed = reason_of(exc)
                self.catalog.servers_rejected.add((namespace, service))
            self.computed[key] = computed
            if witness:
                self.entries[key] = ServersEntry(witness, computed, dict(found))
            self._problems(namespace, service, found)
        if isinstance(computed, str):
            raise Rejected(computed)
        return computed

    def _problems(self, namespace: str, service: str, found: Problems) -> None:
        if not found:  # the common case, cheaply
            self.catalog.server_problems.setdefault((namespace, service), ())
            return
        rejections = problem_rejections(found)
        known = self.catalog.server_problems.get((namespace, service), ())
        self.catalog.server_problems[(namespace, service)] = tuple(
            sorted(set(known) | set(rejections), key=str)
        )
        for rejection in rejections:
            self._reject_once(rejection)

    def _witness(self, namespace: str, service: str) -> tuple[Any, ...]:
        """The objects a Service port's servers are computed from."""
        slices = self.index.slices_by_service.get((namespace, service)) or {}
        return (
            self.index.get("Service", namespace, service),
            self.index.get("Endpoints", namespace, service),
            *sorted(slices.items(), key=lambda item: item[0]),
        )

    def backend(
        self,
        namespace: str,
        service_name: object,
        port: object,
        options: BackendOptions,
        owner: str,
    ) -> str:
        service = validate.service_name(service_name)
        port_ref = validate.service_port(port)
        port_label, servers = self.servers(namespace, service, port_ref)
        name = backend_name(namespace, service, port_label)
        existing = self.catalog.backends.get(name)
        if existing is not None and existing.options != options:
            if options == BackendOptions():
                return name  # no options of its own: use the existing ones
            if existing.options != BackendOptions():
                raise Rejected(
                    f"backend options for {namespace}/{service} conflict with "
                    f"{self.option_owner[name]}, which keeps them"
                )
        if existing is None or existing.options == BackendOptions():
            self.option_owner[name] = owner
            self.catalog.backends[name] = Backend(
                name, namespace, service, port_label, options, servers
            )
        refs = self.catalog.server_refs.setdefault((namespace, service), [])
        if (name, port_ref) not in refs:
            refs.append((name, port_ref))
        return name

    def add_routes(self, routes: list[Route], owner: str) -> None:
        """Add an object's routes; all of them, or none if one is already taken."""
        if len(routes) > self.settings.max_routes_per_object:
            raise Rejected(
                f"{len(routes)} routes, more than catalog.max_routes_per_object "
                f"({self.settings.max_routes_per_object})"
            )
        for route in routes:
            taken = self.route_owner.get((route.host, route.path, route.match))
            if taken is not None and taken != owner:
                raise Rejected(
                    f"{route.host}{route.path} ({route.match}) is already routed by {taken}"
                )
        for route in routes:
            if (route.host, route.path, route.match) in self.route_owner:
                continue
            self.route_owner[(route.host, route.path, route.match)] = owner
            self.catalog.routes.append(route)

    def check_counts(self, hosts: int, paths: int, routes: int) -> None:
        """Refuse an object past the limits from its counts, before building anything."""
        settings = self.settings
        for count, what, limit in (
            (hosts, "hosts", settings.max_hosts_per_object),
            (paths, "paths", settings.max_paths_per_object),
            (routes, "routes", settings.max_routes_per_object),
        ):
            if count > limit:
                raise Rejected(f"{count} {what}, more than catalog.max_{what}_per_object ({limit})")


def as_mapping(value: object, what: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping (or absent: empty); a malformed object otherwise."""
    if isinstance(value, dict):  # what decoding makes: skip the slower ABC check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Rejected(f"{what} is not an object")
    return value


def as_list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected(f"{what} is not a list")
    return value


@dataclass(frozen=True)
class ServersEntry:
    """Servers (or the reason they were refused) of one Service port, with the objects
    they were computed from and the problems met."""

    witness: tuple[Any, ...]
    computed: tuple[str, tuple[Server, ...]] | str
    problems: Problems


def _same_objects(before: tuple[Any, ...], now: tuple[Any, ...]) -> bool:
    """The same objects, by identity (slices as (name, object) pairs)."""
    if len(before) != len(now):
        return False
    for old, new in zip(before, now, strict=True):
        if isinstance(old, tuple) and isinstance(new, tuple):
            if old[0] != new[0] or old[1] is not new[1]:
                return False
        elif old is not new:
            return False
    return True
