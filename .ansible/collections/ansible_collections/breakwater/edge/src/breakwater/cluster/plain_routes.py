"""The plain route schema: backends outside Kubernetes, one JSON document per route.

A route lives at ``<routes_prefix><name>`` (default ``/breakwater/routes/<name>``)
in the etcd the watcher reads.  It speaks the vocabulary of the per-service
ConfigMaps in JSON types, plus its servers and, optionally, its certificate; the keys,
their JSON types and their validation are the option table's
(:mod:`breakwater.catalog.options`):

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
from breakwater.k8s.jsontext import JSONTextError, load_json

KIND = "BreakwaterRoute"
API_VERSION = "breakwater.io/v1"


def route_name(key: str, routes_prefix: str) -> str:
    return validate.dns_label(key[len(routes_prefix) :], "route name")


def decode_route(key: str, value: bytes, routes_prefix: str) -> dict[str, Any]:
    """A stored plain route as an object the catalog takes (kind BreakwaterRoute).

    Read as strict JSON, as a Kubernetes object's JSON is (:func:`load_json`): no NaN or
    Infinity, no lone surrogate, nothing nested too deeply or too long a number -- each
    is this key's reason, not an error out of the reader.
    """
    try:
        name = route_name(key, routes_prefix)
        spec = load_json(value)
    except (validate.InvalidValue, JSONTextError) as exc:
        raise CorruptValueError(key, f"not a Breakwater route: {exc}") from exc
    if not isinstance(spec, dict):
        raise CorruptValueError(key, "a Breakwater route is a JSON object")
    return {"kind": KIND, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec}


def encode_route(spec: Mapping[str, Any]) -> bytes:
    """The stored form: compact JSON with sorted keys (so equal routes are equal bytes)."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
