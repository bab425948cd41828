"""Per-route and per-backend options: what ConfigMap keys, plain-route keys and Ingress
annotations may say, and how each value is validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from breakwater import validate
from breakwater.catalog.model import (
    BackendOptions,
    CachePolicy,
    Rejected,
    Route,
)

ANNOTATION_PREFIX = "breakwater.io/"


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


BACKEND_OPTION_KEYS = (
    "balance",
    "health-check-path",
    "health-check-interval",
    "timeout-connect",
    "timeout-server",
)


def parse_backend_options(values: Mapping[str, str]) -> BackendOptions:
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


def split_list(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


@dataclass(frozen=True)
class RouteOptions:
    https_redirect: bool
    cache: CachePolicy | None
    bypass_paths: tuple[str, ...]


def parse_route_options(values: Mapping[str, str]) -> RouteOptions:
    """Per-route options, from ConfigMap keys or ``breakwater.io/`` annotations alike."""
    https_redirect = validate.boolean(values.get("https-redirect", "false"), "https-redirect")
    cache_keys = ("cache-ttl", "cache-grace", "cache-strip-cookies", "cache-bypass-paths")
    if not validate.boolean(values.get("cache", "false"), "cache"):
        stray = [key for key in cache_keys if key in values]
        if stray:
            raise Rejected(f"{stray[0]} is set but cache is not true")
        return RouteOptions(https_redirect, None, ())
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
        normalise_prefix(validate.path(p)) for p in split_list(values.get("cache-bypass-paths", ""))
    )
    return RouteOptions(https_redirect, policy, bypass)


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


def normalise_prefix(path: str) -> str:
    # Kubernetes Prefix matching ignores a trailing '/': "/foo/" serves "/foo".
    return path.rstrip("/") or "/"
