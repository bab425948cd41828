"""The etcd source: one connection, a consistent list, then one watch stream.

Built on aetcd (asyncio, fast protobuf, watch from a revision, typed errors for a
compacted revision and a lost connection).  aetcd opens only plaintext channels to
one host and has no paginated or point-in-time read, so :class:`EtcdClient`, the one
small adapter over it, adds TLS (CA, client certificate and key) and paged reads at
a revision; :class:`EtcdSource` adds failover across several endpoints and pages
through each prefix at one revision.  Nothing outside this module touches aetcd.

The source reads; it writes (:meth:`EtcdSource.put`, :meth:`EtcdSource.delete`)
only when a caller asks -- the plain-route module does, the watcher never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import exceptions as etcd_errors
from aetcd import rpc, watcher
from aetcd.utils import prefix_range_end

from breakwater.cluster.keys import read_prefixes

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # keys per Range call, as the API server pages its own lists
CHANNEL_OPTIONS = {
    # Detect a dead peer on an idle stream (etcd's default minimum is 5 s).
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    # Each reconnect opens a new channel, and the follower's backoff says when.  By
    # default gRPC shares connections between channels to the same address, and one
    # that failed waits out gRPC's own backoff (up to 2 minutes) before it tries
    # again: after a 30 s outage, new channels failed at once for 8-12 s after etcd
    # was back.  A channel of its own connects when it is asked to.
    "grpc.use_local_subchannel_pool": 1,
}


class SourceError(Exception):
    """etcd could not be reached or answered an error; names the endpoint."""


class NotFound(SourceError):
    """An etcd user or role that does not exist."""


class Compacted(Exception):
    """The revision to resume from was compacted away: re-list."""


@dataclass(frozen=True)
class EtcdSettings:
    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    prefix: str = "/registry"
    # Plain routes, backends outside Kubernetes (cluster.plain_routes); "" turns them off.
    routes_prefix: str = "/breakwater/routes/"
    # The API server's EncryptionConfiguration, to read Secrets encrypted at rest
    # (breakwater.k8s.encryption); None or "": none.
    encryption_config: str | None = None
    timeout: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 2.0


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd holds it."""

    key: str
    value: bytes
    mod_revision: int  # revision of its last change
    version: int  # changes since it was created


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: the key was deleted
    revision: int


def parse_endpoint(endpoint: str) -> tuple[str, int, bool]:
    """``https://host:port`` / ``host:port`` -> (host, port, tls)."""
    url = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if url.scheme not in ("", "http", "https") or not url.hostname:
        raise ValueError(f"etcd endpoint {endpoint!r} is not http(s)://host:port")
    return url.hostname, url.port or 2379, url.scheme == "https"


def key_range(key: str, prefix: bool = False) -> tuple[bytes, bytes]:
    """The Range over ``key`` alone, or over every key under it: (start, end)."""
    start = key.encode()
    if not start:
        raise ValueError("an etcd key is never empty")
    return start, prefix_range_end(start) if prefix else b""


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


class EtcdClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with TLS, a channel to the endpoint we choose, and the two
    requests aetcd has no method for: a status check and one page of a Range at a
    revision.  The only code that knows aetcd's internals."""

    def __init__(self, endpoint: str, settings: EtcdSettings) -> None:
        host, port, tls = parse_endpoint(endpoint)
        super().__init__(host=host, port=port, timeout=settings.timeout)
        self.endpoint = endpoint
        self.timeout = settings.timeout
        self._credentials = None
        if tls or settings.ca_file:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(settings.ca_file),
                private_key=_read(settings.key_file),
                certificate_chain=_read(settings.cert_file),
            )

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        options = list(CHANNEL_OPTIONS.items())
        if self._credentials is not None:
            self.channel = grpc.aio.secure_channel(target, self._credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.kvstub = rpc.KVStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout)
        self._connected.set()

    async def check(self) -> None:
        """Ask the endpoint for its status; raises when it does not answer in time."""
        status = self.maintenancestub.Status(rpc.StatusRequest(), timeout=self.timeout)
        await asyncio.wait_for(status, self.timeout + 1)

    async def auth(self, method: str, what: str, **fields: Any) -> Any:
        """One call of etcd's Auth service (``RoleGet``, ``UserAdd``...: the request is
        ``Auth<method>Request(**fields)``), for cluster.access; raises
        :class:`NotFound` for a user or role that does not exist, else
        :class:`SourceError` naming ``what`` failed."""
        request = getattr(rpc, f"Auth{method}Request")(**fields)
        try:
            return await getattr(rpc.AuthStub(self.channel), method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            error = NotFound if "not found" in (exc.details() or "") else SourceError
            raise error(f"etcd {self.endpoint}: {what} failed: {_describe(exc)}") from exc

    def range_page(self, start: bytes, end: bytes, revision: int) -> Awaitable[Any]:
        """One page (:data:`PAGE_SIZE` keys) of [start, end) at ``revision`` (0: now);
        an etcd RangeResponse, raising grpc's errors as they are."""
        request = rpc.RangeRequest(key=start, range_end=end, limit=PAGE_SIZE, revision=revision)
        return self.kvstub.Range(request, timeout=self.timeout)  # type: ignore[no-any-return]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__


@dataclass
class EtcdSource:
    """List-then-watch over the resource prefixes the catalog needs."""

    settings: EtcdSettings
    resources: Sequence[str]  # directories under the prefix, e.g. "services/specs/"
    client: EtcdClient | None = None
    _endpoint_index: int = field(default=0)

    @property
    def prefixes(self) -> list[bytes]:
        prefixes = read_prefixes(
            self.settings.prefix, self.settings.routes_prefix, list(self.resources)
        )
        return [prefix.encode() for prefix in prefixes]

    async def connect(self) -> EtcdClient:
        """Connect to the next endpoint that answers; raises :class:`SourceError`."""
        if self.client is not None:
            return self.client
        errors = []
        endpoints = self.settings.endpoints
        for attempt in range(len(endpoints)):
            endpoint = endpoints[(self._endpoint_index + attempt) % len(endpoints)]
            client = EtcdClient(endpoint, self.settings)
            try:
                await client.connect()
                await client.check()
            except (TimeoutError, grpc.aio.AioRpcError, OSError, etcd_errors.ClientError) as exc:
                errors.append(f"{endpoint}: {_describe(exc)}")
                await client.close()
                continue
            self._endpoint_index = (self._endpoint_index + attempt) % len(endpoints)
            self.client = client
            log.info("connected to etcd %s", endpoint)
            return client
        raise SourceError("no etcd endpoint answered: " + "; ".join(errors))

    async def disconnect(self, rotate: bool = False) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                log.debug("closing etcd client failed", exc_info=True)
        if rotate:
            self._endpoint_index = (self._endpoint_index + 1) % len(self.settings.endpoints)

    async def list_all(self) -> tuple[int, dict[str, bytes]]:
        """Every key under the prefixes, read at one revision: (revision, values)."""
        values: dict[str, bytes] = {}
        revision = 0
        async for page_revision, page in self.list_pages():
            revision = page_revision
            values.update(page)
        return revision, values

    async def list_pages(self) -> AsyncIterator[tuple[int, list[tuple[str, bytes]]]]:
        """Every key under the prefixes, read at one revision, a page at a time.

        Yields (revision, [(key, value), ...]).  The next page is already requested
        while the caller works on this one.
        """
        client = await self.connect()
        revision = 0
        for prefix in self.prefixes:
            async for response in self._range(
                client, prefix, prefix_range_end(prefix), revision, "list"
            ):
                revision = revision or response.header.revision
                yield revision, [(kv.key.decode(), kv.value) for kv in response.kvs]

    async def range(self, key: str, prefix: bool = False) -> list[KeyValue]:
        """``key``, or with ``prefix`` every key under it, read at one revision."""
        client = await self.connect()
        start, end = key_range(key, prefix)
        found: list[KeyValue] = []
        async for response in self._range(client, start, end, 0, f"read {key}"):
            found.extend(
                KeyValue(kv.key.decode(errors="replace"), kv.value, kv.mod_revision, kv.version)
                for kv in response.kvs
            )
        return found

    async def get(self, key: str) -> KeyValue | None:
        """``key`` as stored, or None when it does not exist."""
        found = await self.range(key)
        return found[0] if found else None

    async def put(self, key: str, value: bytes) -> int:
        """Store ``value`` at ``key`` (only when a caller asks); the new revision."""
        client = await self.connect()
        try:
            result = await client.put(key_range(key)[0], value)
        except (grpc.aio.AioRpcError, etcd_errors.ClientError, TimeoutError) as exc:
            raise SourceError(
                f"etcd {client.endpoint}: put {key} failed: {_describe(exc)}"
            ) from exc
        return int(result.header.revision)

    async def delete(self, key: str) -> bool:
        """Delete ``key`` (only when a caller asks); whether it existed."""
        client = await self.connect()
        try:
            result = await client.delete(key_range(key)[0])
        except (grpc.aio.AioRpcError, etcd_errors.ClientError, TimeoutError) as exc:
            raise SourceError(
                f"etcd {client.endpoint}: delete {key} failed: {_describe(exc)}"
            ) from exc
        return result is not None

    @staticmethod
    async def _range(
        client: EtcdClient, start: bytes, end: bytes, revision: int, what: str
    ) -> AsyncIterator[Any]:
        """The RangeResponses of [start, end), page by page, all at one revision (the
        first page's when ``revision`` is 0).  The next page is already requested while
        the caller works on this one."""
        pending: asyncio.Future[Any] | None = asyncio.ensure_future(
            client.range_page(start, end, revision)
        )
        try:
            while pending is not None:
                try:
                    response = await pending
                except grpc.aio.AioRpcError as exc:
                    if "compacted" in (exc.details() or ""):
                        raise Compacted(_describe(exc)) from exc
                    raise SourceError(
                        f"etcd {client.endpoint}: {what} failed: {_describe(exc)}"
                    ) from exc
                pending = None
                revision = revision or response.header.revision
                if response.more and response.kvs:
                    following = response.kvs[-1].key + b"\x00"
                    pending = asyncio.ensure_future(client.range_page(following, end, revision))
                yield response
        finally:
            if pending is not None:
                pending.cancel()

    async def watch(self, start_revision: int) -> AsyncIterator[list[Change]]:
        """Batches of changes from ``start_revision`` on, across all prefixes; the
        first batch is empty and comes as soon as etcd has accepted every watch.

        Raises :class:`Compacted` when ``start_revision`` is gone and
        :class:`SourceError` when the stream breaks.
        """
        client = await self.connect()
        queue: asyncio.Queue[list[Change] | BaseException] = asyncio.Queue()
        watches = []
        tasks = []

        async def pump(watch: aetcd.rtypes.Watch) -> None:
            try:
                async for event in watch:
                    kv = event.kv
                    value = kv.value if event.kind == "PUT" else None
                    await queue.put([Change(kv.key.decode(), value, kv.mod_revision)])
                await queue.put(SourceError(f"etcd {client.endpoint}: watch ended"))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                await queue.put(exc)

        try:
            try:
                for prefix in self.prefixes:
                    watch = await client.watch(
                        prefix, range_end=prefix_range_end(prefix), start_revision=start_revision
                    )
                    watches.append(watch)
                    tasks.append(asyncio.create_task(pump(watch)))
                log.debug("watching %d prefixes from revision %d", len(watches), start_revision)
            except BaseException as exc:
                raise self._translate(client, exc) from exc
            yield []  # every watch is established: the follower is connected again
            while True:
                item = await queue.get()
                log.debug("watch item %r", item)
                if isinstance(item, BaseException):
                    raise self._translate(client, item) from item
                batch = item
                while not queue.empty():  # coalesce what already arrived
                    more = queue.get_nowait()
                    if isinstance(more, BaseException):
                        queue.put_nowait(more)
                        break
                    batch.extend(more)
                yield batch
        finally:
            for task in tasks:
                task.cancel()
            for watch in watches:
                # the stream may be gone already
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(watch.cancel(), 1)

    @staticmethod
    def _translate(client: EtcdClient, exc: BaseException) -> Exception:
        if isinstance(exc, etcd_errors.RevisionCompactedError):
            return Compacted(str(exc))
        if isinstance(exc, (Compacted, SourceError)):
            return exc
        return SourceError(f"etcd {client.endpoint}: watch failed: {_describe(exc)}")
