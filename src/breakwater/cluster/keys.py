"""The API server's etcd key layout: which kind lives under which key, and the identity a
key gives its object (kind, namespace, name) -- checked against what the object says."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from breakwater import validate
from breakwater.cluster.index import Object
from breakwater.validate import InvalidValue

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
    # The Gateway API's CRDs (stored as JSON; pinned to gateway.networking.k8s.io/v1),
    # and the Namespaces their allowedRoutes selectors look at.
    "gateway.networking.k8s.io/gatewayclasses/": "GatewayClass",
    "gateway.networking.k8s.io/gateways/": "Gateway",
    "gateway.networking.k8s.io/httproutes/": "HTTPRoute",
    "gateway.networking.k8s.io/referencegrants/": "ReferenceGrant",
    "namespaces/": "Namespace",
}
GATEWAY_API = frozenset(d for d in RESOURCES if d.startswith("gateway.") or d == "namespaces/")


# What each way of reaching the backends reads (catalog.mode): pod IPs come from
# EndpointSlices (Endpoints where a Service has none), NodePorts from the Nodes.
_NOT_READ: dict[str, frozenset[str]] = {
    "pods": frozenset({"minions/"}),
    "nodeport": frozenset({"services/endpoints/", "endpointslices/"}),
}


def read_resources(
    mode: str,
    secret_namespaces: tuple[str, ...] = (),
    configmap_namespaces: tuple[str, ...] = (),
    gateway_api: bool = True,
) -> list[str]:
    """What the watcher lists and watches under the key prefix, and nothing else.

    The one answer to "what does the edge read": the follower, the one-shot reads of
    the CLI and the lookups, and the read-only etcd role (``breakwater.edge.etcd_access``)
    all take it from here.  ``secret_namespaces`` / ``configmap_namespaces`` narrow
    Secrets / ConfigMaps to those namespaces (empty: every namespace); ``gateway_api``
    off leaves the Gateway API's objects (and Namespaces) unread.
    """
    narrowed = {"secrets/": secret_namespaces, "configmaps/": configmap_namespaces}
    resources = []
    for directory in RESOURCES:
        if directory in _NOT_READ.get(mode, frozenset()):
            continue
        if not gateway_api and directory in GATEWAY_API:
            continue
        namespaces = narrowed.get(directory, ())
        for namespace in namespaces:
            validate.dns_label(namespace, f"namespace of {RESOURCES[directory]}s")
        resources += [directory + ns + "/" for ns in sorted(set(namespaces))] or [directory]
    return resources


def read_prefixes(prefix: str, routes_prefix: str, resources: list[str]) -> list[str]:
    """The etcd key prefixes of ``resources`` (from :func:`read_resources`), and of the
    plain routes when they are on."""
    base = prefix.rstrip("/") + "/"
    return [base + resource for resource in resources] + ([routes_prefix] if routes_prefix else [])


def kind_of_key(key: str, prefix: str) -> str | None:
    """The kind stored under ``key`` (``/registry/services/specs/ns/x`` -> Service)."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :].lstrip("/")
    for directory, kind in RESOURCES.items():
        if rest.startswith(directory):
            return kind
    return None


CLUSTER_SCOPED = frozenset({"Node", "IngressClass", "GatewayClass", "Namespace"})


@lru_cache(maxsize=8)
def _well_formed(prefix: str) -> re.Pattern[str]:
    """Every key Kubernetes writes for the kinds we read, names valid, in one pattern:
    the common case costs one match (30,000 keys at start-up); the rest is explained by
    :func:`identity_of_key`'s slower path."""
    label, subdomain = validate.DNS_LABEL, validate.DNS_SUBDOMAIN
    namespaced = "|".join(
        re.escape(d[:-1]) for d, k in RESOURCES.items() if k not in CLUSTER_SCOPED | {"Service"}
    )
    cluster = "|".join(re.escape(d[:-1]) for d, k in RESOURCES.items() if k in CLUSTER_SCOPED)
    return re.compile(
        re.escape(prefix.rstrip("/"))
        + rf"/+(?:(?P<service>services/specs)/(?P<sns>{label})/(?P<sname>{validate.DNS1035_LABEL})"
        + rf"|(?P<dir>{namespaced})/(?P<ns>{label})/(?P<name>{subdomain})"
        + rf"|(?P<cdir>{cluster})/(?P<cname>{subdomain}))",
        re.ASCII,
    )


def identity_of_key(key: str, prefix: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the object stored under ``key``; None: not a kind we read.

    The identity of an object is its key (the API server writes each object under
    its own); raises :class:`InvalidValue` for a key Kubernetes could not have written.
    """
    match = _well_formed(prefix).fullmatch(key)
    if match is not None and len(key) - len(prefix) <= 2 * validate.MAX_NAME:
        if match["service"]:
            return "Service", match["sns"], match["sname"]
        if match["dir"] and len(match["name"]) <= validate.MAX_NAME:
            return RESOURCES[match["dir"] + "/"], match["ns"], match["name"]
        if match["cdir"] and len(match["cname"]) <= validate.MAX_NAME:
            return RESOURCES[match["cdir"] + "/"], "", match["cname"]
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
