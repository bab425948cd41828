"""The etcd source: one connection, a consistent list, then one watch stream.

Built on aetcd (asyncio, fast protobuf, watch from a revision, typed errors for a
compacted revision and a lost connection).  aetcd opens only plaintext channels to
one host and has no paginated or point-in-time list, so :class:`EtcdClient` adds
TLS (CA, client certificate and key) and failover across several endpoints, and
:meth:`EtcdSource.list` pages through each prefix at one revision.

The source only reads: it never writes to the cluster's etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import exceptions as etcd_errors
from aetcd import rpc, watcher
from aetcd.utils import prefix_range_end

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # keys per Range call, as the API server pages its own lists
KEEPALIVE_OPTIONS = {
    # Detect a dead peer on an idle stream (etcd's default minimum is 5 s).
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
}


class SourceError(Exception):
    """etcd could not be reached or answered an error; names the endpoint."""


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
    timeout: float = 5.0
    backoff_initial: float = 0.2
    backoff_max: float = 10.0


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


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


class EtcdClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with TLS and a channel to the endpoint we choose."""

    def __init__(self, endpoint: str, settings: EtcdSettings) -> None:
        host, port, tls = parse_endpoint(endpoint)
        super().__init__(host=host, port=port, timeout=settings.timeout)
        self.endpoint = endpoint
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
        options = list(KEEPALIVE_OPTIONS.items())
        if self._credentials is not None:
            self.channel = grpc.aio.secure_channel(target, self._credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=options)
        self.kvstub = rpc.KVStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout)
        self._connected.set()


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
        base = self.settings.prefix.rstrip("/") + "/"
        prefixes = [(base + resource).encode() for resource in self.resources]
        if self.settings.routes_prefix:
            prefixes.append(self.settings.routes_prefix.encode())
        return prefixes

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
                await asyncio.wait_for(
                    client.maintenancestub.Status(
                        rpc.StatusRequest(), timeout=self.settings.timeout
                    ),
                    self.settings.timeout + 1,
                )
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
        pending: asyncio.Future[Any] | None = None

        def request(start: bytes, end: bytes) -> asyncio.Future[Any]:
            range_request = rpc.RangeRequest(
                key=start, range_end=end, limit=PAGE_SIZE, revision=revision
            )
            call = client.kvstub.Range(range_request, timeout=self.settings.timeout)
            future: asyncio.Future[Any] = asyncio.ensure_future(call)
            return future

        try:
            for prefix in self.prefixes:
                end = prefix_range_end(prefix)
                pending = request(prefix, end)
                while pending is not None:
                    try:
                        response = await pending
                    except grpc.aio.AioRpcError as exc:
                        if "compacted" in (exc.details() or ""):
                            raise Compacted(_describe(exc)) from exc
                        raise SourceError(
                            f"etcd {client.endpoint}: list failed: {_describe(exc)}"
                        ) from exc
                    pending = None
                    revision = revision or response.header.revision
                    if response.more and response.kvs:
                        pending = request(response.kvs[-1].key + b"\x00", end)
                    yield revision, [(kv.key.decode(), kv.value) for kv in response.kvs]
        finally:
            if pending is not None:
                pending.cancel()

    async def watch(self, start_revision: int) -> AsyncIterator[list[Change]]:
        """Batches of changes from ``start_revision`` on, across all prefixes.

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

