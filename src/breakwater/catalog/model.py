"""The routing model: routes, backends and their servers, certificates, rejections, and
the settings that shape it.  Plain frozen data; the rest of the catalog builds it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from breakwater.validate import InvalidValue

ServerState = Literal["ready", "drain"]


MatchType = Literal["exact", "prefix"]


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
    # Secrets (for TLS) / route ConfigMaps are read only from these namespaces; empty:
    # every namespace.  The edge then lists, watches and may read only those prefixes
    # (cluster.keys.read_resources, and the etcd role of breakwater.edge.etcd_access).
    secret_namespaces: tuple[str, ...] = ()
    configmap_namespaces: tuple[str, ...] = ()
    # ingress-nginx's Ingresses (docs/traffic.md): with compat on, Ingresses of these
    # classes are ours too, their nginx.ingress.kubernetes.io/ annotations translated.
    ingress_nginx_compat: bool = False
    ingress_nginx_classes: tuple[str, ...] = ("nginx",)
    # The Gateway API (docs/gateway-api.md): GatewayClasses whose spec.controllerName
    # is this one are ours, with their Gateways and the HTTPRoutes attached to them.
    gateway_api: bool = True
    gateway_controller_name: str = "breakwater.io/edge"
    # The addresses clients reach the edge's Gateways on (its VIPs): each Gateway's
    # status.addresses, as reported.
    gateway_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Server:
    address: str
    port: int
    state: ServerState

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


BackendProtocol = Literal["http", "h2", "grpc", "https", "grpcs"]


@dataclass(frozen=True, slots=True)
class StickyCookie:
    """Session affinity by a cookie HAProxy inserts (docs/traffic.md)."""

    name: str
    ttl: str | None = None  # an HAProxy duration: the cookie's maxlife
    secure: bool = False
    httponly: bool = True


@dataclass(frozen=True, slots=True)
class Cors:
    """Cross-origin resource sharing answered by the edge (ingress-nginx's defaults)."""

    origins: tuple[str, ...] = ("*",)
    methods: tuple[str, ...] = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
    headers: tuple[str, ...] = (
        "DNT",
        "Keep-Alive",
        "User-Agent",
        "X-Requested-With",
        "If-Modified-Since",
        "Cache-Control",
        "Content-Type",
        "Range",
        "Authorization",
    )
    expose_headers: tuple[str, ...] = ()
    credentials: bool = True
    max_age: int = 1728000


@dataclass(frozen=True, slots=True)
class Redirect:
    """A Gateway API RequestRedirect: what is not set comes from the request."""

    code: int = 302
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    port: int | None = None
    path: str | None = None  # ReplaceFullPath
    prefix: tuple[str, str] | None = None  # ReplacePrefixMatch: (matched prefix, new)
    # The listener ports of the route's parents, for a redirect that keeps the
    # request's scheme (the spec's default port); None: the scheme's well-known port.
    http_port: int | None = None
    https_port: int | None = None


@dataclass(frozen=True, slots=True)
class RouteFeatures:
    """What happens to the requests of one object's routes (docs/traffic.md).  An
    object with any gets its own backend section for its Service port, holding these
    rules; plain routes never meet them."""

    rate_limit_rps: int | None = None
    rate_limit_connections: int | None = None
    max_body_size: int | None = None  # bytes
    allow_sources: tuple[str, ...] = ()  # CIDRs
    deny_sources: tuple[str, ...] = ()
    hsts: str | None = None  # the Strict-Transport-Security value
    redirect_to: str | None = None
    redirect_code: int = 302
    app_root: str | None = None
    # (regex on the path, replacement): HAProxy's replace-path; the first that matches.
    rewrite: tuple[tuple[str, str], ...] = ()
    # (status, HTML body): answered for HAProxy's errors and the servers' alike.
    error_pages: tuple[tuple[int, str], ...] = ()
    cors: Cors | None = None
    # Gateway API filters: (set | add | remove, header name, value) in that order.
    request_headers: tuple[tuple[str, str, str], ...] = ()
    response_headers: tuple[tuple[str, str, str], ...] = ()
    set_host: str | None = None  # URLRewrite hostname
    set_path: str | None = None  # URLRewrite ReplaceFullPath
    redirect: Redirect | None = None  # RequestRedirect
    # Gateway API timeouts and retry: the section's own, over the Service port's.
    timeout: str | None = None  # an HAProxy duration: timeout server
    retries: int | None = None
    retry_on: tuple[str, ...] = ()

    def digest(self) -> str:
        """A short name for this set of features, the same in every process."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class BackendOptions:
    balance: str = "roundrobin"
    health_check_path: str | None = None
    health_check_interval: str = "2s"
    timeout_connect: str | None = None
    timeout_server: str | None = None
    timeout_tunnel: str | None = None
    timeout_queue: str | None = None
    retries: int | None = None
    retry_on: tuple[str, ...] = ()
    protocol: BackendProtocol = "http"
    # TLS to the servers: the CA bundle (PEM) that verifies them (None: not verified,
    # as ingress-nginx), and the SNI (None: the request's Host).
    ca_pem: str | None = None
    sni: str | None = None
    proxy_protocol: Literal["v1", "v2"] | None = None
    sticky: StickyCookie | None = None
    # The object's route features (None: a plain backend section).  Not a setting of
    # the Service port: sections with other features carry the same servers.
    features: RouteFeatures | None = None

    def service_part(self) -> BackendOptions:
        """These options without the route features: what every object that routes to
        the Service port must agree on."""
        return self if self.features is None else replace(self, features=None)

    @property
    def tls(self) -> bool:
        return self.protocol in ("https", "grpcs")

    @property
    def h2(self) -> bool:
        return self.protocol in ("h2", "grpc", "grpcs")


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
    canary: Canary | None = None
    # Gateway API: backends sharing the route's requests by weight (the route's own
    # backend is the last of them).
    split: Split | None = None
    # Gateway API: alternatives tried in order before the route itself, each when its
    # conditions hold (docs/gateway-api.md); the route is what is left.
    chain: tuple[tuple[Conditions, Route], ...] = ()

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends the route sends requests to: its own, its canary's, its split's
        and its alternatives'."""
        names = [self.backend]
        if self.canary is not None:
            names.append(self.canary.backend)
        if self.split is not None:
            names += [name for name, _weight in self.split.backends]
        for _conditions, alternative in self.chain:
            names += alternative.backends
        return tuple(dict.fromkeys(names))

    def key(self) -> str | None:
        """The short name the route map's sixth field carries: of its chain, split or
        canary (a route has one at most), which the frontend's rules test."""
        if self.chain:
            return "c" + hashlib.sha256(repr(self.chain).encode()).hexdigest()[:10]
        if self.split is not None:
            return self.split.key()
        return self.canary.key() if self.canary is not None else None


@dataclass(frozen=True, slots=True)
class Split:
    """Backends sharing requests by weight (Gateway API backendRefs): each weight > 0."""

    backends: tuple[tuple[str, int], ...]

    def key(self) -> str:
        return "w" + hashlib.sha256(repr(self).encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a Gateway API match asks of a request besides its host and path prefix."""

    method: str | None = None
    # (lower-case name, "exact" | "regex", value): header values; query parameters.
    headers: tuple[tuple[str, str, str], ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()
    path_regex: str | None = None  # a RegularExpression path (its prefix is the route's)
    scheme: Literal["http", "https"] | None = None  # the route's listeners take only it

    def __bool__(self) -> bool:
        return bool(self.method or self.headers or self.query or self.path_regex or self.scheme)


@dataclass(frozen=True, slots=True)
class Canary:
    """A share of a route's requests sent to another backend (docs/traffic.md)."""

    backend: str
    weight: int = 0  # percent of the requests neither the header nor the cookie decides
    header: str | None = None  # lower case
    header_value: str | None = None  # None: "always" / "never"
    cookie: str | None = None

    def key(self) -> str:
        """The short name the route map carries and the frontend's rules test."""
        return "k" + hashlib.sha256(repr(self).encode()).hexdigest()[:10]


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
    # What objects asked for that is not done, the object serving all the same (an
    # ingress-nginx annotation not translated, a snippet never executed): sorted.
    ignored: list[Rejection] = field(default_factory=list)
    # The Gateway API's status conditions, per GatewayClass, Gateway (and listener) and
    # HTTPRoute (and parent): reported, never written (catalog.gateway).
    gateway: dict[str, Any] = field(default_factory=dict)
    # (namespace, service) -> [(backend, service port)]: which backends to recompute
    # when only that Service's EndpointSlices or Endpoints change (refresh_servers).
    # Every Service whose servers were computed, routed or not; each list in no order.
    server_refs: dict[tuple[str, str], list[tuple[str, int | str]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # (namespace, service) -> the EndpointSlices/Endpoints of it that were rejected.
    server_problems: dict[tuple[str, str], tuple[Rejection, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Services whose servers were refused (a limit, a malformed Service).
    servers_rejected: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)
    # (namespace, service, port) -> servers and the objects they came from (see
    # catalog.builder.ServersEntry): what the next build may reuse.
    server_entries: dict[tuple[str, str, int | str], Any] = field(
        default_factory=dict, repr=False, compare=False
    )
    # (kind, (namespace, name)) -> what building that object did (catalog.builder.Trace):
    # what the next build may replay.
    traces: dict[tuple[str, tuple[str, str]], Any] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Where the build ended (catalog.builder.BuildState): what the next build starts
    # from when objects were only added.
    build_state: Any = field(default=None, repr=False, compare=False)

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
            "ignored": [_plain(item) for item in self.ignored],
            **({"gateway_api": self.gateway} if self.gateway else {}),
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


class Rejected(InvalidValue):
    """Raised inside the catalog to reject one object; carries the reason."""


def describe(kind: str, ident: tuple[str, str]) -> str:
    namespace, name = ident
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


Problems = dict[str, str]
"""Rejected EndpointSlices, Endpoints or Nodes met while computing servers: what -> why."""


def problem_rejections(problems: Problems) -> tuple[Rejection, ...]:
    return tuple(Rejection(what, why) for what, why in sorted(problems.items()))
