"""The route option table: every key a route ConfigMap, a plain route or an Ingress
annotation may carry, where it applies, how its value is validated, and what it sets.

:data:`OPTIONS` is the one place an option is declared.  It drives the keys each
object accepts, the validation of each value (:func:`parse_backend_options`,
:func:`parse_route_options`, the object keys read by :mod:`.sources`), the plain
route's JSON types (:mod:`breakwater.cluster.plain_routes`) and the README's option
tables (``scripts/check-option-table`` compares them).  Adding an option is one
entry here, plus the code that applies it when it is a new kind of setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from breakwater import validate
from breakwater.catalog.model import (
    BackendOptions,
    CachePolicy,
    Rejected,
    Route,
    Server,
)
from breakwater.catalog.tls import plain_pem

ANNOTATION_PREFIX = "breakwater.io/"

Place = Literal["configmap", "route", "annotation"]
CONFIGMAP: Place = "configmap"  # a key of a route ConfigMap's data
PLAIN_ROUTE: Place = "route"  # a key of a plain route (breakwater.cluster.plain_routes)
ANNOTATION: Place = "annotation"  # an Ingress annotation, ANNOTATION_PREFIX + key
PLACES: tuple[Place, ...] = (CONFIGMAP, PLAIN_ROUTE, ANNOTATION)
_EVERYWHERE = frozenset(PLACES)
_OBJECT_KEY = frozenset({CONFIGMAP, PLAIN_ROUTE})

#: A plain route's JSON type for a key.  ``list``: a list of strings, joined into the
#: ConfigMap's text form; ``bool`` and ``str``: a scalar (a boolean, a string or a
#: number), as text; the structured ones are read by :mod:`.sources` as they are.
JsonType = Literal["list", "bool", "str", "list of objects", "object"]
STRUCTURED: frozenset[JsonType] = frozenset({"list of objects", "object"})

#: What an option sets: the routes of the object (and their options), the backend
#: they point at (and its options), or the certificate served for their hosts.
Target = Literal["route", "backend", "certificate"]

#: Validates a value and returns it normalised, or raises InvalidValue (or Rejected)
#: naming ``what``.  A list option's parser takes one item.
Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Option:
    key: str
    description: str  # Markdown, as the README shows it
    places: frozenset[Place]
    json_type: JsonType
    parse: Parser
    target: Target
    #: The field of BackendOptions (backend), or of RouteOptions / CachePolicy (route),
    #: that the value fills; None for the keys the object itself is made of (hosts,
    #: service, servers, certificates), which :mod:`.sources` reads.
    field: str | None = None
    #: Another option that must be set to true for this one to be allowed.
    requires: str | None = None

    def value(self, raw: Any) -> Any:
        """The validated value: a tuple of items for a list in its text form."""
        if self.json_type == "list":
            return tuple(self.parse(item, self.key) for item in split_list(raw))
        return self.parse(raw, self.key)


def split_list(value: str) -> list[str]:
    """A list in text form: items separated by commas, spaces or newlines."""
    return [item for item in value.replace(",", " ").split() if item]


def normalise_prefix(path: str) -> str:
    # Kubernetes Prefix matching ignores a trailing '/': "/foo/" serves "/foo".
    return path.rstrip("/") or "/"


def _prefix(value: Any, what: str) -> str:
    # Matched as an Ingress's Prefix path is, so checked as Kubernetes checks one.
    return normalise_prefix(validate.matched_path(value, what))


def _path(value: Any, what: str) -> str:
    # Matched as an Ingress's Exact path is, so checked as Kubernetes checks one.
    return validate.matched_path(value, what)


def _hostname(value: Any, what: str) -> str:
    return validate.hostname(value)


def _service_name(value: Any, what: str) -> str:
    return validate.service_name(value)


def _service_port(value: Any, what: str) -> int | str:
    return validate.service_port(value)


def _secret_name(value: Any, what: str) -> str:
    return validate.dns_subdomain(value, "secret name")


def _balance(value: Any, what: str) -> str:
    return validate.balance(value)


def _servers(value: Any, what: str) -> tuple[Server, ...]:
    """A plain route's servers, sorted by address and port; a repeated one counts once.

    The count is checked against ``catalog.max_servers_per_backend`` before this.
    """
    if not isinstance(value, list):
        raise Rejected(f"key {what!r} is required: a list of {{address, port}}")
    servers = {}
    for entry in value:
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


def _tls_pem(value: Any, what: str) -> str:
    return plain_pem(value)


OPTIONS: tuple[Option, ...] = (
    # The object: what it routes, and to what.
    Option(
        "service",
        "Service name in the ConfigMap's namespace (default: the ConfigMap's name)",
        frozenset({CONFIGMAP}),
        "str",
        _service_name,
        "backend",
    ),
    Option(
        "port",
        "Service port, by name or number (default: the Service's first port)",
        frozenset({CONFIGMAP}),
        "str",
        _service_port,
        "backend",
    ),
    Option("hosts", "hostnames served (**required**)", _OBJECT_KEY, "list", _hostname, "route"),
    Option("paths", "path prefixes served (default `/`)", _OBJECT_KEY, "list", _prefix, "route"),
    Option(
        "exact-paths",
        "paths served only when the request path is exactly equal",
        _OBJECT_KEY,
        "list",
        _path,
        "route",
    ),
    Option(
        "servers",
        "`{address, port, state}` for each server; `state` is `ready` (default) or `drain`"
        " (**required**, may be empty)",
        frozenset({PLAIN_ROUTE}),
        "list of objects",
        _servers,
        "backend",
    ),
    Option(
        "tls-secret",
        "a `kubernetes.io/tls` Secret in the same namespace for these hosts",
        frozenset({CONFIGMAP}),
        "str",
        _secret_name,
        "certificate",
    ),
    Option(
        "tls",
        "`{certificate, key}`: the PEM certificate (chain after it) and key for these hosts",
        frozenset({PLAIN_ROUTE}),
        "object",
        _tls_pem,
        "certificate",
    ),
    # Route options; validated in this order (the first bad value is the reason).
    Option(
        "https-redirect",
        "`true`: plain HTTP requests are redirected to HTTPS (308)",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "route",
        field="https_redirect",
    ),
    Option(
        "cache",
        "`true`: the route is cacheable (served through Varnish)",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "route",
        field="cache",
    ),
    Option(
        "cache-ttl",
        "TTL for responses without `Cache-Control` or `Expires`, e.g. `120s`, `5m`, `1h`",
        _EVERYWHERE,
        "str",
        validate.seconds,
        "route",
        field="ttl",
        requires="cache",
    ),
    Option(
        "cache-grace",
        "how long a stale object may be served while it is refetched, e.g. `30s`",
        _EVERYWHERE,
        "str",
        validate.seconds,
        "route",
        field="grace",
        requires="cache",
    ),
    Option(
        "cache-strip-cookies",
        "`true`: drop `Cookie` from requests and `Set-Cookie` from responses",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "route",
        field="strip_cookies",
        requires="cache",
    ),
    Option(
        "cache-bypass-paths",
        "path prefixes under the route's paths that never use the cache",
        _EVERYWHERE,
        "list",
        _prefix,
        "route",
        field="bypass_paths",
        requires="cache",
    ),
    # Backend options; validated in this order.
    Option(
        "balance",
        "`roundrobin`, `static-rr`, `leastconn`, `first`, `source` or `random`",
        _EVERYWHERE,
        "str",
        _balance,
        "backend",
        field="balance",
    ),
    Option(
        "health-check-path",
        "HTTP path HAProxy probes on every server (default: no health check)",
        _EVERYWHERE,
        "str",
        validate.config_path,
        "backend",
        field="health_check_path",
    ),
    Option(
        "health-check-interval",
        "time between probes, e.g. `2s` (default `2s`)",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="health_check_interval",
    ),
    Option(
        "timeout-connect",
        "HAProxy connect timeout to a server, e.g. `5s`",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="timeout_connect",
    ),
    Option(
        "timeout-server",
        "HAProxy server inactivity timeout, e.g. `30s`",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="timeout_server",
    ),
)

#: Every option by key.
OPTION: dict[str, Option] = {option.key: option for option in OPTIONS}


def options_for(place: Place) -> dict[str, Option]:
    """The options accepted in ``place``, by key, in the table's order."""
    return {option.key: option for option in OPTIONS if place in option.places}


#: Every key a route ConfigMap may carry, with what it means.
CONFIGMAP_KEYS: dict[str, str] = {k: o.description for k, o in options_for(CONFIGMAP).items()}

#: Every key of a plain route document, with what it means.
ROUTE_KEYS: dict[str, str] = {k: o.description for k, o in options_for(PLAIN_ROUTE).items()}

#: Ingress annotations (prefix ``breakwater.io/``) and what they set.
INGRESS_ANNOTATIONS: dict[str, str] = {k: o.description for k, o in options_for(ANNOTATION).items()}

_PLAIN_ROUTE_OPTIONS = options_for(PLAIN_ROUTE)


def plain_route_strings(spec: Mapping[str, Any]) -> dict[str, str]:
    """A plain route's options in the ConfigMap's text form, for the shared parsers.

    A list is a JSON list of strings, each one value; any other key but the structured
    ones (servers, tls) is a string, a number or a boolean.
    """
    unknown = sorted(set(spec) - set(_PLAIN_ROUTE_OPTIONS))
    if unknown:
        raise validate.InvalidValue(f"unknown key {unknown[0]!r}")
    strings: dict[str, str] = {}
    for key, value in spec.items():
        json_type = _PLAIN_ROUTE_OPTIONS[key].json_type
        if json_type in STRUCTURED:
            continue  # read as they are by the catalog's sources
        if json_type == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise validate.InvalidValue(f"{key} must be a list of strings")
            spaced = [v for v in value if not v or any(c.isspace() or c == "," for c in v)]
            if spaced:
                raise validate.InvalidValue(f"{key}: {spaced[0]!r} is not one value")
            strings[key] = " ".join(value)
        elif isinstance(value, bool):
            strings[key] = "true" if value else "false"
        elif isinstance(value, str | int):
            strings[key] = str(value)
        else:
            raise validate.InvalidValue(f"{key} must be a string, a number or a boolean")
    return strings


_BACKEND_OPTIONS = tuple(o for o in OPTIONS if o.target == "backend" and o.field)
_ROUTE_OPTIONS = tuple(o for o in OPTIONS if o.target == "route" and o.field)

BACKEND_OPTION_KEYS: tuple[str, ...] = tuple(option.key for option in _BACKEND_OPTIONS)


def parse_backend_options(values: Mapping[str, str]) -> BackendOptions:
    """Backend options from ConfigMap keys, plain-route keys or annotations alike."""
    fields: dict[str, Any] = {
        option.field: option.value(values[option.key])
        for option in _BACKEND_OPTIONS
        if option.field and option.key in values
    }
    return BackendOptions(**fields)


@dataclass(frozen=True)
class RouteOptions:
    https_redirect: bool
    cache: CachePolicy | None
    bypass_paths: tuple[str, ...]


def parse_route_options(values: Mapping[str, str]) -> RouteOptions:
    """Per-route options, from ConfigMap keys or ``breakwater.io/`` annotations alike."""
    fields: dict[str, Any] = {}
    for option in _ROUTE_OPTIONS:
        if option.key not in values or not option.field:
            continue
        if option.requires and not fields.get(OPTION[option.requires].field or ""):
            raise Rejected(f"{option.key} is set but {option.requires} is not true")
        fields[option.field] = option.value(values[option.key])
    https_redirect = bool(fields.pop("https_redirect", False))
    bypass_paths: tuple[str, ...] = fields.pop("bypass_paths", ())
    if not fields.pop("cache", False):
        return RouteOptions(https_redirect, None, ())
    return RouteOptions(https_redirect, CachePolicy(**fields), bypass_paths)


def with_bypass(routes: list[Route], bypass_paths: tuple[str, ...]) -> list[Route]:
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
