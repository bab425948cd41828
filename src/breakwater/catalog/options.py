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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from breakwater import validate
from breakwater.catalog.model import (
    BackendOptions,
    CachePolicy,
    Cors,
    Rejected,
    Route,
    RouteFeatures,
    Server,
    StickyCookie,
)
from breakwater.catalog.tls import ca_bundle, plain_pem

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
#: they point at (and its options), the certificate served for their hosts, the
#: object's route features (its own backend section), or its canary.
Target = Literal["route", "backend", "certificate", "feature", "canary"]

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
    #: Another option that must be set (to true, for a boolean) for this one to be allowed.
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


def _ca_pem(value: Any, what: str) -> str:
    return ca_bundle(value, what)


def _reference(value: Any, what: str) -> tuple[str, str]:
    """``secret/<name>`` or ``configmap/<name>``: an object of the same namespace."""
    text = value.strip() if isinstance(value, str) else ""
    kind, _slash, name = text.partition("/")
    if kind not in ("secret", "configmap") or not name:
        raise validate.InvalidValue(
            f"{what} {validate.show(value)} is not secret/<name> or configmap/<name>"
        )
    return ("Secret" if kind == "secret" else "ConfigMap", validate.dns_subdomain(name, what))


def _configmap_name(value: Any, what: str) -> str:
    return validate.dns_subdomain(value, what)


def _protocol(value: Any, what: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in PROTOCOLS:
        raise validate.InvalidValue(
            f"{what} {validate.show(value)} is not one of {', '.join(PROTOCOLS)}"
        )
    return text


PROTOCOLS = ("http", "h2", "grpc", "https", "grpcs")


def _proxy_protocol(value: Any, what: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in ("v1", "v2"):
        raise validate.InvalidValue(f"{what} {validate.show(value)} is not v1 or v2")
    return text


#: HAProxy 2.6's retry-on keywords.
RETRY_ON = (
    "none",
    "conn-failure",
    "empty-response",
    "junk-response",
    "response-timeout",
    "0rtt-rejected",
    "all-retryable-errors",
    "401",
    "403",
    "404",
    "408",
    "425",
    "500",
    "501",
    "502",
    "503",
    "504",
)


def _retry_on(value: Any, what: str) -> str:
    if value not in RETRY_ON:
        raise validate.InvalidValue(
            f"{what} {validate.show(value)} is not one of {', '.join(RETRY_ON)}"
        )
    return str(value)


def _retries(value: Any, what: str) -> int:
    return validate.integer(value, what, 0, 10)


def _positive(limit: int) -> Parser:
    def parse(value: Any, what: str) -> int:
        return validate.integer(value, what, 1, limit)

    return parse


def _percent(value: Any, what: str) -> int:
    return validate.integer(value, what, 0, 100)


def _redirect_code(value: Any, what: str) -> int:
    code = validate.integer(value, what, 300, 399)
    if code not in (301, 302, 303, 307, 308):
        raise validate.InvalidValue(
            f"{what} {validate.show(value)} is not 301, 302, 303, 307 or 308"
        )
    return code


_REWRITE_TARGET = re.compile(
    r"/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/]|%[0-9A-Fa-f]{2}|\\[1-9])*", re.ASCII
)


def _rewrite_target(value: Any, what: str) -> str:
    """A path written as the new one: RFC 3986 characters, ``\\1`` to ``\\9`` for
    the groups of ``rewrite-regex``."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > validate.MAX_PATH or not _REWRITE_TARGET.fullmatch(text):
        raise validate.InvalidValue(
            f"{what} {validate.show(value)} is not a path (\\1 to \\9 stand for groups)"
        )
    return text


def _token(value: Any, what: str) -> str:
    return validate.safe_token(value, what)


def _app_root(value: Any, what: str) -> str:
    # Written single-quoted into a redirect: everything of a path but a quote.
    path = validate.matched_path(value, what)
    if "'" in path:
        raise validate.InvalidValue(f"{what}: path {validate.show(value)} holds a quote")
    return path


def _canary_value(value: Any, what: str) -> str:
    # One pattern of an ACL: a lone "}" would close it.
    text = validate.header_value(value, what)
    if not text or text == "}":
        raise validate.InvalidValue(f"{what} {validate.show(value)} is not a header value")
    return text


def _header(value: Any, what: str) -> str:
    return validate.header_name(value, what)


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
    Option(
        "timeout-tunnel",
        "inactivity timeout of WebSockets and other tunnels, e.g. `1h`",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="timeout_tunnel",
    ),
    Option(
        "timeout-queue",
        "how long a request waits for a free server, e.g. `10s`",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="timeout_queue",
    ),
    Option(
        "retries",
        "how many times a failed request is retried, `0` to `10` (on another server)",
        _EVERYWHERE,
        "str",
        _retries,
        "backend",
        field="retries",
    ),
    Option(
        "retry-on",
        "what is retried: HAProxy's `retry-on` keywords, e.g. `conn-failure 503`",
        _EVERYWHERE,
        "list",
        _retry_on,
        "backend",
        field="retry_on",
    ),
    Option(
        "backend-protocol",
        "`http` (default), `h2` (HTTP/2 cleartext), `grpc`, `https` or `grpcs` (TLS)",
        _EVERYWHERE,
        "str",
        _protocol,
        "backend",
        field="protocol",
    ),
    Option(
        "backend-ca",
        "`secret/<name>` or `configmap/<name>` whose `ca.crt` verifies the servers"
        " (default: not verified)",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _reference,
        "backend",
        field="ca_pem",
        requires="backend-protocol",
    ),
    Option(
        "backend-ca-pem",
        "PEM certificates that verify the servers (default: not verified)",
        frozenset({PLAIN_ROUTE}),
        "str",
        _ca_pem,
        "backend",
        field="ca_pem",
        requires="backend-protocol",
    ),
    Option(
        "backend-sni",
        "the name sent in TLS to the servers (default: the request's host)",
        _EVERYWHERE,
        "str",
        _hostname,
        "backend",
        field="sni",
        requires="backend-protocol",
    ),
    Option(
        "backend-proxy-protocol",
        "`v1` or `v2`: a PROXY protocol header with the client's address to the servers",
        _EVERYWHERE,
        "str",
        _proxy_protocol,
        "backend",
        field="proxy_protocol",
    ),
    Option(
        "sticky-cookie",
        "name of the cookie that keeps a client on one server (default: no stickiness)",
        _EVERYWHERE,
        "str",
        validate.cookie_name,
        "backend",
        field="sticky.name",
    ),
    Option(
        "sticky-cookie-ttl",
        "how long the cookie keeps the client, e.g. `1h` (default: the browser session)",
        _EVERYWHERE,
        "str",
        validate.duration,
        "backend",
        field="sticky.ttl",
        requires="sticky-cookie",
    ),
    Option(
        "sticky-cookie-secure",
        "`true`: the cookie is sent over HTTPS only",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "backend",
        field="sticky.secure",
        requires="sticky-cookie",
    ),
    Option(
        "sticky-cookie-httponly",
        "`false`: scripts may read the cookie (default `true`)",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "backend",
        field="sticky.httponly",
        requires="sticky-cookie",
    ),
    # Route features: the object gets its own backend section (docs/traffic.md).
    Option(
        "rate-limit-rps",
        "requests per second allowed from one client address; more are answered 429",
        _EVERYWHERE,
        "str",
        _positive(1_000_000),
        "feature",
        field="rate_limit_rps",
    ),
    Option(
        "rate-limit-connections",
        "requests in progress at once from one client address; more are answered 429",
        _EVERYWHERE,
        "str",
        _positive(1_000_000),
        "feature",
        field="rate_limit_connections",
    ),
    Option(
        "max-body-size",
        "largest request body, e.g. `10m`; a larger `Content-Length` is answered 413",
        _EVERYWHERE,
        "str",
        validate.size,
        "feature",
        field="max_body_size",
    ),
    Option(
        "allow-sources",
        "client networks (CIDRs) allowed; any other is answered 403",
        _EVERYWHERE,
        "list",
        validate.cidr,
        "feature",
        field="allow_sources",
    ),
    Option(
        "deny-sources",
        "client networks (CIDRs) answered 403",
        _EVERYWHERE,
        "list",
        validate.cidr,
        "feature",
        field="deny_sources",
    ),
    Option(
        "hsts",
        "`true`: HTTPS responses carry `Strict-Transport-Security`",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "feature",
        field="hsts",
    ),
    Option(
        "hsts-max-age",
        "its `max-age`, e.g. `365d` (default one year)",
        _EVERYWHERE,
        "str",
        validate.seconds,
        "feature",
        field="hsts.max_age",
        requires="hsts",
    ),
    Option(
        "hsts-include-subdomains",
        "`true`: with `includeSubDomains`",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "feature",
        field="hsts.include_subdomains",
        requires="hsts",
    ),
    Option(
        "hsts-preload",
        "`true`: with `preload`",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "feature",
        field="hsts.preload",
        requires="hsts",
    ),
    Option(
        "redirect-to",
        "every request is redirected to this absolute `http`/`https` URL",
        _EVERYWHERE,
        "str",
        validate.redirect_url,
        "feature",
        field="redirect_to",
    ),
    Option(
        "redirect-code",
        "`301`, `302` (default), `303`, `307` or `308`",
        _EVERYWHERE,
        "str",
        _redirect_code,
        "feature",
        field="redirect_code",
        requires="redirect-to",
    ),
    Option(
        "app-root",
        "a request for `/` is redirected (302) to this path",
        _EVERYWHERE,
        "str",
        _app_root,
        "feature",
        field="app_root",
    ),
    Option(
        "rewrite-target",
        "the path the servers get: replaces the prefix the route matched, or what"
        " `rewrite-regex` matched (`\\1` to `\\9` for its groups)",
        _EVERYWHERE,
        "str",
        _rewrite_target,
        "feature",
        field="rewrite.target",
    ),
    Option(
        "rewrite-regex",
        "a regex on the request path (a safe subset, docs/traffic.md)",
        _EVERYWHERE,
        "str",
        validate.regex,
        "feature",
        field="rewrite.regex",
        requires="rewrite-target",
    ),
    Option(
        "error-pages",
        "a ConfigMap of the namespace: keys `400` to `599`, HTML pages for those statuses",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _configmap_name,
        "feature",
        field="error_pages",
    ),
    Option(
        "cors",
        "`true`: the edge answers CORS preflights and adds the CORS headers",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "feature",
        field="cors",
    ),
    Option(
        "cors-allow-origin",
        "origins allowed, `*` (default) or `https://a.example`",
        _EVERYWHERE,
        "list",
        validate.http_origin,
        "feature",
        field="cors.origins",
        requires="cors",
    ),
    Option(
        "cors-allow-methods",
        "methods allowed (default `GET PUT POST DELETE PATCH OPTIONS`)",
        _EVERYWHERE,
        "list",
        _token,
        "feature",
        field="cors.methods",
        requires="cors",
    ),
    Option(
        "cors-allow-headers",
        "request headers allowed (default: ingress-nginx's list)",
        _EVERYWHERE,
        "list",
        _token,
        "feature",
        field="cors.headers",
        requires="cors",
    ),
    Option(
        "cors-expose-headers",
        "response headers exposed (default none)",
        _EVERYWHERE,
        "list",
        _token,
        "feature",
        field="cors.expose_headers",
        requires="cors",
    ),
    Option(
        "cors-allow-credentials",
        "`false`: no `Access-Control-Allow-Credentials` (default `true`)",
        _EVERYWHERE,
        "bool",
        validate.boolean,
        "feature",
        field="cors.credentials",
        requires="cors",
    ),
    Option(
        "cors-max-age",
        "how long a preflight is cached, e.g. `20d` (default `1728000` seconds)",
        _EVERYWHERE,
        "str",
        validate.seconds,
        "feature",
        field="cors.max_age",
        requires="cors",
    ),
    Option(
        "canary-service",
        "a second Service of the namespace that gets a share of these routes' requests",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _service_name,
        "canary",
        field="service",
    ),
    Option(
        "canary-port",
        "its port, by name or number (default: its first port)",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _service_port,
        "canary",
        field="port",
        requires="canary-service",
    ),
    Option(
        "canary-weight",
        "percent of requests sent to the canary, `0` to `100` (default `0`)",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _percent,
        "canary",
        field="weight",
        requires="canary-service",
    ),
    Option(
        "canary-header",
        "a request header: `always` sends the request to the canary, `never` not",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _header,
        "canary",
        field="header",
        requires="canary-service",
    ),
    Option(
        "canary-header-value",
        "the header's value that sends the request to the canary (instead of `always`)",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        _canary_value,
        "canary",
        field="header_value",
        requires="canary-header",
    ),
    Option(
        "canary-cookie",
        "a cookie: `always` sends the request to the canary, `never` not",
        frozenset({CONFIGMAP, ANNOTATION}),
        "str",
        validate.cookie_name,
        "canary",
        field="cookie",
        requires="canary-service",
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
_FEATURE_OPTIONS = tuple(o for o in OPTIONS if o.target == "feature" and o.field)
_CANARY_OPTIONS = tuple(o for o in OPTIONS if o.target == "canary" and o.field)

BACKEND_OPTION_KEYS: tuple[str, ...] = tuple(option.key for option in _BACKEND_OPTIONS)


def _set(option: Option, values: Mapping[str, str]) -> bool:
    """Whether ``option`` is given (and true, for a boolean)."""
    if option.key not in values:
        return False
    return option.json_type != "bool" or bool(option.value(values[option.key]))


def _fields(options: tuple[Option, ...], values: Mapping[str, str]) -> dict[str, Any]:
    """The validated values of ``options`` given in ``values``, by field, in the table's
    order; an option whose required one is not set rejects the object."""
    fields: dict[str, Any] = {}
    for option in options:
        if option.key not in values or not option.field:
            continue
        if option.requires and not _set(OPTION[option.requires], values):
            state = "true" if OPTION[option.requires].json_type == "bool" else "set"
            raise Rejected(f"{option.key} is set but {option.requires} is not {state}")
        fields[option.field] = option.value(values[option.key])
    return fields


def _group(fields: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The fields ``<prefix>.<name>``, taken out of ``fields``, by name."""
    group = {
        k[len(prefix) + 1 :]: fields.pop(k) for k in list(fields) if k.startswith(prefix + ".")
    }
    return group


CaResolver = Callable[[tuple[str, str]], str]
"""Reads a ``backend-ca`` reference (kind, name) into PEM certificates, or rejects."""


def parse_backend_options(
    values: Mapping[str, str], resolve_ca: CaResolver | None = None
) -> BackendOptions:
    """Backend options from ConfigMap keys, plain-route keys or annotations alike.

    ``resolve_ca`` reads a ``backend-ca`` reference (the catalog's sources give one
    bound to the object's namespace); without one, a reference rejects.
    """
    fields = _fields(_BACKEND_OPTIONS, values)
    sticky = _group(fields, "sticky")
    if sticky:
        fields["sticky"] = StickyCookie(**sticky)
    if isinstance(fields.get("ca_pem"), tuple):
        if resolve_ca is None:
            raise Rejected("backend-ca names an object, which only a ConfigMap or an Ingress may")
        fields["ca_pem"] = resolve_ca(fields["ca_pem"])
    if "retry_on" in fields and "retries" not in fields:
        fields["retries"] = 3  # HAProxy's default, written so retry-on reads alone
    options = BackendOptions(**fields)
    if (options.ca_pem or options.sni) and not options.tls:
        key = "backend-sni" if options.sni else "backend-ca"
        raise Rejected(f"{key} is set but backend-protocol is not https or grpcs")
    return options


@dataclass(frozen=True)
class CanarySpec:
    """A canary as an object asks for it: the Service is resolved by the sources."""

    service: str
    port: int | str | None
    weight: int
    header: str | None
    header_value: str | None
    cookie: str | None


@dataclass(frozen=True)
class RouteOptions:
    https_redirect: bool
    cache: CachePolicy | None
    bypass_paths: tuple[str, ...]
    # The object's route features, but for what needs its paths (rewrite without a
    # regex: the regex is "") and its namespace (error pages: error_pages_from).
    features: RouteFeatures | None = None
    error_pages_from: str | None = None
    canary: CanarySpec | None = None


def parse_route_options(values: Mapping[str, str]) -> RouteOptions:
    """Per-route options, from ConfigMap keys or ``breakwater.io/`` annotations alike."""
    fields = _fields(_ROUTE_OPTIONS, values)
    https_redirect = bool(fields.pop("https_redirect", False))
    bypass_paths: tuple[str, ...] = fields.pop("bypass_paths", ())
    features, error_pages = _features(_fields(_FEATURE_OPTIONS, values))
    canary_fields = _fields(_CANARY_OPTIONS, values)
    canary = None
    if canary_fields:
        canary_fields.setdefault("port", None)
        canary_fields.setdefault("weight", 0)
        canary_fields.setdefault("header", None)
        canary_fields.setdefault("header_value", None)
        canary_fields.setdefault("cookie", None)
        canary = CanarySpec(**canary_fields)
    cache = CachePolicy(**fields) if fields.pop("cache", False) else None
    if cache is not None and (features is not None or error_pages is not None):
        # The rules run in the object's own backend section, which Varnish's misses
        # reach from its internal frontend: after the cache, for misses only.
        used = next(key for key in values if key in OPTION and OPTION[key].target == "feature")
        raise Rejected(f"{used} is set with cache: route features and the cache do not combine")
    return RouteOptions(
        https_redirect,
        cache,
        bypass_paths if cache else (),
        features,
        error_pages,
        canary,
    )


def _features(fields: dict[str, Any]) -> tuple[RouteFeatures | None, str | None]:
    if not fields:
        return None, None
    hsts = _group(fields, "hsts")
    if fields.pop("hsts", False):
        directives = [f"max-age={hsts.get('max_age', 31536000)}"]
        directives += ["includeSubDomains"] if hsts.get("include_subdomains") else []
        directives += ["preload"] if hsts.get("preload") else []
        fields["hsts"] = "; ".join(directives)
    rewrite = _group(fields, "rewrite")
    if rewrite:
        if "\\" in rewrite["target"] and "regex" not in rewrite:
            raise Rejected("rewrite-target names a group (\\1) but rewrite-regex is not set")
        # Without a regex: filled in from the object's paths (prefix_rewrite).
        fields["rewrite"] = ((rewrite.get("regex", ""), rewrite["target"]),)
    cors = _group(fields, "cors")
    if fields.pop("cors", False):
        fields["cors"] = Cors(**cors)
    error_pages = fields.pop("error_pages", None)
    for other, field_name in (("app-root", "app_root"), ("rewrite-target", "rewrite")):
        if fields.get("redirect_to") and fields.get(field_name):
            raise Rejected(f"redirect-to and {other} are both set: every request is redirected")
    features = RouteFeatures(**fields)
    if features == RouteFeatures() and error_pages is None:
        return None, None
    return features, error_pages


def prefix_rewrite(features: RouteFeatures, paths: list[str]) -> RouteFeatures:
    """``features`` whose rewrite has no regex given the ones that replace the prefix
    of ``paths`` (the object's paths) the route matched by the target: path ``/foo``,
    target ``/`` serves ``/foo/bar`` from ``/bar``.  One (regex, replacement) for the
    paths but ``/``, longest first, on a segment boundary; then one for ``/``."""
    if not features.rewrite or features.rewrite[0][0]:
        return features
    target = features.rewrite[0][1]
    slash = target.endswith("/")
    rewrites = []
    named = sorted({path for path in paths if path != "/"}, key=lambda p: (-len(p), p))
    if named:
        head = "|".join(re.escape(path) for path in named)
        regex = f"^(?:{head})(?:/(.*))?$" if slash else f"^(?:{head})(/.*)?$"
        rewrites.append((regex, target + "\\1"))
    if "/" in paths:
        rewrites.append(("^/(.*)$" if slash else "^(/.*)$", target + "\\1"))
    return replace(features, rewrite=tuple(rewrites))


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
