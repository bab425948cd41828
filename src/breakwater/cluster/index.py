"""Decoded objects indexed by kind and (namespace, name), updated in place as etcd changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Object = Mapping[str, Any]


#: Kinds that only ever change a backend's servers, never its routes (pods mode).
SERVER_KINDS = frozenset({"EndpointSlice", "Endpoints"})


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class ClusterIndex:
    """Decoded objects grouped by kind and (namespace, name); updated in place."""

    by_kind: dict[str, dict[tuple[str, str], Object]] = field(default_factory=dict)
    slices_by_service: dict[tuple[str, str], dict[str, Object]] = field(default_factory=dict)

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        return self.by_kind.get(kind, {}).get((namespace, name))

    def all(self, kind: str) -> list[tuple[tuple[str, str], Object]]:
        return sorted(self.by_kind.get(kind, {}).items())

    def add(self, obj: Object, ident: tuple[str, str] | None = None) -> None:
        """Index ``obj`` under ``ident`` (from its etcd key), or its metadata if None."""
        ident = ident or _ident(obj)
        if ident is None:
            return
        kind = str(obj["kind"])
        self.by_kind.setdefault(kind, {})[ident] = obj
        service = served_service(obj)
        if kind == "EndpointSlice" and service is not None:
            self.slices_by_service.setdefault(service, {})[ident[1]] = obj

    def discard(self, obj: Object, ident: tuple[str, str] | None = None) -> None:
        """Forget ``obj`` -- only if it is the object indexed under ``ident``."""
        ident = ident or _ident(obj)
        if ident is None:
            return
        objects = self.by_kind.get(str(obj["kind"]), {})
        if objects.get(ident) is obj:
            del objects[ident]
        service = served_service(obj)
        slices = self.slices_by_service.get(service) if service is not None else None
        if service is not None and slices is not None and slices.get(ident[1]) is obj:
            del slices[ident[1]]
            if not slices:
                del self.slices_by_service[service]


def _ident(obj: Object) -> tuple[str, str] | None:
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    if not isinstance(kind, str) or not isinstance(meta, Mapping):
        return None
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return (namespace, name)


def served_service(obj: Object) -> tuple[str, str] | None:
    """The Service whose servers an EndpointSlice or Endpoints object lists."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    if kind not in SERVER_KINDS or not isinstance(meta, Mapping):
        return None
    namespace = str(meta.get("namespace") or "")
    if kind == "Endpoints":
        return (namespace, str(meta.get("name") or ""))
    labels = meta.get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, Mapping) else None
    return (namespace, service) if isinstance(service, str) and service else None


def index_objects(objects: Iterable[Object]) -> ClusterIndex:
    index = ClusterIndex()
    for obj in objects:
        index.add(obj)
    return index
