"""Write Kubernetes objects into a *lab* etcd exactly as the API server stores them.

For the lab, the tests and the benchmarks only: the watcher itself never writes to
etcd, and nothing should ever write into a real cluster's etcd behind the API
server's back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.source import EtcdSettings, EtcdSource
from breakwater.k8s.encode import encode_protobuf

_DIRECTORIES = {kind: directory.rstrip("/") for directory, kind in RESOURCES.items()}
_DIRECTORIES["Namespace"] = "namespaces"


def storage_key(obj: Mapping[str, Any], prefix: str = "/registry") -> str:
    """The etcd key the API server stores ``obj`` under."""
    kind = obj.get("kind")
    if kind not in _DIRECTORIES:
        raise ValueError(f"cannot store kind {kind!r}")
    metadata = obj.get("metadata") or {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    if not name:
        raise ValueError(f"{kind} without metadata.name")
    base = f"{prefix.rstrip('/')}/{_DIRECTORIES[str(kind)]}"
    return f"{base}/{namespace}/{name}" if namespace else f"{base}/{name}"


# CustomResources (the Gateway API) are stored as JSON whatever the API server's
# storage media type: protobuf is for built-in kinds only.
JSON_ONLY = frozenset({"GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"})


def storage_value(obj: Mapping[str, Any], encoding: str = "protobuf") -> bytes:
    if encoding == "json" or obj.get("kind") in JSON_ONLY:
        return json.dumps(obj, separators=(",", ":")).encode()
    return encode_protobuf(obj)


def load_manifests(text: str) -> list[dict[str, Any]]:
    """Kubernetes YAML (multi-document, ``kind: List`` allowed) to objects."""
    objects: list[dict[str, Any]] = []
    for document in yaml.safe_load_all(text):
        if not document:
            continue
        if document.get("kind") == "List":
            objects.extend(document.get("items") or [])
        else:
            objects.append(document)
    return objects


async def seed(
    settings: EtcdSettings,
    objects: Iterable[Mapping[str, Any]],
    encoding: str = "protobuf",
    delete: bool = False,
) -> list[tuple[str, str]]:
    """Put (or delete) each object under its storage key.

    Returns (action, key) pairs; a value already stored byte for byte is left alone
    ("unchanged"), so seeding twice changes nothing.
    """
    source = EtcdSource(settings, [])
    actions = []
    try:
        for obj in objects:
            key = storage_key(obj, settings.prefix)
            current = await source.get(key)
            if delete:
                if current is not None:
                    await source.delete(key)
                actions.append(("deleted" if current is not None else "absent", key))
                continue
            value = storage_value(obj, encoding)
            if current is not None and current.value == value:
                actions.append(("unchanged", key))
                continue
            await source.put(key, value)
            actions.append(("stored", key))
    finally:
        await source.disconnect()
    return actions
