"""The catalog: a pure function from decoded Kubernetes objects to the routing model.

Inputs are the objects the watcher, a lookup or a module read from etcd, keyed by
their etcd key.  The output is a :class:`Catalog`: routes (host, path, backend,
options), backends with their servers, TLS certificates, the default backend, and
every object that was rejected with its reason.  A bad object is rejected alone;
the others keep working.

Where routes come from:

* ``Ingress`` objects of Breakwater's ingress class;
* ``ConfigMap`` objects carrying the route label (``breakwater.io/edge: "true"``
  by default), one per service, whose keys are documented in :data:`CONFIGMAP_KEYS`.

Where servers come from: ``EndpointSlice`` objects (``Endpoints`` when a service
has no slice), or, in NodePort mode, every ready Node's InternalIP with the
Service's nodePort.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from breakwater import routes as plain_routes
from breakwater import validate
from breakwater.validate import InvalidValue

Object = Mapping[str, Any]
ServerState = Literal["ready", "drain"]
MatchType = Literal["exact", "prefix"]

# Resource directories under the key prefix (the API server's storage layout).
RESOURCES: dict[str, str] = {
    "services/specs/": "Service",
    "services/endpoints/": "Endpoints",
    "endpointslices/": "EndpointSlice",
    "configmaps/": "ConfigMap",
    "secrets/": "Secret",
    "minions/": "Node",
    "ingress/": "Ingress",
    "ingressclasses/": "IngressClass",
}

#: Kinds that only ever change a backend's servers, never its routes (pods mode).
SERVER_KINDS = frozenset({"EndpointSlice", "Endpoints"})

ANNOTATION_PREFIX = "breakwater.io/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"

#: Every key a route ConfigMap may carry, with what it means.
CONFIGMAP_KEYS: dict[str, str] = {
    "service": "Service name in the ConfigMap's namespace (default: the ConfigMap's name)",
    "port": "Service port, by name or number (default: the Service's first port)",
    "hosts": "hostnames served, separated by commas, spaces or newlines (required)",
    "paths": "path prefixes served (default: /)",
    "exact-paths": "paths served only when the request path is exactly equal",
    "cache": "true: the route is cacheable (served through Varnish)",
    "cache-ttl": "TTL for responses without Cache-Control or Expires, e.g. 120s or 5m",
    "cache-grace": "how long a stale object may be served while it is refetched, e.g. 30s",
    "cache-strip-cookies": "true: drop Cookie from requests and Set-Cookie from responses",
    "cache-bypass-paths": "path prefixes under the route's paths that never use the cache",
    "https-redirect": "true: plain HTTP requests are redirected to HTTPS (308)",
    "tls-secret": "a kubernetes.io/tls Secret in the same namespace for these hosts",
    "balance": "roundrobin, static-rr, leastconn, first, source or random",
    "health-check-path": "HTTP path HAProxy probes on every server (default: no health check)",
    "health-check-interval": "time between probes, e.g. 2s (default 2s)",
    "timeout-connect": "HAProxy connect timeout to a server, e.g. 5s",
    "timeout-server": "HAProxy server inactivity timeout, e.g. 30s",
}

#: Ingress annotations (prefix ``breakwater.io/``) and what they set.
INGRESS_ANNOTATIONS: dict[str, str] = {
    "cache": CONFIGMAP_KEYS["cache"],
    "cache-ttl": CONFIGMAP_KEYS["cache-ttl"],
    "cache-grace": CONFIGMAP_KEYS["cache-grace"],
    "cache-strip-cookies": CONFIGMAP_KEYS["cache-strip-cookies"],
    "cache-bypass-paths": CONFIGMAP_KEYS["cache-bypass-paths"],
    "https-redirect": CONFIGMAP_KEYS["https-redirect"],
    "balance": CONFIGMAP_KEYS["balance"],
    "health-check-path": CONFIGMAP_KEYS["health-check-path"],
    "health-check-interval": CONFIGMAP_KEYS["health-check-interval"],
    "timeout-connect": CONFIGMAP_KEYS["timeout-connect"],
    "timeout-server": CONFIGMAP_KEYS["timeout-server"],
}

_BACKEND_OPTION_KEYS = (
    "balance",
    "health-check-path",
    "health-check-interval",
    "timeout-connect",
    "timeout-server",
)


@dataclass(frozen=True)
class CatalogSettings:
    """What the operator chose; see the README's configuration reference."""

    ingress_class: str = "breakwater"
    controller_name: str = "breakwater.io/ingress-controller"
    configmap_label: str = "breakwater.io/edge"
    configmap_label_value: str = "true"
    mode: Literal["pods", "nodeport"] = "pods"
    # Endpoint and Node addresses Kubernetes itself refuses (loopback, link-local,
    # unspecified) would point the edge at its own node: refused unless allowed
    # (single-machine tests and demos).
    allow_special_addresses: bool = False
    # Bounds on what one object can make the edge do (the README lists them).
    max_hosts_per_object: int = 1000
    max_paths_per_object: int = 1000
    max_routes_per_object: int = 2000
    max_servers_per_backend: int = 2048


@dataclass(frozen=True, slots=True)
class Server:
    address: str
    port: int
    state: ServerState

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BackendOptions:
    balance: str = "roundrobin"
    health_check_path: str | None = None
    health_check_interval: str = "2s"
    timeout_connect: str | None = None
    timeout_server: str | None = None


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    namespace: str
    service: str
    port: str
    options: BackendOptions
    servers: tuple[Server, ...]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How Varnish treats a cacheable route; travels to Varnish in request headers."""

    ttl: int | None = None  # seconds, for responses that do not say
    grace: int | None = None  # seconds
    strip_cookies: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    host: str  # a hostname, "*.domain" for a wildcard, or "*" for any host
    path: str
    match: MatchType
    backend: str
    source: str
    https_redirect: bool = False
    cache: CachePolicy | None = None  # None: never through Varnish


@dataclass(frozen=True, slots=True)
class Certificate:
    name: str
    pem: str
    source: str


@dataclass(frozen=True, slots=True)
class Rejection:
    object: str
    reason: str


@dataclass
class Catalog:
    routes: list[Route] = field(default_factory=list)
    backends: dict[str, Backend] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    default_backend: str | None = None
    rejected: list[Rejection] = field(default_factory=list)
    # (namespace, service) -> [(backend, service port)]: which backends to recompute
    # when only that Service's EndpointSlices or Endpoints change (refresh_servers).
    # Every Service whose servers were computed, routed or not.
    server_refs: dict[tuple[str, str], list[tuple[str, int | str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # (namespace, service) -> the EndpointSlices/Endpoints of it that were rejected.
    server_problems: dict[tuple[str, str], tuple[Rejection, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Services whose servers were refused (a limit, a malformed Service).
    servers_rejected: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``breakwater catalog`` (certificates without keys)."""
        return {
            "routes": [_plain(route) for route in self.routes],
            "backends": {name: _plain(backend) for name, backend in self.backends.items()},
            "certificates": {
                name: {"source": cert.source} for name, cert in self.certificates.items()
            },
            "default_backend": self.default_backend,
            "rejected": [_plain(rejection) for rejection in self.rejected],
        }


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for the catalog's frozen dataclasses, without its deep
    copies: the status file holds the whole catalog, 10,000 backends at scale."""
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name in fields}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


class Rejected(Exception):
    """Raised inside the catalog to reject one object; carries the reason."""


# --- indexing -----------------------------------------------------------------------


@dataclass
class ClusterIndex:
    """Decoded objects grouped by kind and (namespace, name); updated in place."""

    by_kind: dict[str, dict[tuple[str, str], Object]] = field(default_factory=dict)
    slices_by_service: dict[tuple[str, str], dict[str, Object]] = field(default_factory=dict)

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        return self.by_kind.get(kind, {}).get((namespace, name))

    def all(self, kind: str) -> list[tuple[tuple[str, str], Object]]:
        return sorted(self.by_kind.get(kind, {}).items())

    def add(self, obj: Object, ident: tuple[str, str] | None = None) -> None:
        """Index ``obj`` under ``ident`` (from its etcd key), or its metadata if None."""
        ident = ident or _ident(obj)
        if ident is None:
            return
        kind = str(obj["kind"])
        self.by_kind.setdefault(kind, {})[ident] = obj
        service = served_service(obj)
        if kind == "EndpointSlice" and service is not None:
            self.slices_by_service.setdefault(service, {})[ident[1]] = obj

    def discard(self, obj: Object, ident: tuple[str, str] | None = None) -> None:
        """Forget ``obj`` -- only if it is the object indexed under ``ident``."""
        ident = ident or _ident(obj)
        if ident is None:
            return
        objects = self.by_kind.get(str(obj["kind"]), {})
        if objects.get(ident) is obj:
            del objects[ident]
        service = served_service(obj)
        slices = self.slices_by_service.get(service) if service is not None else None
        if service is not None and slices is not None and slices.get(ident[1]) is obj:
            del slices[ident[1]]
            if not slices:
                del self.slices_by_service[service]


def _ident(obj: Object) -> tuple[str, str] | None:
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    if not isinstance(kind, str) or not isinstance(meta, Mapping):
        return None
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return (namespace, name)


def served_service(obj: Object) -> tuple[str, str] | None:
    """The Service whose servers an EndpointSlice or Endpoints object lists."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    if kind not in SERVER_KINDS or not isinstance(meta, Mapping):
        return None
    namespace = str(meta.get("namespace") or "")
    if kind == "Endpoints":
        return (namespace, str(meta.get("name") or ""))
    labels = meta.get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, Mapping) else None
    return (namespace, service) if isinstance(service, str) and service else None


def kind_of_key(key: str, prefix: str) -> str | None:
    """The kind stored under ``key`` (``/registry/services/specs/ns/x`` -> Service)."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :].lstrip("/")
    for directory, kind in RESOURCES.items():
        if rest.startswith(directory):
            return kind
    return None


CLUSTER_SCOPED = frozenset({"Node", "IngressClass"})


def identity_of_key(key: str, prefix: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the object stored under ``key``; None: not a kind we read.

    The identity of an object is its key (the API server writes each object under
    its own); raises :class:`InvalidValue` for a key Kubernetes could not have written.
    """
    kind = kind_of_key(key, prefix)
    if kind is None:
        return None
    rest = key[len(prefix) :].lstrip("/")
    directory = next(d for d, k in RESOURCES.items() if k == kind and rest.startswith(d))
    parts = rest[len(directory) :].split("/")
    if kind in CLUSTER_SCOPED:
        if len(parts) != 1:
            raise InvalidValue(f"key of a {kind} is {prefix}{directory}<name>")
        namespace, name = "", parts[0]
    else:
        if len(parts) != 2:
            raise InvalidValue(f"key of a {kind} is {prefix}{directory}<namespace>/<name>")
        namespace, name = parts
        validate.dns_label(namespace, "namespace")
    if kind == "Service":
        validate.service_name(name)
    else:
        validate.dns_subdomain(name, f"{kind} name")
    return kind, namespace, name


def metadata_disagreement(obj: Object, kind: str, namespace: str, name: str) -> str | None:
    """Why ``obj`` cannot be the object its key names, or None when it is."""
    meta = obj.get("metadata")
    if obj.get("kind") != kind:
        return f"kind {obj.get('kind')!r} stored under a key of {kind}s"
    if not isinstance(meta, Mapping):
        return "metadata is not an object"
    if meta.get("name") != name:
        return f"metadata.name {meta.get('name')!r} disagrees with its key"
    if (meta.get("namespace") or "") != namespace:
        return f"metadata.namespace {meta.get('namespace')!r} disagrees with its key"
    return None


def index_objects(objects: Iterable[Object]) -> ClusterIndex:
    index = ClusterIndex()
    for obj in objects:
        index.add(obj)
    return index


def describe(kind: str, ident: tuple[str, str]) -> str:
    namespace, name = ident
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def reason_of(exc: Exception) -> str:
    """An exception as a rejection reason: ours say why; others say the object is malformed."""
    if isinstance(exc, Rejected | InvalidValue):
        return str(exc)
    text = str(exc)
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"malformed object ({type(exc).__name__}: {text})"


# --- servers ------------------------------------------------------------------------

Problems = dict[str, str]
"""Rejected EndpointSlices, Endpoints or Nodes met while computing servers: what -> why."""


def _service_port(service: Object, port: int | str) -> Mapping[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    if not isinstance(ports, list):
        raise Rejected("spec.ports of the service is not a list")
    for candidate in ports:
        if not isinstance(candidate, Mapping):
            raise Rejected("spec.ports of the service holds a non-object")
        if candidate.get("name", "") == port or candidate.get("port") == port:
            return candidate
    raise Rejected(f"service has no port {port!r}")


def _port_label(service_port: Mapping[str, Any]) -> str:
    """The port's name (an RFC 1123 label) or number: part of the backend's name."""
    name = service_port.get("name")
    if name:
        return validate.dns_label(name, "service port name")
    return str(validate.port_number(service_port.get("port"), "service port"))


def _endpoint_state(endpoint: Mapping[str, Any]) -> ServerState | None:
    conditions = endpoint.get("conditions") or {}
    ready = conditions.get("ready", True)  # nil means ready (API docs)
    serving = conditions.get("serving", ready)
    terminating = conditions.get("terminating", False)
    if ready and not terminating:
        return "ready"
    if serving and terminating:
        return "drain"
    return None


def _slice_servers(
    endpoint_slice: Object, port_name: str, allow_special: bool
) -> list[tuple[str, int, ServerState]]:
    """The servers one EndpointSlice lists for a port; raises for a malformed slice."""
    address_type = endpoint_slice.get("addressType")
    if address_type == "FQDN":
        return []  # names, not addresses: the edge has no resolver for them
    if address_type not in ("IPv4", "IPv6"):
        raise Rejected(f"addressType {address_type!r} is not IPv4, IPv6 or FQDN")
    port = None
    for candidate in endpoint_slice.get("ports") or []:
        name = candidate.get("name") or ""
        if name:
            validate.dns_label(name, "port name")
        if port is None and name == port_name and candidate.get("protocol", "TCP") == "TCP":
            port = candidate.get("port")
    number = validate.port_number(port, "endpoint port") if port is not None else None
    servers = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        state = _endpoint_state(endpoint)
        for address in endpoint.get("addresses") or []:
            ip = validate.ip_address(address, address_type, allow_special)
            if state is not None and number is not None:
                servers.append((ip, number, state))
    return servers


def _servers_from_slices(
    slices: Mapping[str, Object],
    namespace: str,
    port_name: str,
    allow_special: bool,
    problems: Problems,
) -> list[Server]:
    servers: dict[tuple[str, int], Server] = {}
    for name in sorted(slices):
        try:
            found = _slice_servers(slices[name], port_name, allow_special)
        except Exception as exc:
            problems[describe("EndpointSlice", (namespace, name))] = reason_of(exc)
            continue
        for address, port, state in found:
            current = servers.get((address, port))
            if current is None or (current.state == "drain" and state == "ready"):
                servers[(address, port)] = Server(address, port, state)
    return list(servers.values())


def _servers_from_endpoints(
    endpoints: Object, namespace: str, port_name: str, allow_special: bool, problems: Problems
) -> list[Server]:
    servers: dict[tuple[str, int], Server] = {}
    try:
        for subset in endpoints.get("subsets") or []:
            port = next(
                (
                    p.get("port")
                    for p in subset.get("ports") or []
                    if p.get("name", "") == port_name
                ),
                None,
            )
            for address in subset.get("addresses") or []:
                ip = validate.ip_address(address.get("ip"), None, allow_special)
                if port is not None:
                    number = validate.port_number(port, "endpoint port")
                    servers[(ip, number)] = Server(ip, number, "ready")
    except Exception as exc:
        name = str((endpoints.get("metadata") or {}).get("name"))
        problems[describe("Endpoints", (namespace, name))] = reason_of(exc)
        return []
    return list(servers.values())


def node_addresses(
    index: ClusterIndex, allow_special: bool, problems: Problems
) -> list[tuple[str, ServerState]]:
    """(InternalIP, state) of every ready Node; a malformed Node is a problem of its own."""
    nodes: list[tuple[str, ServerState]] = []
    for ident, node in index.all("Node"):
        try:
            status = node.get("status") or {}
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if conditions.get("Ready") != "True":
                continue
            address = next(
                (
                    a.get("address")
                    for a in status.get("addresses") or []
                    if a.get("type") == "InternalIP"
                ),
                None,
            )
            if address is None:
                continue
            ip = validate.ip_address(address, None, allow_special)
            deleting = (node.get("metadata") or {}).get("deletionTimestamp")
            unschedulable = (node.get("spec") or {}).get("unschedulable", False)
        except Exception as exc:
            problems[describe("Node", ident)] = reason_of(exc)
            continue
        state: ServerState = "drain" if deleting or unschedulable else "ready"
        nodes.append((ip, state))
    return nodes


def backend_servers(
    index: ClusterIndex,
    namespace: str,
    service_name: str,
    port: int | str,
    settings: CatalogSettings,
    problems: Problems,
    nodes: list[tuple[str, ServerState]] | None = None,
) -> tuple[str, tuple[Server, ...]]:
    """(port label, servers) of one Service port; raises :class:`Rejected`.

    Malformed EndpointSlices, Endpoints (and, in NodePort mode, Nodes given in
    ``nodes``) are left out and named in ``problems``; the others keep serving.
    """
    service = index.get("Service", namespace, service_name)
    if service is None:
        raise Rejected(f"service {namespace}/{service_name} does not exist")
    if (service.get("spec") or {}).get("type") == "ExternalName":
        raise Rejected(f"service {namespace}/{service_name} is of type ExternalName")
    service_port = _service_port(service, port)
    port_label = _port_label(service_port)
    allow_special = settings.allow_special_addresses
    servers: list[Server]
    if settings.mode == "nodeport":
        node_port = service_port.get("nodePort")
        if not node_port:
            raise Rejected(
                f"service {namespace}/{service_name} port {port} has no nodePort "
                "(NodePort mode needs a Service of type NodePort or LoadBalancer)"
            )
        number = validate.port_number(node_port, "nodePort")
        if nodes is None:
            nodes = node_addresses(index, allow_special, problems)
        servers = [Server(address, number, state) for address, state in nodes]
    else:
        slices = index.slices_by_service.get((namespace, service_name))
        port_name = str(service_port.get("name", ""))
        if slices:
            servers = _servers_from_slices(slices, namespace, port_name, allow_special, problems)
        else:
            endpoints = index.get("Endpoints", namespace, service_name)
            servers = (
                _servers_from_endpoints(endpoints, namespace, port_name, allow_special, problems)
                if endpoints
                else []
            )
    if len(servers) > settings.max_servers_per_backend:
        raise Rejected(
            f"service {namespace}/{service_name} has {len(servers)} endpoints, more than "
            f"catalog.max_servers_per_backend ({settings.max_servers_per_backend})"
        )
    servers.sort(key=lambda s: (s.address, s.port))
    return port_label, tuple(servers)


def backend_name(namespace: str, service: str, port_label: str) -> str:
    # '_' cannot occur in Kubernetes names, so the name is unambiguous.
    return f"be_{namespace}_{service}_{port_label}"


# --- options ------------------------------------------------------------------------


def _backend_options(values: Mapping[str, str]) -> BackendOptions:
    options = BackendOptions()
    if "balance" in values:
        options = replace(options, balance=validate.balance(values["balance"]))
    if "health-check-path" in values:
        check_path = validate.config_path(values["health-check-path"], "health-check-path")
        options = replace(options, health_check_path=check_path)
    if "health-check-interval" in values:
        interval = validate.duration(values["health-check-interval"], "health-check-interval")
        options = replace(options, health_check_interval=interval)
    if "timeout-connect" in values:
        connect = validate.duration(values["timeout-connect"], "timeout-connect")
        options = replace(options, timeout_connect=connect)
    if "timeout-server" in values:
        server = validate.duration(values["timeout-server"], "timeout-server")
        options = replace(options, timeout_server=server)
    return options


def _split_list(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


@dataclass(frozen=True)
class _RouteOptions:
    https_redirect: bool
    cache: CachePolicy | None
    bypass_paths: tuple[str, ...]


def _route_options(values: Mapping[str, str]) -> _RouteOptions:
    """Per-route options, from ConfigMap keys or ``breakwater.io/`` annotations alike."""
    https_redirect = validate.boolean(values.get("https-redirect", "false"), "https-redirect")
    cache_keys = ("cache-ttl", "cache-grace", "cache-strip-cookies", "cache-bypass-paths")
    if not validate.boolean(values.get("cache", "false"), "cache"):
        stray = [key for key in cache_keys if key in values]
        if stray:
            raise Rejected(f"{stray[0]} is set but cache is not true")
        return _RouteOptions(https_redirect, None, ())
    policy = CachePolicy(
        ttl=validate.seconds(values["cache-ttl"], "cache-ttl") if "cache-ttl" in values else None,
        grace=(
            validate.seconds(values["cache-grace"], "cache-grace")
            if "cache-grace" in values
            else None
        ),
        strip_cookies=validate.boolean(
            values.get("cache-strip-cookies", "false"), "cache-strip-cookies"
        ),
    )
    bypass = tuple(
        _normalise_prefix(validate.path(p))
        for p in _split_list(values.get("cache-bypass-paths", ""))
    )
    return _RouteOptions(https_redirect, policy, bypass)


def _with_bypass(routes: list[Route], bypass_paths: tuple[str, ...]) -> list[Route]:
    """Add, for each cached prefix route, uncached routes for the bypass paths under it."""
    extra: dict[tuple[str, str], Route] = {}
    for path in bypass_paths:
        covering = [
            r
            for r in routes
            if r.match == "prefix"
            and (r.path == "/" or path == r.path or path.startswith(r.path + "/"))
        ]
        if not covering:
            raise Rejected(f"cache-bypass-paths {path} is not under any path of this route")
        for route in covering:
            if route.path != path:
                extra.setdefault((route.host, path), replace(route, path=path, cache=None))
    return routes + list(extra.values())


# --- certificates -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def check_certificate(pem: str) -> str | None:
    """None if ``pem`` holds a certificate and its matching private key, else the reason.

    Python's ssl module loads private keys only from files, hence the private
    temporary file; the result depends only on ``pem``.
    """
    if "-----BEGIN CERTIFICATE-----" not in pem or "PRIVATE KEY-----" not in pem:
        return "tls.crt or tls.key holds no PEM certificate or private key"
    with tempfile.TemporaryDirectory(prefix="breakwater-cert-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path)
        except ssl.SSLError as exc:
            return f"certificate and key do not load together ({exc.reason or exc})"
    return None


def _certificate(index: ClusterIndex, namespace: str, secret_name: str) -> Certificate:
    validate.dns_subdomain(secret_name, "secret name")
    secret = index.get("Secret", namespace, secret_name)
    if secret is None:
        raise Rejected(f"TLS secret {namespace}/{secret_name} does not exist")
    if secret.get("type") != "kubernetes.io/tls":
        raise Rejected(f"secret {namespace}/{secret_name} is not of type kubernetes.io/tls")
    data = secret.get("data") or {}
    try:
        cert = base64.b64decode(data.get("tls.crt", ""), validate=True).decode("ascii")
        key = base64.b64decode(data.get("tls.key", ""), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Rejected(f"secret {namespace}/{secret_name}: tls.crt/tls.key undecodable") from exc
    pem = cert.strip() + "\n" + key.strip() + "\n"
    problem = check_certificate(pem)
    if problem:
        raise Rejected(f"secret {namespace}/{secret_name}: {problem}")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:8]
    return Certificate(
        f"{namespace}_{secret_name}_{digest}", pem, f"Secret {namespace}/{secret_name}"
    )


# --- routes -------------------------------------------------------------------------


@dataclass
class _Builder:
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
            rejections = problem_rejections(found)
            known = self.catalog.server_problems.get((namespace, service), ())
            self.catalog.server_problems[(namespace, service)] = tuple(
                sorted(set(known) | set(rejections), key=str)
            )
            for rejection in rejections:
                self._reject_once(rejection)
        if isinstance(computed, str):
            raise Rejected(computed)
        return computed

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


def problem_rejections(problems: Problems) -> tuple[Rejection, ...]:
    return tuple(Rejection(what, why) for what, why in sorted(problems.items()))


def _normalise_prefix(path: str) -> str:
    # Kubernetes Prefix matching ignores a trailing '/': "/foo/" serves "/foo".
    return path.rstrip("/") or "/"


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping (or absent: empty); a malformed object otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Rejected(f"{what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Rejected(f"{what} is not a list")
    return value


def default_class(index: ClusterIndex, settings: CatalogSettings) -> bool:
    """Whether our IngressClass is the cluster's default; raises for a malformed one."""
    ingress_class = index.get("IngressClass", "", settings.ingress_class)
    if ingress_class is None:
        return False
    metadata = _mapping(ingress_class.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    return bool(annotations.get(DEFAULT_CLASS_ANNOTATION) == "true")


def _ingress_is_ours(ingress: Object, settings: CatalogSettings, default: bool) -> bool:
    spec = _mapping(ingress.get("spec"), "spec")
    metadata = _mapping(ingress.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    class_name = spec.get("ingressClassName") or annotations.get(LEGACY_CLASS_ANNOTATION)
    if class_name:
        return bool(class_name == settings.ingress_class)
    return default


def _ingress_backend(
    builder: _Builder, namespace: str, backend: object, options: BackendOptions, owner: str
) -> str:
    service = _mapping(_mapping(backend, "backend").get("service"), "backend.service")
    if not service:
        raise Rejected("backend is not a service (resource backends are not supported)")
    port = _mapping(service.get("port"), "backend.service.port")
    return builder.backend(
        namespace, service.get("name"), port.get("name") or port.get("number"), options, owner
    )


def _ingress_routes(builder: _Builder, ident: tuple[str, str], ingress: Object) -> None:
    owner = describe("Ingress", ident)
    namespace = ident[0]
    spec = _mapping(ingress.get("spec"), "spec")
    metadata = _mapping(ingress.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    ours = {
        key[len(ANNOTATION_PREFIX) :]: str(value)
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_PREFIX)
    }
    unknown = sorted(set(ours) - set(INGRESS_ANNOTATIONS))
    if unknown:
        raise Rejected(f"unknown annotation {ANNOTATION_PREFIX}{unknown[0]}")
    options = _backend_options(ours)
    route_options = _route_options(ours)
    rules = _list(spec.get("rules"), "spec.rules")
    http_paths = [
        (rule, _list(_mapping(_mapping(rule, "a rule").get("http"), "http").get("paths"), "paths"))
        for rule in rules
    ]
    path_count = sum(len(paths) for _rule, paths in http_paths)
    bypass = len(rules) * len(route_options.bypass_paths)  # at most one per host and path
    builder.check_counts(len(rules), path_count, path_count + bypass)
    certificates = []
    for tls in _list(spec.get("tls"), "spec.tls"):
        for host in _list(_mapping(tls, "a tls entry").get("hosts"), "tls.hosts"):
            validate.hostname(host)
        if tls.get("secretName"):
            try:
                certificates.append(_certificate(builder.index, namespace, tls["secretName"]))
            except (Rejected, InvalidValue) as exc:
                # Documented: the routes stay, served over HTTP and with the edge's other
                # certificates; the object is listed with the reason.
                builder.reject(owner, f"TLS not served: {exc}")
    routes = []
    for rule, paths in http_paths:
        host = validate.hostname(rule["host"]) if rule.get("host") else "*"
        for http_path in paths:
            http_path = _mapping(http_path, "a path")
            path_type = http_path.get("pathType", "ImplementationSpecific")
            if path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
                raise Rejected(f"unknown pathType {path_type!r}")
            path = validate.path(http_path.get("path") or "/")
            match: MatchType = "exact" if path_type == "Exact" else "prefix"
            if match == "prefix":
                path = _normalise_prefix(path)
            name = _ingress_backend(builder, namespace, http_path.get("backend"), options, owner)
            routes.append(
                Route(
                    host,
                    path,
                    match,
                    name,
                    owner,
                    route_options.https_redirect,
                    route_options.cache,
                )
            )
    default = spec.get("defaultBackend")
    default_name = (
        _ingress_backend(builder, namespace, default, options, owner) if default else None
    )
    builder.add_routes(_with_bypass(routes, route_options.bypass_paths), owner)
    if default_name:
        if builder.catalog.default_backend not in (None, default_name):
            builder.reject(owner, "defaultBackend ignored: another Ingress already set one")
        else:
            builder.catalog.default_backend = default_name
    for certificate in certificates:
        builder.catalog.certificates.setdefault(certificate.name, certificate)


@dataclass(frozen=True)
class _RouteKeys:
    """The hosts, paths and options of a ConfigMap or a plain route, validated."""

    hosts: list[str]
    prefixes: list[str]
    exact: list[str]
    route_options: _RouteOptions
    backend_options: BackendOptions

    @classmethod
    def parse(cls, data: Mapping[str, str], builder: _Builder) -> _RouteKeys:
        if not data.get("hosts", "").strip():
            raise Rejected("key 'hosts' is required")
        hosts = _split_list(data["hosts"])
        prefixes = _split_list(data.get("paths", "/"))
        exact = _split_list(data.get("exact-paths", ""))
        route_options = _route_options(data)
        paths = len(prefixes) + len(exact)
        bypass = len(route_options.bypass_paths)
        builder.check_counts(len(hosts), paths, len(hosts) * (paths + bypass))
        return cls(
            hosts=[validate.hostname(host) for host in hosts],
            prefixes=[_normalise_prefix(validate.path(p)) for p in prefixes],
            exact=[validate.path(p) for p in exact],
            route_options=route_options,
            backend_options=_backend_options(
                {k: v for k, v in data.items() if k in _BACKEND_OPTION_KEYS}
            ),
        )

    def add_routes(self, builder: _Builder, backend: str, owner: str) -> None:
        wanted: list[tuple[MatchType, list[str]]] = [
            ("prefix", self.prefixes),
            ("exact", self.exact),
        ]
        options = self.route_options
        routes = [
            Route(host, path, match, backend, owner, options.https_redirect, options.cache)
            for host in self.hosts
            for match, paths in wanted
            for path in paths
        ]
        builder.add_routes(_with_bypass(routes, options.bypass_paths), owner)


def _string_data(data: object) -> dict[str, str]:
    """A ConfigMap's ``data``: a mapping of strings to strings, or a malformed object."""
    mapping = _mapping(data, "data")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise Rejected("data holds a value that is not a string")
    return dict(mapping)


def _configmap_routes(builder: _Builder, ident: tuple[str, str], configmap: Object) -> None:
    namespace, name = ident
    data = _string_data(configmap.get("data"))
    unknown = sorted(set(data) - set(CONFIGMAP_KEYS))
    if unknown:
        raise Rejected(f"unknown key {unknown[0]!r}")
    keys = _RouteKeys.parse(data, builder)
    service_name = data.get("service", name)
    port: object = data.get("port")
    if port is None:
        service = builder.index.get("Service", namespace, str(service_name))
        ports = _list(_mapping((service or {}).get("spec"), "spec").get("ports"), "spec.ports")
        first = _mapping(ports[0], "a port") if ports else {}
        port = (first.get("name") or first.get("port")) if ports else 0
    certificate = (
        _certificate(builder.index, namespace, data["tls-secret"])
        if data.get("tls-secret")
        else None
    )
    owner = describe("ConfigMap", ident)
    backend = builder.backend(namespace, service_name, port, keys.backend_options, owner)
    keys.add_routes(builder, backend, owner)
    if certificate:
        builder.catalog.certificates.setdefault(certificate.name, certificate)


def _plain_servers(entries: object, limit: int) -> tuple[Server, ...]:
    if not isinstance(entries, list):
        raise Rejected("key 'servers' is required: a list of {address, port}")
    if len(entries) > limit:
        raise Rejected(
            f"{len(entries)} servers, more than catalog.max_servers_per_backend ({limit})"
        )
    servers = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or set(entry) - {"address", "port", "state"}:
            raise Rejected("each server is {address, port, state}")
        state = entry.get("state", "ready")
        if state not in ("ready", "drain"):
            raise Rejected(f"server state {state!r} is not ready or drain")
        server = Server(
            validate.ip_address(entry.get("address")),
            validate.port_number(entry.get("port")),
            state,
        )
        servers[(server.address, server.port)] = server
    return tuple(sorted(servers.values(), key=lambda s: (s.address, s.port)))


def _plain_certificate(tls: object, name: str, owner: str) -> Certificate:
    if not isinstance(tls, Mapping) or not all(
        isinstance(tls.get(k), str) for k in ("certificate", "key")
    ):
        raise Rejected("tls is {certificate, key} in PEM")
    pem = tls["certificate"].strip() + "\n" + tls["key"].strip() + "\n"
    problem = check_certificate(pem)
    if problem:
        raise Rejected(f"tls: {problem}")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:8]
    return Certificate(f"route_{name}_{digest}", pem, owner)


def _plain_route(builder: _Builder, ident: tuple[str, str], route: Object) -> None:
    """A route of the plain schema (:mod:`breakwater.routes`): servers listed inline."""
    owner = describe(plain_routes.KIND, ident)
    name = validate.dns_label(ident[1], "route name")
    spec = _mapping(route.get("spec"), "spec")
    keys = _RouteKeys.parse(plain_routes.as_option_strings(spec), builder)
    servers = _plain_servers(spec.get("servers"), builder.settings.max_servers_per_backend)
    tls = spec.get("tls")
    certificate = _plain_certificate(tls, name, owner) if tls is not None else None
    backend = f"be_route_{name}"
    builder.catalog.backends[backend] = Backend(
        backend, "", name, "route", keys.backend_options, servers
    )
    keys.add_routes(builder, backend, owner)
    if certificate:
        builder.catalog.certificates.setdefault(certificate.name, certificate)


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
    metadata = _mapping(configmap.get("metadata"), "metadata")
    labels = _mapping(metadata.get("labels"), "metadata.labels")
    return bool(labels.get(settings.configmap_label) == settings.configmap_label_value)


def _route_sources(
    builder: _Builder, index: ClusterIndex, settings: CatalogSettings
) -> list[tuple[str, tuple[str, str], Object]]:
    """The objects that make routes, in the order they claim hosts and paths."""
    sources: list[tuple[str, tuple[str, str], Object]] = []
    try:
        default = default_class(index, settings)
    except Exception as exc:  # a malformed class is not the default, and is named
        builder.reject(describe("IngressClass", ("", settings.ingress_class)), reason_of(exc))
        default = False
    selectors: list[tuple[str, Any]] = [
        ("ConfigMap", lambda obj: _is_route_configmap(obj, settings)),
        ("Ingress", lambda obj: _ingress_is_ours(obj, settings, default)),
    ]
    for kind, selected in selectors:
        for ident, obj in index.all(kind):
            try:
                if selected(obj):
                    sources.append((kind, ident, obj))
            except Exception as exc:
                builder.reject(describe(kind, ident), reason_of(exc))
    sources.sort(key=_creation_order)
    # Plain routes come after every Kubernetes object: a clash goes to Kubernetes.
    sources.extend((plain_routes.KIND, *item) for item in index.all(plain_routes.KIND))
    return sources


_HANDLERS = {
    "Ingress": _ingress_routes,
    "ConfigMap": _configmap_routes,
    plain_routes.KIND: _plain_route,
}


def build_catalog(
    objects: Iterable[Object] | ClusterIndex, settings: CatalogSettings | None = None
) -> Catalog:
    """The routing model of a set of decoded objects.  Pure: same input, same output.

    Conflicts (two objects routing the same host and path) go to the older object
    (creationTimestamp, then namespace/name); the newer one is rejected whole.  Plain
    routes (:mod:`breakwater.routes`) come after every Kubernetes object, by name.
    Whatever goes wrong with one object -- a bad value, a malformed structure, a
    limit passed -- is that object's rejection, never the others'.
    """
    settings = settings or CatalogSettings()
    index = objects if isinstance(objects, ClusterIndex) else index_objects(objects)
    builder = _Builder(index, settings)
    for kind, ident, obj in _route_sources(builder, index, settings):
        try:
            _check_ident(kind, ident)
            _HANDLERS[kind](builder, ident, obj)
        except Exception as exc:
            builder.reject(describe(kind, ident), reason_of(exc))
    catalog = builder.catalog
    used = {route.backend for route in catalog.routes} | {catalog.default_backend}
    catalog.backends = {name: b for name, b in sorted(catalog.backends.items()) if name in used}
    catalog.routes.sort(key=lambda r: (r.host, r.path, r.match))
    return catalog


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
    used = {route.backend for route in routes} | {catalog.default_backend}
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
