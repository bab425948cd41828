"""The etcd source's reads and writes over a stand-in client: ranges, paging at one
revision, and errors that name the endpoint (the real etcd: tests/integration)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aetcd import exceptions as etcd_errors

from breakwater.cluster.source import (
    EtcdSettings,
    EtcdSource,
    KeyValue,
    SourceError,
    key_range,
)


@dataclass
class StandInClient:
    """What EtcdSource uses of EtcdClient, over a dict; pages of ``page_size`` keys."""

    keys: dict[bytes, bytes]
    page_size: int = 2
    revision: int = 7
    endpoint: str = "https://etcd-a:2379"
    requests: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    fail_writes: bool = False

    async def range_page(self, start: bytes, end: bytes, revision: int) -> Any:
        self.requests.append((start, end, revision))
        inside = sorted(k for k in self.keys if (k == start if not end else start <= k < end))
        page = inside[: self.page_size]
        kvs = [SimpleNamespace(key=k, value=self.keys[k], mod_revision=3, version=1) for k in page]
        return SimpleNamespace(
            header=SimpleNamespace(revision=self.revision),
            kvs=kvs,
            more=len(inside) > len(page),
        )

    async def put(self, key: bytes, value: bytes) -> Any:
        if self.fail_writes:
            raise etcd_errors.ConnectionFailedError("connection refused")
        self.keys[key] = value
        self.revision += 1
        return SimpleNamespace(header=SimpleNamespace(revision=self.revision))

    async def delete(self, key: bytes) -> Any:
        if self.fail_writes:
            raise etcd_errors.ConnectionFailedError("connection refused")
        return SimpleNamespace() if self.keys.pop(key, None) is not None else None

    async def close(self) -> None:
        pass


def source_over(client: StandInClient, resources: list[str] | None = None) -> EtcdSource:
    settings = EtcdSettings(endpoints=(client.endpoint,), routes_prefix="")
    return EtcdSource(settings, resources or [], client=client)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("/breakwater/routes/a", False, (b"/breakwater/routes/a", b"")),
        ("/breakwater/routes/", True, (b"/breakwater/routes/", b"/breakwater/routes0")),
        (
            "/registry/services/specs/",
            True,
            (b"/registry/services/specs/", b"/registry/services/specs0"),
        ),
        ("a\xff", True, (b"a\xc3\xbf", b"a\xc3\xc0")),
    ],
)
def test_key_range(key: str, prefix: bool, expected: tuple[bytes, bytes]) -> None:
    assert key_range(key, prefix) == expected


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="never empty"):
        key_range("", prefix=True)


def test_range_pages_through_a_prefix_at_the_first_pages_revision() -> None:
    keys = {f"/r/{n}".encode(): f"v{n}".encode() for n in range(5)}
    keys[b"/s/outside"] = b"x"
    client = StandInClient(keys)
    found = asyncio.run(source_over(client).range("/r/", prefix=True))
    assert found == [KeyValue(f"/r/{n}", f"v{n}".encode(), 3, 1) for n in range(5)]
    assert client.requests == [
        (b"/r/", b"/r0", 0),
        (b"/r/1\x00", b"/r0", 7),
        (b"/r/3\x00", b"/r0", 7),
    ]


def test_get_is_one_key_or_none() -> None:
    client = StandInClient({b"/a": b"1", b"/ab": b"2"})
    source = source_over(client)
    assert asyncio.run(source.get("/a")) == KeyValue("/a", b"1", 3, 1)
    assert asyncio.run(source.get("/b")) is None


def test_put_and_delete() -> None:
    client = StandInClient({})
    source = source_over(client)
    assert asyncio.run(source.put("/breakwater/routes/a", b"{}")) == 8
    assert client.keys == {b"/breakwater/routes/a": b"{}"}
    assert asyncio.run(source.delete("/breakwater/routes/a")) is True
    assert asyncio.run(source.delete("/breakwater/routes/a")) is False


@pytest.mark.parametrize("write", ["put", "delete"])
def test_a_failed_write_names_the_endpoint_and_the_key(write: str) -> None:
    source = source_over(StandInClient({}, fail_writes=True))
    call = source.put("/k", b"v") if write == "put" else source.delete("/k")
    with pytest.raises(SourceError, match=rf"etcd https://etcd-a:2379: {write} /k failed"):
        asyncio.run(call)


def test_list_all_reads_every_prefix_at_one_revision() -> None:
    keys = {b"/registry/a/1": b"1", b"/registry/a/2": b"2", b"/registry/a/3": b"3"}
    keys[b"/registry/b/1"] = b"4"
    client = StandInClient(keys)
    source = source_over(client, ["a/", "b/"])
    revision, values = asyncio.run(source.list_all())
    assert revision == 7
    assert values == {k.decode(): v for k, v in keys.items()}
    assert [r[2] for r in client.requests] == [0, 7, 7]
