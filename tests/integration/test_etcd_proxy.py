"""The watcher through etcd's own gRPC proxy (``etcd grpc-proxy start``, as the
watcher role runs it with ``watcher_etcd_proxy: true``), against a real etcd with
client certificates: the proxy reaches etcd with the edge's certificate, and its
own loopback listener asks the watcher for a certificate of a node-local CA.

What is measured is etcd's own view (``etcd_debugging_mvcc_watch_stream_total`` and
``etcd_debugging_mvcc_watcher_total`` on its /metrics): readers behind one proxy
share one watch stream and one watcher per prefix, however many they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Etcd,
    EtcdProxy,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    free_port,
    http_get,
    ingress,
    service,
    storage_key,
    storage_value,
    wait_for,
    watcher_config,
)
from test_etcd_source import make_pki

from breakwater.cluster.source import Change, Compacted, EtcdSettings, EtcdSource, SourceError
from breakwater.config import load_config, read_resources

EDGE_USER = "breakwater-edge"


@dataclass
class Proxied:
    etcd: Etcd
    proxy: EtcdProxy
    pki: dict[str, str]  # the cluster's etcd CA, its server and the clients' certificates
    local: dict[str, str]  # the node-local CA of the proxy's listener

    def direct(self, user: str = "client") -> EtcdSettings:
        """Straight to etcd, with a certificate of the etcd CA."""
        return EtcdSettings(
            endpoints=(self.etcd.endpoint,),
            ca_file=self.pki["ca"],
            cert_file=self.pki[f"{user}_cert"],
            key_file=self.pki[f"{user}_key"],
            timeout=3,
            backoff_initial=0.1,
            backoff_max=1.0,
        )

    def through(self) -> EtcdSettings:
        """Through the proxy, with the node-local certificate its listener asks for."""
        return EtcdSettings(
            endpoints=(self.proxy.endpoint,),
            ca_file=self.local["ca"],
            cert_file=self.local["client_cert"],
            key_file=self.local["client_key"],
            timeout=3,
        )

    def put(self, key: str, value: bytes, user: str = "client") -> int:
        return int(run(self.direct(user), lambda source: source.put(key, value)))

    def store(self, obj: dict[str, Any], user: str = "client") -> int:
        return self.put(storage_key(obj), storage_value(obj), user)

    def compact(self, revision: int) -> None:
        etcdctl(self, "compaction", "--physical", str(revision), user="client")


def run(settings: EtcdSettings, action: Any) -> Any:
    async def go() -> Any:
        source = EtcdSource(settings, [])
        try:
            return await action(source)
        finally:
            await source.disconnect()

    return asyncio.run(go())


def cn_less_client(pki: dict[str, str], name: str = "proxy") -> dict[str, str]:
    """A client certificate of the etcd CA with no common name: the only kind etcd's
    gRPC proxy accepts for its connection to etcd (it exits with "cert has non empty
    Common Name" otherwise, so that its clients cannot all act as one etcd user)."""
    directory = Path(pki["ca"]).parent

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    (directory / f"{name}.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=breakwater-edge",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip
    return {
        "ca": pki["ca"],
        "client_cert": str(directory / f"{name}.crt"),
        "client_key": str(directory / f"{name}.key"),
    }


def start(tmp_path: Path, clients: tuple[str, ...] = ()) -> Proxied:
    pki = make_pki(tmp_path / "pki", clients=clients)
    local = make_pki(tmp_path / "local")  # server: 127.0.0.1; client: the watcher's
    server = Etcd(tmp_path / "etcd", tls=pki, metrics_port=free_port())
    server.start()
    wait_for(lambda: server.watch_counts(), what="etcd's /metrics")
    proxy = EtcdProxy(tmp_path / "proxy", server, cn_less_client(pki), local)
    return Proxied(server, proxy, pki, local)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    setup = start(tmp_path)
    setup.proxy.start()
    # The proxy's own stream: it watches for the loss of etcd's leader.
    wait_for(lambda: setup.etcd.watch_counts()[0] >= 1, what="the proxy's own watch")
    yield setup
    setup.proxy.stop()
    setup.etcd.stop()


def default_resources() -> list[str]:
    return read_resources(load_config(document={}, environ={}))


class Reader:
    """What the watcher's follower does with its source: list, then watch from the
    next revision; keeps every change it sees."""

    def __init__(self, settings: EtcdSettings) -> None:
        self.source = EtcdSource(settings, default_resources())
        self.changes: list[Change] = []
        self.watching = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def follow(self) -> None:
        revision, _values = await self.source.list_all()
        async for batch in self.source.watch(revision + 1):
            self.watching.set()
            self.changes.extend(batch)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.follow())
        await asyncio.wait_for(self.watching.wait(), 10)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with_errors = await asyncio.gather(self.task, return_exceptions=True)
        assert all(isinstance(e, asyncio.CancelledError) for e in with_errors), with_errors
        await self.source.disconnect()


async def settle(etcd: Etcd, expected: tuple[int, int]) -> tuple[int, int]:
    """etcd's counts once they are ``expected`` (or whatever they are after 5 s)."""
    counts = await asyncio.to_thread(etcd.watch_counts)
    for _ in range(100):
        if counts == expected:
            break
        await asyncio.sleep(0.05)
        counts = await asyncio.to_thread(etcd.watch_counts)
    return counts


def serves(haproxy: HAProxy, host: str, expected: str) -> bool:
    status, body = http_get(haproxy.http_port, host)
    return status == 200 and body.startswith(expected + " ")


def test_the_watcher_serves_through_the_proxy(proxied, haproxy, backends, tmp_path) -> None:
    idle = proxied.etcd.watch_counts()
    web, shop = backends("web"), backends("shop")
    for obj in (
        service("shop", "web"),
        endpoint_slice("shop", "web", [web.endpoint]),
        ingress("shop", "web", "www.example.com", "web"),
    ):
        proxied.store(obj)
    through = proxied.through()
    path = watcher_config(
        tmp_path,
        proxied.etcd,
        haproxy,
        etcd={
            "endpoints": list(through.endpoints),
            "ca_file": through.ca_file,
            "cert_file": through.cert_file,
            "key_file": through.key_file,
        },
    )
    process = WatcherProcess(path, tmp_path / "watcher.log")
    process.start()
    try:
        wait_for(lambda: serves(haproxy, "www.example.com", "web"), what="the first list")
        # A change after the list arrives through the proxy's watch.
        proxied.store(service("shop", "shop"))
        proxied.store(endpoint_slice("shop", "shop", [shop.endpoint]))
        proxied.store(ingress("shop", "shop", "shop.example.com", "shop"))
        wait_for(lambda: serves(haproxy, "shop.example.com", "shop"), what="a watched change")
        prefixes = len(EtcdSource(through, default_resources()).prefixes)
        # One more stream on etcd (the proxy's, for its clients), one watcher a prefix.
        expected = (idle[0] + 1, idle[1] + prefixes)
        assert asyncio.run(settle(proxied.etcd, expected)) == expected
    finally:
        assert process.stop() == 0
    assert f"connected to etcd {proxied.proxy.endpoint}" in process.log()


def test_more_readers_behind_the_proxy_add_no_watch_on_etcd(proxied) -> None:
    async def go() -> None:
        etcd = proxied.etcd
        idle = await asyncio.to_thread(etcd.watch_counts)
        readers = [Reader(proxied.through()) for _ in range(3)]
        prefixes = len(readers[0].source.prefixes)
        shared = (idle[0] + 1, idle[1] + prefixes)
        for reader in readers:
            await reader.start()
            assert await settle(etcd, shared) == shared
        # One reader straight to etcd, for contrast: a stream and its watchers of its own.
        direct = Reader(proxied.direct())
        await direct.start()
        alone = (shared[0] + 1, shared[1] + prefixes)
        assert await settle(etcd, alone) == alone

        obj = ingress("shop", "web", "www.example.com", "web")
        revision = await asyncio.to_thread(proxied.store, obj)
        for reader in [*readers, direct]:
            for _ in range(100):
                if reader.changes:
                    break
                await asyncio.sleep(0.05)
            assert [(c.key, c.revision) for c in reader.changes] == [(storage_key(obj), revision)]
        for reader in [*readers, direct]:
            await reader.stop()
        assert await settle(etcd, idle) == idle

    asyncio.run(go())


def test_a_compacted_revision_through_the_proxy_is_reported_as_such(proxied) -> None:
    """The follower re-lists when its revision is compacted: the proxy must say so,
    with a reader on the same prefixes already watching (a shared watch, ahead)."""

    async def go() -> None:
        first = await asyncio.to_thread(proxied.put, "/registry/ingress/shop/a", b"1")
        last = 0
        for n in range(5):
            last = await asyncio.to_thread(proxied.put, "/registry/ingress/shop/a", b"%d" % n)
        await asyncio.to_thread(proxied.compact, last)
        watching = Reader(proxied.through())
        await watching.start()
        late = EtcdSource(proxied.through(), default_resources())
        try:
            with pytest.raises(Compacted):
                async for _batch in late.watch(first):
                    pass
        finally:
            await late.disconnect()
            await watching.stop()

    asyncio.run(go())


def test_a_page_larger_than_grpc_message_defaults(proxied) -> None:
    """One list page of 500 keys may be large (Secrets, ConfigMaps): 6 MiB in one
    Range response passes the proxy (its --max-send-bytes limits what it sends etcd)."""
    value = os.urandom(100 * 1024)
    for n in range(60):
        proxied.put(f"/registry/configmaps/big/cm-{n:02}", value)

    async def go() -> dict[str, bytes]:
        source = EtcdSource(proxied.through(), default_resources())
        try:
            return (await source.list_all())[1]
        finally:
            await source.disconnect()

    values = asyncio.run(go())
    assert len(values) == 60 and all(v == value for v in values.values())


def test_etcd_restarting_behind_the_proxy(proxied) -> None:
    """etcd goes away and comes back: the proxy's client resumes its watch, the
    reader's stream to the proxy stays open, and a change made afterwards arrives."""

    async def go() -> None:
        reader = Reader(proxied.through())
        await reader.start()
        await asyncio.to_thread(proxied.etcd.stop)
        await asyncio.sleep(1)
        await asyncio.to_thread(proxied.etcd.start)
        revision = await asyncio.to_thread(
            wait_for, lambda: proxied.put("/registry/ingress/shop/b", b"x"), 20, "etcd back"
        )
        for _ in range(200):
            if reader.changes:
                break
            await asyncio.sleep(0.05)
        assert [(c.key, c.revision) for c in reader.changes] == [
            ("/registry/ingress/shop/b", revision)
        ]
        assert reader.task is not None and not reader.task.done()  # never dropped
        await reader.stop()

    asyncio.run(go())


def etcdctl(proxied: Proxied, *args: str, user: str = "root") -> None:
    subprocess.run(
        [
            "etcdctl",
            f"--endpoints={proxied.etcd.endpoint}",
            f"--cacert={proxied.pki['ca']}",
            f"--cert={proxied.pki[f'{user}_cert']}",
            f"--key={proxied.pki[f'{user}_key']}",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


def test_the_proxy_refuses_a_certificate_with_a_common_name(tmp_path) -> None:
    """The edge's own certificate (CN breakwater-edge, its etcd user) cannot be the
    proxy's: etcd grpc-proxy exits at once and says why."""
    setup = start(tmp_path, clients=(EDGE_USER,))
    pki = setup.pki
    setup.proxy.tls = {
        "ca": pki["ca"],
        "client_cert": pki[f"{EDGE_USER}_cert"],
        "client_key": pki[f"{EDGE_USER}_key"],
    }
    try:
        proxy = subprocess.run(setup.proxy.command(), capture_output=True, text=True, timeout=20)
        assert proxy.returncode != 0
        assert f"cert has non empty Common Name ({EDGE_USER})" in proxy.stderr
    finally:
        setup.etcd.stop()


def test_a_client_without_the_local_certificate_is_refused(proxied) -> None:
    """The proxy's listener asks for a certificate of the node-local CA: a local
    process without the watcher's key reads nothing through it."""
    anonymous = dataclasses.replace(proxied.through(), cert_file=None, key_file=None)
    with pytest.raises(SourceError, match=proxied.proxy.endpoint):
        run(anonymous, lambda source: source.range("/registry/", prefix=True))
    # With the etcd CA's client certificate (not the local one): refused as well.
    other = dataclasses.replace(
        proxied.through(), cert_file=proxied.pki["client_cert"], key_file=proxied.pki["client_key"]
    )
    with pytest.raises(SourceError, match=proxied.proxy.endpoint):
        run(other, lambda source: source.range("/registry/", prefix=True))
    assert run(proxied.through(), lambda source: source.range("/registry/", prefix=True)) == []


def test_with_authentication_on_the_proxy_reads_nothing(tmp_path) -> None:
    """etcd's authentication names users by certificate CN; the proxy's certificate
    has none, so with authentication on etcd refuses what it forwards (the watcher
    sends no user name and password).  The proxy is for an etcd without it."""
    setup = start(tmp_path, clients=("root",))
    try:
        wait_for(lambda: etcdctl(setup, "endpoint", "health") is None, what="etcd")
        etcdctl(setup, "user", "add", "root", "--no-password")
        etcdctl(setup, "user", "grant-role", "root", "root")
        etcdctl(setup, "auth", "enable")
        setup.proxy.start()
        setup.put("/registry/ingress/shop/web", b"x", user="root")
        with pytest.raises(SourceError, match="permission denied"):
            run(setup.through(), lambda source: source.range("/registry/ingress/", prefix=True))
    finally:
        setup.proxy.stop()
        setup.etcd.stop()
