"""The objects that make routes: Ingresses of our class, route ConfigMaps, plain routes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from breakwater import validate
from breakwater.catalog.builder import Builder, as_list, as_mapping
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    Canary,
    CatalogSettings,
    Certificate,
    MatchType,
    Rejected,
    Route,
    RouteFeatures,
    Server,
    describe,
)
from breakwater.catalog.nginx import Translation, translate
from breakwater.catalog.options import (
    ANNOTATION_PREFIX,
    CONFIGMAP_KEYS,
    INGRESS_ANNOTATIONS,
    OPTION,
    CanarySpec,
    RouteOptions,
    normalise_prefix,
    parse_backend_options,
    parse_route_options,
    plain_route_strings,
    prefix_rewrite,
    split_list,
    with_bypass,
)
from breakwater.catalog.tls import plain_certificate, referenced_ca, secret_certificate
from breakwater.cluster import plain_routes
from breakwater.cluster.index import (
    ClusterIndex,
    Object,
)
from breakwater.validate import InvalidValue

LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
FEATURELESS = RouteFeatures()


DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def default_class(index: ClusterIndex, settings: CatalogSettings) -> bool:
    """Whether our IngressClass is the cluster's default; raises for a malformed one."""
    ingress_class = index.get("IngressClass", "", settings.ingress_class)
    if ingress_class is None:
        return False
    metadata = as_mapping(ingress_class.get("metadata"), "metadata")
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    return bool(annotations.get(DEFAULT_CLASS_ANNOTATION) == "true")


def _class_name(ingress: Object) -> object:
    spec = as_mapping(ingress.get("spec"), "spec")
    metadata = as_mapping(ingress.get("metadata"), "metadata")
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    return spec.get("ingressClassName") or annotations.get(LEGACY_CLASS_ANNOTATION)


def _nginx_class(class_name: object, settings: CatalogSettings) -> bool:
    return settings.ingress_nginx_compat and class_name in settings.ingress_nginx_classes


def ingress_is_ours(ingress: Object, settings: CatalogSettings, default: bool) -> bool:
    class_name = _class_name(ingress)
    if class_name:
        return bool(class_name == settings.ingress_class or _nginx_class(class_name, settings))
    return default


# Error pages from a ConfigMap: each small enough for HAProxy's buffer (a response
# HAProxy makes must fit in tune.bufsize, 16 KiB, with its headers), a few at most.
MAX_ERROR_PAGE = 12 * 1024
MAX_ERROR_PAGES = 32


def _error_pages(builder: Builder, namespace: str, name: str) -> tuple[tuple[int, str], ...]:
    """The pages of the ConfigMap ``name``: keys are statuses 400 to 599."""
    configmap = builder.read("ConfigMap", namespace, name)
    what = f"error-pages configmap {namespace}/{name}"
    if configmap is None:
        raise Rejected(f"{what} does not exist")
    data = _string_data(configmap.get("data"))
    if not data or len(data) > MAX_ERROR_PAGES:
        raise Rejected(f"{what} holds no page or more than {MAX_ERROR_PAGES}")
    pages = []
    for key, body in sorted(data.items()):
        if not (len(key) == 3 and key.isdigit() and 400 <= int(key) <= 599):
            raise Rejected(f"{what}: key {validate.show(key)} is not a status from 400 to 599")
        if len(body.encode()) > MAX_ERROR_PAGE:
            raise Rejected(f"{what}: page {key} is larger than {MAX_ERROR_PAGE // 1024} KiB")
        pages.append((int(key), body))
    return tuple(pages)


def _object_options(
    builder: Builder, namespace: str | None, values: Mapping[str, str], paths: list[str]
) -> tuple[BackendOptions, RouteOptions]:
    """An object's backend options (route features included) and route options.

    ``namespace``: the object's, where the references it makes (``backend-ca``,
    ``error-pages``) are read; None for a plain route, which may make none.
    """
    resolve = (lambda ref: referenced_ca(builder, namespace, ref)) if namespace else None
    options = parse_backend_options(values, resolve)
    route_options = parse_route_options(values)
    features = route_options.features
    if features is not None:
        features = prefix_rewrite(features, paths)
        if route_options.error_pages_from:
            if namespace is None:
                raise Rejected("error-pages names a ConfigMap, which a plain route may not")
            pages = _error_pages(builder, namespace, route_options.error_pages_from)
            features = replace(features, error_pages=pages)
        options = replace(options, features=features)
    return options, route_options


def _first_port(builder: Builder, namespace: str, service_name: str) -> int:
    """A Service's first port, by number: its name, a Service port name (an RFC 1123
    label), may be longer than the port names a key takes (IANA, 15 characters)."""
    service = builder.read("Service", namespace, service_name)
    if service is None:
        raise Rejected(f"service {namespace}/{service_name} does not exist")
    ports = as_list(as_mapping(service.get("spec"), "spec").get("ports"), "spec.ports")
    if not ports:
        raise Rejected(f"service {namespace}/{service_name} has no port")
    return validate.port_number(as_mapping(ports[0], "a port").get("port"))


def _canary(
    builder: Builder, namespace: str | None, spec: CanarySpec | None, owner: str
) -> Canary | None:
    """The backend of a canary Service and how requests are sent to it."""
    if spec is None:
        return None
    if namespace is None:
        raise Rejected("canary-service names a Service, which a plain route may not")
    port = spec.port if spec.port is not None else _first_port(builder, namespace, spec.service)
    name = builder.backend(namespace, spec.service, port, BackendOptions(), owner)
    return Canary(name, spec.weight, spec.header, spec.header_value, spec.cookie)


def _ingress_backend(
    builder: Builder, namespace: str, backend: object, options: BackendOptions, owner: str
) -> str:
    """The backend an Ingress backend names, checked as Kubernetes' validateIngressBackend."""
    backend = as_mapping(backend, "backend")
    service = as_mapping(backend.get("service"), "backend.service")
    if backend.get("resource") is not None:
        if service:
            raise Rejected("backend sets both a service and a resource")
        raise Rejected("backend is not a service (resource backends are not supported)")
    if not service:
        raise Rejected("backend names no service")
    port = _backend_port(as_mapping(service.get("port"), "backend.service.port"))
    return builder.backend(namespace, service.get("name"), port, options, owner)


def _backend_port(port: Mapping[str, object]) -> int | str:
    """A ServiceBackendPort: a port name (IANA service name) or a number, never both."""
    name, number = port.get("name"), port.get("number")
    named = name is not None and name != ""
    numbered = number is not None and number != 0
    if named and numbered:
        raise Rejected("backend.service.port sets both a name and a number")
    if named:
        return validate.port_name(name, "backend.service.port.name")
    if numbered:
        return validate.port_number(number, "backend.service.port.number")
    raise Rejected("backend.service.port needs a name or a number")


def _annotation_values(metadata: Mapping[str, object]) -> dict[str, str]:
    """The Ingress's ``breakwater.io/`` annotations, by option key; an unknown one rejects."""
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    ours = {}
    for key, value in annotations.items():
        if key.startswith(ANNOTATION_PREFIX):
            if not isinstance(value, str):  # map[string]string to Kubernetes
                raise Rejected(f"annotation {key} {validate.show(value)} is not a string")
            ours[key[len(ANNOTATION_PREFIX) :]] = value
    unknown = sorted(set(ours) - set(INGRESS_ANNOTATIONS))
    if unknown:
        raise Rejected(f"unknown annotation {ANNOTATION_PREFIX}{unknown[0]}")
    return ours


def _ingress_certificates(
    builder: Builder, namespace: str, spec: Mapping[str, object], owner: str
) -> list[Certificate]:
    certificates = []
    for tls in as_list(spec.get("tls"), "spec.tls"):
        for host in as_list(as_mapping(tls, "a tls entry").get("hosts"), "tls.hosts"):
            validate.tls_host(host)
        if tls.get("secretName"):
            try:
                certificates.append(secret_certificate(builder, namespace, tls["secretName"]))
            except (Rejected, InvalidValue) as exc:
                # Documented: the routes stay, served over HTTP and with the edge's other
                # certificates; the object is listed with the reason.
                builder.reject(owner, f"TLS not served: {exc}")
    return certificates


def _ingress_path(path: object, path_type: str) -> str:
    """An Ingress path, as Kubernetes' validateHTTPIngressPath: Exact and Prefix need one
    (no '//', '/./', '/../', '%2f', no '/.' or '/..' last); ImplementationSpecific may
    have none (every path: a prefix '/')."""
    if path_type != "ImplementationSpecific":
        if path is None:
            raise Rejected(f"path is required for pathType {path_type}")
        return validate.matched_path(path)
    return "/" if path is None or path == "" else validate.path(path)


_REGEX_CHARS = re.compile(r"[.^$*+?()\[\]{}|\\]")


def literal_prefix(pattern: str) -> str:
    """The path prefix every path an ingress-nginx regex path matches starts with: its
    text up to the first regex character, back to a segment boundary unless the regex
    goes on with one (``/something(/|$)(.*)`` -> ``/something``)."""
    found = _REGEX_CHARS.search(pattern)
    if found is None:
        return normalise_prefix(pattern)
    literal, rest = pattern[: found.start()], pattern[found.start() :]
    if not (literal.endswith("/") or rest.startswith(("(/|$)", "(/", "$", "/"))):
        literal = literal[: literal.rfind("/") + 1]
    return normalise_prefix(literal or "/")


def _regex_route_path(path: object) -> str:
    """The route path of an ingress-nginx regex path: its literal prefix."""
    return validate.matched_path(literal_prefix(validate.regex(path or "/", "path")))


def _regex_paths(http_paths: list[tuple[Any, list[Any]]]) -> list[str]:
    """An ingress-nginx Ingress's paths as the regexes its use-regex makes them (Exact
    paths are not), checked to be the safe subset, longest first as ingress-nginx
    orders its locations."""
    patterns = set()
    for _rule, paths in http_paths:
        for http_path in paths:
            http_path = as_mapping(http_path, "a path")
            if http_path.get("pathType") != "Exact":
                patterns.add(validate.regex(http_path.get("path") or "/", "path"))
    return sorted(patterns, key=lambda p: (-len(p), p))


def _ingress_path_routes(
    builder: Builder,
    namespace: str,
    http_paths: list[tuple[Any, list[Any]]],
    options: BackendOptions,
    route_options: RouteOptions,
    owner: str,
    canary: Canary | None,
    regex: bool = False,
    redirect_hosts: frozenset[str] = frozenset(),
) -> list[Route]:
    """``regex``: the paths are ingress-nginx regexes (use-regex), routed by their
    literal prefix; ``redirect_hosts``: hosts redirected to HTTPS whatever the options
    say (ingress-nginx's ssl-redirect default for hosts with TLS)."""
    routes = []
    for rule, paths in http_paths:
        host = rule.get("host")
        # No host (absent or empty) is every host; a rule's host is checked as Kubernetes
        # does, upper case refused.
        host = "*" if host is None or host == "" else validate.hostname(host, fold_case=False)
        for http_path in paths:
            http_path = as_mapping(http_path, "a path")
            path_type = http_path.get("pathType")
            if path_type is None:
                raise Rejected("pathType is required")
            if path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
                raise Rejected(f"unknown pathType {validate.show(path_type)}")
            match: MatchType = "exact" if path_type == "Exact" else "prefix"
            if regex and match == "prefix":
                path = _regex_route_path(http_path.get("path"))
            else:
                path = _ingress_path(http_path.get("path"), path_type)
            if match == "prefix":
                path = normalise_prefix(path)
            name = _ingress_backend(builder, namespace, http_path.get("backend"), options, owner)
            routes.append(
                Route(
                    host,
                    path,
                    match,
                    name,
                    owner,
                    route_options.https_redirect or host in redirect_hosts,
                    route_options.cache,
                    canary,
                )
            )
    return routes


def _nginx(builder: Builder, ingress: Object, namespace: str) -> Translation | None:
    """The translation of an ingress-nginx Ingress's annotations (None: not one)."""
    if not _nginx_class(_class_name(ingress), builder.settings):
        return None
    metadata = as_mapping(ingress.get("metadata"), "metadata")
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    return translate(annotations, namespace=namespace)


def _tls_hosts(spec: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(
        str(host).lower()
        for tls in as_list(spec.get("tls"), "spec.tls")
        for host in as_list(as_mapping(tls, "a tls entry").get("hosts"), "tls.hosts")
    )


def _not_plain(http_path: object) -> bool:
    path = as_mapping(http_path, "a path")
    try:
        _ingress_path(path.get("path"), str(path.get("pathType")))
    except InvalidValue:  # Rejected is one
        return True
    return False


_CANARY_KEYS = ("canary-weight", "canary-header", "canary-header-value", "canary-cookie")


def ingress_routes(builder: Builder, ident: tuple[str, str], ingress: Object) -> None:
    owner = describe("Ingress", ident)
    namespace = ident[0]
    spec = as_mapping(ingress.get("spec"), "spec")
    values = _annotation_values(as_mapping(ingress.get("metadata"), "metadata"))
    nginx = _nginx(builder, ingress, namespace)
    redirect_hosts: frozenset[str] = frozenset()
    canary_of: dict[str, str] = {}
    if nginx is not None:
        # Breakwater's own annotations win over translated ones.
        values = {**nginx.values, **values}
        if nginx.canary:
            canary_of = {key: values.pop(key) for key in _CANARY_KEYS if key in values}
        elif "https-redirect" not in values:
            redirect_hosts = _tls_hosts(spec)  # ssl-redirect's default: hosts with TLS
    rules = as_list(spec.get("rules"), "spec.rules")
    default = spec.get("defaultBackend")
    if not rules and default is None:
        raise Rejected("neither rules nor defaultBackend is set")
    http_paths = [
        (
            rule,
            as_list(
                as_mapping(as_mapping(rule, "a rule").get("http"), "http").get("paths"), "paths"
            ),
        )
        for rule in rules
    ]
    for rule, paths in http_paths:
        if not paths and rule.get("http") is not None:
            raise Rejected("a rule's http.paths is empty")
    path_count = sum(len(paths) for _rule, paths in http_paths)
    builder.check_counts(len(rules), path_count, path_count)
    regex = nginx is not None and nginx.use_regex and not nginx.canary
    if nginx is not None and nginx.canary:
        # A canary's paths are its main Ingress's, regexes if those are: a path that is
        # not a plain path is taken as one.
        regex = any(_not_plain(p) for _rule, paths in http_paths for p in paths)
    patterns = _regex_paths(http_paths) if regex else []
    paths = [
        literal_prefix(p) if regex else normalise_prefix(str(p))
        for p in (
            patterns
            or [
                as_mapping(p, "a path").get("path") or "/"
                for _rule, rule_paths in http_paths
                for p in rule_paths
            ]
        )
    ]
    options, route_options = _object_options(builder, namespace, values, paths)
    if nginx is not None and nginx.rewrite_target and patterns:
        target = OPTION["rewrite-target"].value(nginx.rewrite_target)
        rewrite = tuple((validate.regex(f"(?i)^{p}", "path"), target) for p in patterns)
        options = replace(
            options, features=replace(options.features or FEATURELESS, rewrite=rewrite)
        )
    bypass = len(rules) * len(route_options.bypass_paths)  # at most one per host and path
    builder.check_counts(len(rules), path_count, path_count + bypass)
    certificates = _ingress_certificates(builder, namespace, spec, owner)
    canary = _canary(builder, namespace, route_options.canary, owner)
    routes = _ingress_path_routes(
        builder,
        namespace,
        http_paths,
        options,
        route_options,
        owner,
        canary,
        regex,
        redirect_hosts,
    )
    if nginx is not None and nginx.canary:
        # The canary of another Ingress's routes: those routes send it a share.
        claim = parse_route_options({"canary-service": "canary", **canary_of}).canary
        assert claim is not None
        builder.claim_canary(
            routes, Canary("", claim.weight, claim.header, claim.header_value, claim.cookie), owner
        )
    else:
        default_name = (
            _ingress_backend(builder, namespace, default, options, owner)
            if default is not None
            else None
        )
        builder.add_routes(with_bypass(routes, route_options.bypass_paths), owner)
        if default_name:
            builder.set_default_backend(default_name, owner)
        for certificate in certificates:
            builder.add_certificate(certificate)
    for name, reason in nginx.ignored if nginx is not None else ():
        builder.ignore(owner, f"annotation {name} ignored: {reason}")


@dataclass(frozen=True)
class _RouteKeys:
    """The hosts, paths and options of a ConfigMap or a plain route, validated."""

    hosts: list[str]
    prefixes: list[str]
    exact: list[str]
    route_options: RouteOptions
    backend_options: BackendOptions

    @classmethod
    def parse(cls, data: Mapping[str, str], builder: Builder, namespace: str | None) -> _RouteKeys:
        """``namespace``: the object's (None for a plain route), see :func:`_object_options`."""
        if not data.get("hosts", "").strip():
            raise Rejected("key 'hosts' is required")
        hosts = split_list(data["hosts"])
        prefixes = split_list(data.get("paths", "/"))
        exact = split_list(data.get("exact-paths", ""))
        route_options = parse_route_options(data)
        paths = len(prefixes) + len(exact)
        bypass = len(route_options.bypass_paths)
        builder.check_counts(len(hosts), paths, len(hosts) * (paths + bypass))
        prefix_paths = list(OPTION["paths"].value(data.get("paths", "/")))
        exact_paths = list(OPTION["exact-paths"].value(data.get("exact-paths", "")))
        backend_options, route_options = _object_options(
            builder, namespace, data, prefix_paths + exact_paths
        )
        return cls(
            hosts=list(OPTION["hosts"].value(data["hosts"])),
            prefixes=prefix_paths,
            exact=exact_paths,
            route_options=route_options,
            backend_options=backend_options,
        )

    def add_routes(
        self, builder: Builder, backend: str, owner: str, canary: Canary | None = None
    ) -> None:
        wanted: list[tuple[MatchType, list[str]]] = [
            ("prefix", self.prefixes),
            ("exact", self.exact),
        ]
        options = self.route_options
        routes = [
            Route(host, path, match, backend, owner, options.https_redirect, options.cache, canary)
            for host in self.hosts
            for match, paths in wanted
            for path in paths
        ]
        builder.add_routes(with_bypass(routes, options.bypass_paths), owner)


def _string_data(data: object) -> dict[str, str]:
    """A ConfigMap's ``data``: a mapping of strings to strings, or a malformed object."""
    mapping = as_mapping(data, "data")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise Rejected("data holds a value that is not a string")
    return dict(mapping)


def configmap_routes(builder: Builder, ident: tuple[str, str], configmap: Object) -> None:
    namespace, name = ident
    data = _string_data(configmap.get("data"))
    unknown = sorted(set(data) - set(CONFIGMAP_KEYS))
    if unknown:
        raise Rejected(f"unknown key {unknown[0]!r}")
    keys = _RouteKeys.parse(data, builder, namespace)
    certificate = (
        secret_certificate(builder, namespace, OPTION["tls-secret"].value(data["tls-secret"]))
        if data.get("tls-secret")
        else None
    )
    owner = describe("ConfigMap", ident)
    service_name = OPTION["service"].value(data.get("service", name))
    port: object = data.get("port")
    if port is None:
        port = _first_port(builder, namespace, service_name)
    port = OPTION["port"].value(port)
    backend = builder.backend(namespace, service_name, port, keys.backend_options, owner)
    canary = _canary(builder, namespace, keys.route_options.canary, owner)
    keys.add_routes(builder, backend, owner, canary)
    if certificate:
        builder.add_certificate(certificate)


def _plain_servers(entries: object, limit: int) -> tuple[Server, ...]:
    if not isinstance(entries, list):
        raise Rejected("key 'servers' is required: a list of {address, port}")
    if len(entries) > limit:
        raise Rejected(
            f"{len(entries)} servers, more than catalog.max_servers_per_backend ({limit})"
        )
    servers: tuple[Server, ...] = OPTION["servers"].value(entries)
    return servers


def plain_route(builder: Builder, ident: tuple[str, str], route: Object) -> None:
    """A plain route (:mod:`breakwater.cluster.plain_routes`): its servers listed inline."""
    owner = describe(plain_routes.KIND, ident)
    name = validate.dns_label(ident[1], "route name")
    spec = as_mapping(route.get("spec"), "spec")
    keys = _RouteKeys.parse(plain_route_strings(spec), builder, None)
    servers = _plain_servers(spec.get("servers"), builder.settings.max_servers_per_backend)
    tls = spec.get("tls")
    certificate = plain_certificate(tls, name, owner) if tls is not None else None
    backend = f"be_route_{name}"
    builder.add_backend(Backend(backend, "", name, "route", keys.backend_options, servers))
    keys.add_routes(builder, backend, owner)
    if certificate:
        builder.add_certificate(certificate)
