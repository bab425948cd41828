"""The plain route schema: backends outside Kubernetes, one JSON document per route.

A route lives at ``<routes_prefix><name>`` (default ``/breakwater/routes/<name>``)
in the etcd the watcher reads.  It speaks the vocabulary of the per-service
ConfigMaps, in JSON types, plus its servers and, optionally, its certificate:

.. code-block:: json

    {"hosts": ["app.example.com"], "paths": ["/"], "exact-paths": [],
     "servers": [{"address": "10.1.0.5", "port": 8080},
                 {"address": "10.1.0.6", "port": 8080, "state": "drain"}],
     "balance": "leastconn", "health-check-path": "/healthz", "https-redirect": true,
     "cache": true, "cache-ttl": "5m",
     "tls": {"certificate": "-----BEGIN CERTIFICATE-----...",
             "key": "-----BEGIN PRIVATE KEY-----..."}}

It is validated by the same rules as Kubernetes objects and merged into the same
catalog.  Clashes: a host and path routed by a Kubernetes object stays with it; the
plain route that wants it too is rejected whole, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from breakwater import validate
from breakwater.k8s.decode import CorruptValueError

KIND = "BreakwaterRoute"
API_VERSION = "breakwater.io/v1"

#: Keys of a plain route document and what they mean (the README lists them).
ROUTE_KEYS: dict[str, str] = {
    "hosts": "hostnames served (list, required)",
    "paths": 'path prefixes served (list, default ["/"])',
    "exact-paths": "paths served only when the request path is exactly equal (list)",
    "servers": "[{address, port, state: ready|drain}] (list, required, may be empty)",
    "https-redirect": "true: plain HTTP requests are redirected to HTTPS (308)",
    "tls": "{certificate, key}: PEM text of the certificate for these hosts",
    "cache": "true: the route is cacheable (served through Varnish)",
    "cache-ttl": "TTL for responses without Cache-Control or Expires",
    "cache-grace": "how long a stale object may be served while it is refetched",
    "cache-strip-cookies": "true: drop Cookie from requests and Set-Cookie from responses",
    "cache-bypass-paths": "path prefixes under the route's paths that never use the cache (list)",
    "balance": "roundrobin, static-rr, leastconn, first, source or random",
    "health-check-path": "HTTP path HAProxy probes on every server",
    "health-check-interval": "time between probes (default 2s)",
    "timeout-connect": "connect timeout to a server",
    "timeout-server": "server inactivity timeout",
}
_LISTS = ("hosts", "paths", "exact-paths", "cache-bypass-paths")


def route_name(key: str, routes_prefix: str) -> str:
    return validate.dns_label(key[len(routes_prefix) :], "route name")


def decode_route(key: str, value: bytes, routes_prefix: str) -> dict[str, Any]:
    """A stored plain route as an object the catalog takes (kind BreakwaterRoute)."""
    try:
        name = route_name(key, routes_prefix)
        spec = json.loads(value)
    except (validate.InvalidValue, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptValueError(key, f"not a Breakwater route: {exc}") from exc
    if not isinstance(spec, dict):
        raise CorruptValueError(key, "a Breakwater route is a JSON object")
    return {"kind": KIND, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec}


def as_option_strings(spec: Mapping[str, Any]) -> dict[str, str]:
    """The route's options in the ConfigMap's string form, for the shared parsers."""
    unknown = sorted(set(spec) - set(ROUTE_KEYS))
    if unknown:
        raise validate.InvalidValue(f"unknown key {unknown[0]!r}")
    options: dict[str, str] = {}
    for key, value in spec.items():
        if key in ("servers", "tls"):
            continue
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise validate.InvalidValue(f"{key} must be a list of strings")
            spaced = [v for v in value if not v or any(c.isspace() or c == "," for c in v)]
            if spaced:
                raise validate.InvalidValue(f"{key}: {spaced[0]!r} is not one value")
            options[key] = " ".join(value)
        elif isinstance(value, bool):
            options[key] = "true" if value else "false"
        elif isinstance(value, (str, int)):
            options[key] = str(value)
        else:
            raise validate.InvalidValue(f"{key} must be a string, a number or a boolean")
    return options


def encode_route(spec: Mapping[str, Any]) -> bytes:
    """The stored form: compact JSON with sorted keys (so equal routes are equal bytes)."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
