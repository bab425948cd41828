"""The objects that make routes: Ingresses of our class, route ConfigMaps, plain routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from breakwater import validate
from breakwater.catalog.builder import Builder, as_list, as_mapping
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    CatalogSettings,
    Certificate,
    MatchType,
    Rejected,
    Route,
    Server,
    describe,
)
from breakwater.catalog.options import (
    ANNOTATION_PREFIX,
    CONFIGMAP_KEYS,
    INGRESS_ANNOTATIONS,
    OPTION,
    RouteOptions,
    normalise_prefix,
    parse_backend_options,
    parse_route_options,
    plain_route_strings,
    split_list,
    with_bypass,
)
from breakwater.catalog.tls import plain_certificate, secret_certificate
from breakwater.cluster import plain_routes
from breakwater.cluster.index import (
    ClusterIndex,
    Object,
)
from breakwater.validate import InvalidValue

LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


def default_class(index: ClusterIndex, settings: CatalogSettings) -> bool:
    """Whether our IngressClass is the cluster's default; raises for a malformed one."""
    ingress_class = index.get("IngressClass", "", settings.ingress_class)
    if ingress_class is None:
        return False
    metadata = as_mapping(ingress_class.get("metadata"), "metadata")
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    return bool(annotations.get(DEFAULT_CLASS_ANNOTATION) == "true")


def ingress_is_ours(ingress: Object, settings: CatalogSettings, default: bool) -> bool:
    spec = as_mapping(ingress.get("spec"), "spec")
    metadata = as_mapping(ingress.get("metadata"), "metadata")
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    class_name = spec.get("ingressClassName") or annotations.get(LEGACY_CLASS_ANNOTATION)
    if class_name:
        return bool(class_name == settings.ingress_class)
    return default


def _ingress_backend(
    builder: Builder, namespace: str, backend: object, options: BackendOptions, owner: str
) -> str:
    service = as_mapping(as_mapping(backend, "backend").get("service"), "backend.service")
    if not service:
        raise Rejected("backend is not a service (resource backends are not supported)")
    port = as_mapping(service.get("port"), "backend.service.port")
    return builder.backend(
        namespace, service.get("name"), port.get("name") or port.get("number"), options, owner
    )


def _annotation_values(metadata: Mapping[str, object]) -> dict[str, str]:
    """The Ingress's ``breakwater.io/`` annotations, by option key; an unknown one rejects."""
    annotations = as_mapping(metadata.get("annotations"), "metadata.annotations")
    ours = {
        key[len(ANNOTATION_PREFIX) :]: str(value)
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_PREFIX)
    }
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
            validate.hostname(host)
        if tls.get("secretName"):
            try:
                certificates.append(secret_certificate(builder.index, namespace, tls["secretName"]))
            except (Rejected, InvalidValue) as exc:
                # Documented: the routes stay, served over HTTP and with the edge's other
                # certificates; the object is listed with the reason.
                builder.reject(owner, f"TLS not served: {exc}")
    return certificates


def _ingress_path_routes(
    builder: Builder,
    namespace: str,
    http_paths: list[tuple[Any, list[Any]]],
    options: BackendOptions,
    route_options: RouteOptions,
    owner: str,
) -> list[Route]:
    routes = []
    for rule, paths in http_paths:
        host = validate.hostname(rule["host"]) if rule.get("host") else "*"
        for http_path in paths:
            http_path = as_mapping(http_path, "a path")
            path_type = http_path.get("pathType", "ImplementationSpecific")
            if path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
                raise Rejected(f"unknown pathType {path_type!r}")
            path = validate.path(http_path.get("path") or "/")
            match: MatchType = "exact" if path_type == "Exact" else "prefix"
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
                    route_options.https_redirect,
                    route_options.cache,
                )
            )
    return routes


def ingress_routes(builder: Builder, ident: tuple[str, str], ingress: Object) -> None:
    owner = describe("Ingress", ident)
    namespace = ident[0]
    spec = as_mapping(ingress.get("spec"), "spec")
    ours = _annotation_values(as_mapping(ingress.get("metadata"), "metadata"))
    options = parse_backend_options(ours)
    route_options = parse_route_options(ours)
    rules = as_list(spec.get("rules"), "spec.rules")
    http_paths = [
        (
            rule,
            as_list(
                as_mapping(as_mapping(rule, "a rule").get("http"), "http").get("paths"), "paths"
            ),
        )
        for rule in rules
    ]
    path_count = sum(len(paths) for _rule, paths in http_paths)
    bypass = len(rules) * len(route_options.bypass_paths)  # at most one per host and path
    builder.check_counts(len(rules), path_count, path_count + bypass)
    certificates = _ingress_certificates(builder, namespace, spec, owner)
    routes = _ingress_path_routes(builder, namespace, http_paths, options, route_options, owner)
    default = spec.get("defaultBackend")
    default_name = (
        _ingress_backend(builder, namespace, default, options, owner) if default else None
    )
    builder.add_routes(with_bypass(routes, route_options.bypass_paths), owner)
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
    route_options: RouteOptions
    backend_options: BackendOptions

    @classmethod
    def parse(cls, data: Mapping[str, str], builder: Builder) -> _RouteKeys:
        if not data.get("hosts", "").strip():
            raise Rejected("key 'hosts' is required")
        hosts = split_list(data["hosts"])
        prefixes = split_list(data.get("paths", "/"))
        exact = split_list(data.get("exact-paths", ""))
        route_options = parse_route_options(data)
        paths = len(prefixes) + len(exact)
        bypass = len(route_options.bypass_paths)
        builder.check_counts(len(hosts), paths, len(hosts) * (paths + bypass))
        return cls(
            hosts=list(OPTION["hosts"].value(data["hosts"])),
            prefixes=list(OPTION["paths"].value(data.get("paths", "/"))),
            exact=list(OPTION["exact-paths"].value(data.get("exact-paths", ""))),
            route_options=route_options,
            backend_options=parse_backend_options(data),
        )

    def add_routes(self, builder: Builder, backend: str, owner: str) -> None:
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
    keys = _RouteKeys.parse(data, builder)
    service_name = data.get("service", name)
    port: object = data.get("port")
    if port is None:
        service = builder.index.get("Service", namespace, str(service_name))
        ports = as_list(as_mapping((service or {}).get("spec"), "spec").get("ports"), "spec.ports")
        first = as_mapping(ports[0], "a port") if ports else {}
        port = (first.get("name") or first.get("port")) if ports else 0
    certificate = (
        secret_certificate(builder.index, namespace, OPTION["tls-secret"].value(data["tls-secret"]))
        if data.get("tls-secret")
        else None
    )
    owner = describe("ConfigMap", ident)
    service_name = OPTION["service"].value(service_name)
    port = OPTION["port"].value(port)
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
    servers: tuple[Server, ...] = OPTION["servers"].value(entries)
    return servers


def plain_route(builder: Builder, ident: tuple[str, str], route: Object) -> None:
    """A plain route (:mod:`breakwater.cluster.plain_routes`): its servers listed inline."""
    owner = describe(plain_routes.KIND, ident)
    name = validate.dns_label(ident[1], "route name")
    spec = as_mapping(route.get("spec"), "spec")
    keys = _RouteKeys.parse(plain_route_strings(spec), builder)
    servers = _plain_servers(spec.get("servers"), builder.settings.max_servers_per_backend)
    tls = spec.get("tls")
    certificate = plain_certificate(tls, name, owner) if tls is not None else None
    backend = f"be_route_{name}"
    builder.catalog.backends[backend] = Backend(
        backend, "", name, "route", keys.backend_options, servers
    )
    keys.add_routes(builder, backend, owner)
    if certificate:
        builder.catalog.certificates.setdefault(certificate.name, certificate)
