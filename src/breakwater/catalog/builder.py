"""The catalog under construction: backends (servers computed once per Service port),
routes claimed by one object each, limits per object.

An object's contribution is recorded as it is built (:class:`Trace`): the builder calls
it made, the objects it read, the Services whose servers it took.  The next build replays
the trace of an object that is the very same object when none of those was touched
since (:attr:`ClusterIndex.touched`), instead of parsing and validating it again: a
route change then costs the replay of every other object (dictionary work), not their
parsing.  Replay makes the same calls in the same order, so conflicts, rejections and
first-come certificates come out as a fresh build makes them (a unit test holds it to
that).  Where the build ended (:class:`BuildState`) lets the next one build objects that
were only added without going over the others (``catalog.build``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from breakwater import validate
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    Canary,
    Catalog,
    CatalogSettings,
    Certificate,
    MatchType,
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
    Object,
    SecretUnreadable,
)
from breakwater.validate import reason_of

SourceKey = tuple[str, tuple[str, str]]
"""(kind, (namespace, name)) of an object that makes routes."""


class Conflict(Rejected):
    """A rejection that depends on what other objects claimed first (a route taken,
    backend options kept): the object's trace is kept for what it read, never replayed,
    as the claim may be gone by the next build."""


@dataclass(slots=True)
class Trace:
    """What building one object did: replayed by the next build while what it read is
    unchanged (see the module's docstring)."""

    obj: Object
    steps: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    # (kind, namespace, name, what was found): a Secret's unreadable reason as a str.
    reads: list[tuple[str, str, str, Any]] = field(default_factory=list)
    services: list[tuple[str, str]] = field(default_factory=list)  # whose servers it took
    generation: int = 0  # the index's reader generation (what reads stored Secrets)
    error: str | None = None  # why the object was rejected whole
    # Rejected for a claim another object made first: not replayed (the claim may be
    # gone), but what it read is still what it depends on.
    conflicted: bool = False

    def read_keys(self) -> Iterator[tuple[str, str, str]]:
        """The index keys (see :attr:`ClusterIndex.touched`) of the objects it read
        besides its own and its Services' servers."""
        for kind, namespace, name, _found in self.reads:
            yield (kind, namespace, name)


@dataclass
class BuildState:
    """What a build ends with besides its catalog: where the next build starts from
    when objects were only added (:func:`~breakwater.catalog.build.build_catalog`)."""

    settings: CatalogSettings
    reader_generation: int
    backends: dict[str, Backend]  # every backend asked for, routed or not
    option_owner: dict[str, str]
    service_options: dict[str, BackendOptions]
    route_owner: dict[tuple[str, str, str], str]
    computed: dict[tuple[str, str, int | str], tuple[str, tuple[Server, ...]] | str]
    rejected_once: set[Rejection]
    # Index keys whose change may change the catalog, besides the objects that make
    # routes (the catalog's traces) and the Services whose servers were computed (its
    # server_problems): what they read (Services, Secrets), objects whose selection
    # failed, our IngressClass.  Small: a set of every key would be a tuple per object.
    depended: set[tuple[str, str, str]]
    secrets: set[tuple[str, str]]  # the Secrets read (kept decoded while they are)
    # Routes that objects rejected for a taken route asked for (host, path, match): the
    # reason names the first taken in their order, which a new claim may change.
    contested: set[tuple[str, str, str]] = field(default_factory=set)
    # Some object is the canary of another's routes: joined at the end of a build,
    # which the next one then makes whole too.
    canaries: bool = False
    # Gateway API objects were built: never grown (what an HTTPRoute makes hangs on
    # every other's precedence); the next build replays each unchanged HTTPRoute while
    # the objects every route reads are the same (gateway_world), and merges them all.
    gateway: bool = False
    gateway_world: Any = None
    grown: bool = False  # this build started where the one before ended


@dataclass
class Builder:
    index: ClusterIndex
    settings: CatalogSettings
    catalog: Catalog = field(default_factory=Catalog)
    route_owner: dict[tuple[str, str, str], str] = field(default_factory=dict)
    option_owner: dict[str, str] = field(default_factory=dict)
    # Backend name of a Service port -> the options every section of it has (those
    # an object set first; route features aside).
    service_options: dict[str, BackendOptions] = field(default_factory=dict)
    # Servers are computed once per Service port, however many paths route to it.
    computed: dict[tuple[str, str, int | str], tuple[str, tuple[Server, ...]] | str] = field(
        default_factory=dict
    )
    nodes: list[tuple[str, ServerState]] | None = None
    rejected_once: set[Rejection] = field(default_factory=set)
    # Objects whose selection (is it ours?) failed, and were rejected for it.
    unselected: set[tuple[str, str, str]] = field(default_factory=set)
    # Servers computed by the build before, reused for a Service port whose Service,
    # EndpointSlices and Endpoints are the very objects they were computed from (the
    # index replaces an object that changes): a route change then costs what its
    # routes do, not a recomputation of every Service's servers.  Pods mode only.
    reuse: Mapping[tuple[str, str, int | str], ServersEntry] = field(default_factory=dict)
    entries: dict[tuple[str, str, int | str], ServersEntry] = field(default_factory=dict)
    # The traces of the build before (replayed when still true), and of this one.
    reuse_traces: Mapping[SourceKey, Trace] = field(default_factory=dict)
    traces: dict[SourceKey, Trace] = field(default_factory=dict)
    trace: Trace | None = None  # the object being recorded
    reuse_backends: Mapping[str, Backend] = field(default_factory=dict)
    witnesses: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    # (host, path, match, canary, owner): an object's claim to be the canary of a route
    # another object made (an ingress-nginx canary Ingress); see join_canaries.
    canary_claims: list[tuple[str, str, MatchType, Canary, str]] = field(default_factory=list)
    # What the object being built handed back besides its steps (keep), replayed with them.
    kept: list[Any] = field(default_factory=list)
    # The Gateway API objects every HTTPRoute reads, of the build before and of this one
    # (catalog.gateway's world): an HTTPRoute is replayed only while they are the same.
    reuse_world: Any = None
    world: Any = None

    def _step(self, name: str, *args: Any) -> None:
        if self.trace is not None:
            self.trace.steps.append((name, args))

    def source(self, key: SourceKey, obj: Object, handler: Any, replay: bool = True) -> str | None:
        """Build one object: ``handler()`` recorded, or its trace replayed (if
        ``replay``: what else it depends on is unchanged).  Returns why the object is
        rejected whole, or None; raises when a replayed claim conflicts (as the
        handler would have).  What it hands back (:meth:`keep`) is in :attr:`kept`."""
        self.kept = []
        trace = self.reuse_traces.get(key) if replay else None
        if trace is not None and not trace.conflicted and self._replayable(trace, obj):
            self.traces[key] = trace
            for name, args in trace.steps:
                getattr(self, name)(*args)
            return trace.error
        # Servers from Nodes (NodePort mode) have no witness: always built afresh.
        trace = self.trace = (
            Trace(obj, generation=self.index.reader_generation)
            if self.settings.mode == "pods"
            else None
        )
        try:
            handler()
        except Exception as exc:
            if trace is not None:
                trace.error = reason_of(exc)
                trace.conflicted = isinstance(exc, Conflict)
                self.traces[key] = trace
            return reason_of(exc)
        finally:
            self.trace = None
        if trace is not None:
            self.traces[key] = trace
        return None

    def resume(self, previous: Catalog, state: BuildState) -> None:
        """Start where the build of ``previous`` ended (copies: ``previous`` is not
        changed), to build objects added since."""
        catalog = self.catalog
        catalog.routes = list(previous.routes)
        catalog.backends = dict(state.backends)
        catalog.certificates = dict(previous.certificates)
        catalog.default_backend = previous.default_backend
        catalog.rejected = list(previous.rejected)
        catalog.ignored = list(previous.ignored)
        catalog.server_refs = dict(previous.server_refs)  # lists replaced, never changed
        catalog.server_problems = dict(previous.server_problems)
        catalog.servers_rejected = set(previous.servers_rejected)
        self.route_owner = dict(state.route_owner)
        self.option_owner = dict(state.option_owner)
        self.service_options = dict(state.service_options)
        self.computed = dict(state.computed)
        self.rejected_once = set(state.rejected_once)
        self.reuse, self.entries = previous.server_entries, dict(previous.server_entries)
        self.reuse_backends = previous.backends
        self.traces = dict(previous.traces)

    def state(
        self,
        depended: set[tuple[str, str, str]],
        secrets: set[tuple[str, str]],
        traces: Iterable[Trace],
        contested: set[tuple[str, str, str]],
    ) -> BuildState:
        """What the next build may start from.  ``depended`` (see :class:`BuildState`)
        and ``secrets``, the Secrets read: what ``traces`` read is added to both."""
        for trace in traces:
            if trace.reads:
                depended.update(trace.read_keys())
                secrets.update(
                    (ns, name) for kind, ns, name, _found in trace.reads if kind == "Secret"
                )
        return BuildState(
            settings=self.settings,
            reader_generation=self.index.reader_generation,
            backends=self.catalog.backends,
            option_owner=self.option_owner,
            service_options=self.service_options,
            route_owner=self.route_owner,
            computed=self.computed,
            rejected_once=self.rejected_once,
            depended=depended,
            secrets=secrets,
            contested=contested,
            canaries=bool(self.canary_claims),
        )

    def contested(self) -> set[tuple[str, str, str]]:
        """The routes objects rejected for a taken route asked for (see :class:`BuildState`)."""
        return {
            (route.host, route.path, route.match)
            for trace in self.traces.values()
            if trace.conflicted
            for name, args in trace.steps
            if name == "add_routes"
            for route in args[0]
        }

    def _replayable(self, trace: Trace, obj: Object) -> bool:
        """The object is the same, and so is what it read: nothing it depends on was
        touched since the build before (the index's :attr:`~ClusterIndex.touched`)."""
        if trace.obj is not obj or trace.generation != self.index.reader_generation:
            return False
        touched = self.index.touched
        for namespace, service in trace.services:
            if ("service", namespace, service) in touched:
                return False
        for kind, namespace, name, found in trace.reads:
            if kind != "Secret":
                if self.index.get(kind, namespace, name) is not found:
                    return False
                continue
            try:
                now: Any = self.index.secret(namespace, name)
            except SecretUnreadable as exc:
                now = str(exc)
            if not (now is found or (isinstance(found, str) and found == now)):
                return False
        return True

    def read(self, kind: str, namespace: str, name: str) -> Object | None:
        """An object of the index (recorded: the trace holds while it is the same)."""
        found = self.index.get(kind, namespace, name)
        if self.trace is not None:
            self.trace.reads.append((kind, namespace, name, found))
        return found

    def secret(self, namespace: str, name: str) -> Object | None:
        """:meth:`ClusterIndex.secret`, recorded as :meth:`read` is."""
        try:
            found = self.index.secret(namespace, name)
        except SecretUnreadable as exc:
            if self.trace is not None:
                self.trace.reads.append(("Secret", namespace, name, str(exc)))
            raise
        if self.trace is not None:
            self.trace.reads.append(("Secret", namespace, name, found))
        return found

    def keep(self, result: Any) -> None:
        """A value the object's build hands back to its caller besides what it adds to
        the catalog (an HTTPRoute's candidates and status): a step, so that a replay
        hands it back too.  Never changed once kept: a replay shares it."""
        self._step("keep", result)
        self.kept.append(result)

    def reject(self, what: str, reason: str) -> None:
        self._step("reject", what, reason)
        self.catalog.rejected.append(Rejection(what, reason))

    def ignore(self, what: str, reason: str) -> None:
        """Something ``what`` asked for is not done; the object serves all the same."""
        self._step("ignore", what, reason)
        self.catalog.ignored.append(Rejection(what, reason))

    def claim_canary(self, routes: list[Route], canary: Canary, owner: str) -> None:
        """``owner`` is the canary of the routes another object makes for these hosts
        and paths (joined once every object is built: :meth:`join_canaries`);
        ``routes`` point at the canary's backends, ``canary`` says how it is chosen."""
        self._step("claim_canary", routes, canary, owner)
        for route in routes:
            # Each route's own backend is the canary's (the template's is empty).
            claim = replace(canary, backend=route.backend)
            self.canary_claims.append((route.host, route.path, route.match, claim, owner))

    def join_canaries(self) -> None:
        """Give each claimed route its canary.  A claim on no route, or on a route with
        a canary already, rejects the claiming object (its other claims stand)."""
        if not self.canary_claims:
            return
        at = {(r.host, r.path, r.match): i for i, r in enumerate(self.catalog.routes)}
        routes = self.catalog.routes
        refused: dict[str, str] = {}
        for host, path, match, canary, owner in self.canary_claims:
            index = at.get((host, path, match))
            if index is None:
                refused.setdefault(owner, f"canary of {host}{path} ({match}): no route to it")
            elif routes[index].canary is not None and routes[index].canary != canary:
                refused.setdefault(owner, f"{host}{path} ({match}) already has a canary")
            else:
                routes[index] = replace(routes[index], canary=canary)
        for owner, reason in sorted(refused.items()):
            self.catalog.rejected.append(Rejection(owner, reason))

    def set_default_backend(self, name: str, owner: str) -> None:
        """The first object to name a default backend sets it; a later one is told."""
        self._step("set_default_backend", name, owner)
        if self.catalog.default_backend not in (None, name):
            self.catalog.rejected.append(
                Rejection(owner, "defaultBackend ignored: another Ingress already set one")
            )
        else:
            self.catalog.default_backend = name

    def add_certificate(self, certificate: Certificate) -> None:
        """The first object to bring a certificate (by file name) keeps it."""
        self._step("add_certificate", certificate)
        self.catalog.certificates.setdefault(certificate.name, certificate)

    def add_backend(self, backend: Backend) -> None:
        """A backend whose servers are listed inline (a plain route)."""
        self._step("add_backend", backend)
        self.catalog.backends[backend.name] = backend

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
        if self.trace is not None:
            self.trace.services.append((namespace, service))
        if computed is None and self.settings.mode == "pods":
            entry = self.reuse.get(key)
            if entry is not None and (
                ("service", namespace, service) not in self.index.touched
                or _same_objects(entry.witness, self._witness(namespace, service))
            ):
                computed = self.computed[key] = entry.computed
                self.entries[key] = entry
                if isinstance(computed, str):
                    self.catalog.servers_rejected.add((namespace, service))
                self._problems(namespace, service, entry.problems)
        if computed is None:
            if self.settings.mode == "pods":
                witness = self._witness(namespace, service)
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
        """The objects a Service port's servers are computed from (once per build)."""
        key = (namespace, service)
        witness = self.witnesses.get(key)
        if witness is None:
            slices = self.index.slices_by_service.get(key) or {}
            witness = self.witnesses[key] = (
                self.index.get("Service", namespace, service),
                self.index.get("Endpoints", namespace, service),
                *sorted(slices.items(), key=lambda item: item[0]),
            )
        return witness

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
        return self.checked_backend(namespace, service, port_ref, options, owner)

    def checked_backend(
        self, namespace: str, service: str, port_ref: int | str, options: BackendOptions, owner: str
    ) -> str:
        """:meth:`backend` once its names are checked (what a replay calls: the names
        were checked when it was recorded)."""
        self._step("checked_backend", namespace, service, port_ref, options, owner)
        port_label, servers = self.servers(namespace, service, port_ref)
        base = backend_name(namespace, service, port_label)
        features = options.features
        # An object with route features gets its own section of the Service port.
        name = base if features is None else f"{base}_f{features.digest()}"
        # Which backends a change to the Service's servers recomputes: registered
        # whatever the options do below, so that it does not hang on the order.
        refs = self.catalog.server_refs.get((namespace, service), [])
        if (name, port_ref) not in refs:  # a new list: a resumed build shares the old
            self.catalog.server_refs[(namespace, service)] = [*refs, (name, port_ref)]
        # The Service port's own options (every section of it has the same): the
        # first object with options keeps them, one without takes them.
        ours = options.service_part()
        known = self.service_options.get(base)
        if known is not None and known != ours:
            if ours == BackendOptions():
                ours = known
                options = replace(known, features=features)
            elif known != BackendOptions():
                raise Conflict(
                    f"backend options for {namespace}/{service} conflict with "
                    f"{self.option_owner[base]}, which keeps them"
                )
        if known is None or (known == BackendOptions() and ours != known):
            self.service_options[base] = ours
            self.option_owner[base] = owner
            if known is not None:
                self._share_options(namespace, service, base, ours)
        existing = self.catalog.backends.get(name)
        if existing is None or existing.options != options:
            before = self.reuse_backends.get(name)
            if (
                before is not None
                and before.servers is servers
                and before.options == options
                and before.port == port_label
                and before.namespace == namespace
                and before.service == service
            ):
                self.catalog.backends[name] = before  # the same: renderers cache by identity
            else:
                self.catalog.backends[name] = Backend(
                    name, namespace, service, port_label, options, servers
                )
        return name

    def _share_options(self, namespace: str, service: str, base: str, ours: BackendOptions) -> None:
        """Give the sections of a Service port made before it had options of its own
        (objects with route features and none) the options it has now."""
        for name, _port in self.catalog.server_refs.get((namespace, service), ()):
            backend = self.catalog.backends.get(name)
            if backend is None or not name.startswith(base + "_f"):
                continue
            if backend.options.service_part() != ours:
                options = replace(ours, features=backend.options.features)
                self.catalog.backends[name] = replace(backend, options=options)

    def add_routes(self, routes: list[Route], owner: str) -> None:
        """Add an object's routes; all of them, or none if one is already taken."""
        self._step("add_routes", routes, owner)
        if len(routes) > self.settings.max_routes_per_object:
            raise Rejected(
                f"{len(routes)} routes, more than catalog.max_routes_per_object "
                f"({self.settings.max_routes_per_object})"
            )
        for route in routes:
            taken = self.route_owner.get((route.host, route.path, route.match))
            if taken is not None and taken != owner:
                raise Conflict(
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
