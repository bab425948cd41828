"""Decoded objects indexed by kind and (namespace, name), updated in place as etcd changes;
Secrets held as stored, decoded only when the catalog asks for one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Object = Mapping[str, Any]


@dataclass(frozen=True)
class StoredSecret:
    """A Secret as etcd holds it -- encrypted at rest or not -- and the key it is stored
    under (the authenticated data of its encryption).  Decoded only when a route asks
    for it: the Secrets no route uses are never decrypted."""

    key: str
    value: bytes = field(repr=False)


#: Decode (and decrypt) a stored Secret; raises with the reason it cannot be read.
SecretReader = Callable[[StoredSecret, tuple[str, str]], Object]


class SecretUnreadable(ValueError):
    """A Secret that is stored but cannot be read (encrypted with a key the edge does not
    hold, corrupt...); the message says why, the caller names the Secret."""


#: Kinds that only ever change a backend's servers, never its routes (pods mode).
SERVER_KINDS = frozenset({"EndpointSlice", "Endpoints"})


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class ClusterIndex:
    """Decoded objects grouped by kind and (namespace, name); updated in place."""

    by_kind: dict[str, dict[tuple[str, str], Object]] = field(default_factory=dict)
    slices_by_service: dict[tuple[str, str], dict[str, Object]] = field(default_factory=dict)
    stored_secrets: dict[tuple[str, str], StoredSecret] = field(default_factory=dict)
    secret_reader: SecretReader | None = None
    # Bumped when what the reader does changes (new keys): what was read is read again.
    reader_generation: int = 0
    # The Secrets the last build read, decoded: kept while routes name them (the next
    # build keeps only those it reads again), each with the stored value it came from.
    _decoded: dict[tuple[str, str], tuple[StoredSecret, int, Object]] = field(default_factory=dict)
    # During a build (secret_reads): what it read, and the Secrets it could not read.
    _read: dict[tuple[str, str], tuple[StoredSecret, Object | SecretUnreadable]] | None = None
    _unreadable: dict[tuple[str, str], str] | None = None
    # What changed since the owner last called settle(): (kind, namespace, name) of each
    # object added or removed, and ("service", namespace, name) of each Service whose
    # servers may have changed with it.  A build replays an object's trace only while
    # nothing it depends on is here (catalog.builder).  A new index has all touched.
    touched: set[tuple[str, str, str]] = field(default_factory=set)

    def settle(self) -> None:
        """A catalog built from this index is now the one to build the next from."""
        self.touched = set()

    def _touch(self, kind: str, ident: tuple[str, str], obj: Object | None) -> None:
        self.touched.add((kind, *ident))
        service = served_service(obj) if obj is not None else None
        if service is not None:
            self.touched.add(("service", *service))
        elif kind == "Service":
            self.touched.add(("service", *ident))

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
        self._touch(kind, ident, obj)
        self.by_kind.setdefault(kind, {})[ident] = obj
        service = served_service(obj)
        if kind == "EndpointSlice" and service is not None:
            self.slices_by_service.setdefault(service, {})[ident[1]] = obj

    def discard(self, obj: Object, ident: tuple[str, str] | None = None) -> None:
        """Forget ``obj`` -- only if it is the object indexed under ``ident``."""
        ident = ident or _ident(obj)
        if ident is None:
            return
        self._touch(str(obj["kind"]), ident, obj)
        objects = self.by_kind.get(str(obj["kind"]), {})
        if objects.get(ident) is obj:
            del objects[ident]
        service = served_service(obj)
        slices = self.slices_by_service.get(service) if service is not None else None
        if service is not None and slices is not None and slices.get(ident[1]) is obj:
            del slices[ident[1]]
            if not slices:
                del self.slices_by_service[service]

    def store_secret(self, secret: StoredSecret, ident: tuple[str, str]) -> None:
        self._touch("Secret", ident, None)
        self.stored_secrets[ident] = secret
        self._decoded.pop(ident, None)

    def forget_secret(self, secret: StoredSecret, ident: tuple[str, str]) -> None:
        """Forget ``secret`` -- only if it is the one held under ``ident``."""
        if self.stored_secrets.get(ident) is secret:
            self._touch("Secret", ident, None)
            del self.stored_secrets[ident]
            self._decoded.pop(ident, None)

    def secret(self, namespace: str, name: str) -> Object | None:
        """The Secret ``namespace/name``, decoded now if it is held as stored; None if
        there is none.  Raises :class:`SecretUnreadable` when it cannot be read."""
        decoded = self.get("Secret", namespace, name)
        ident = (namespace, name)
        stored = self.stored_secrets.get(ident)
        if decoded is not None or stored is None:
            return decoded
        read = self._read.get(ident) if self._read is not None else None
        if read is None or read[0] is not stored:
            read = (stored, self._decode_secret(stored, ident))
            if self._read is not None:
                self._read[ident] = read
        found = read[1]
        if isinstance(found, SecretUnreadable):
            if self._unreadable is not None:
                self._unreadable[ident] = str(found)
            raise SecretUnreadable(str(found))
        return found

    def _decode_secret(
        self, stored: StoredSecret, ident: tuple[str, str]
    ) -> Object | SecretUnreadable:
        kept = self._decoded.get(ident)
        if kept is not None and kept[0] is stored and kept[1] == self.reader_generation:
            return kept[2]
        try:
            if self.secret_reader is None:
                raise SecretUnreadable("no reader for stored Secrets")
            return self.secret_reader(stored, ident)
        except Exception as exc:  # whatever the value does, it is this Secret's problem
            return SecretUnreadable(str(exc) if isinstance(exc, SecretUnreadable) else _reason(exc))

    @contextmanager
    def secret_reads(self) -> Iterator[dict[tuple[str, str], str]]:
        """The Secrets one build reads: each decoded once, and kept after it only while
        that build's routes name it -- a Secret no route names any more is let go.

        Yields the Secrets that could not be read, with why, filled as the build
        asks for them.
        """
        generation = self.reader_generation
        self._read, self._unreadable = {}, {}
        try:
            yield self._unreadable
        finally:
            read, self._read, self._unreadable = self._read, None, None
            self._decoded = {
                ident: (stored, generation, found)
                for ident, (stored, found) in read.items()
                if not isinstance(found, SecretUnreadable)
            }

    def forget_decoded(self) -> None:
        """What reads Secrets changed (keys added or removed): read them all again."""
        self.reader_generation += 1
        self._decoded = {}


def _reason(exc: Exception) -> str:
    """Why a stored value is not read: a decode error's reason, or the error itself."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


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
