"""The plugins' one face (breakwater.edge) and the source methods under it, against a
real etcd and HAProxy's own check: reads and writes, and a rendered configuration put
in place the way the watcher does it."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from builders import tls_secret
from harness import Etcd, endpoint_slice, ingress, service, store

from breakwater import edge
from breakwater.cluster import source as source_module
from breakwater.cluster.source import EtcdSettings, EtcdSource, KeyValue, SourceError
from breakwater.targets.staging import CheckFailed


def run_source(settings: EtcdSettings, steps: Any) -> Any:
    async def go() -> Any:
        source = EtcdSource(settings, [])
        try:
            return await steps(source)
        finally:
            await source.disconnect()

    return asyncio.run(go())


def test_source_get_put_delete_range(etcd: Etcd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "PAGE_SIZE", 2)  # several pages from a few keys
    # The first endpoint does not answer: the source fails over to the next one.
    settings = EtcdSettings(endpoints=("http://127.0.0.1:1", etcd.endpoint), timeout=2)

    async def steps(source: EtcdSource) -> dict[str, Any]:
        revisions = [await source.put(f"/t/{n}", f"v{n}".encode()) for n in range(5)]
        await source.put("/u", b"outside")
        await source.put("/t/1", b"again")
        return {
            "revisions": revisions,
            "range": await source.range("/t/", prefix=True),
            "one": await source.get("/t/1"),
            "missing": await source.get("/t/9"),
            "deleted": await source.delete("/t/0"),
            "deleted again": await source.delete("/t/0"),
            "after": [kv.key for kv in await source.range("/t/", prefix=True)],
            "exact": await source.range("/t/2"),
        }

    seen = run_source(settings, steps)
    assert seen["revisions"] == sorted(seen["revisions"])
    assert [(kv.key, kv.value, kv.version) for kv in seen["range"]] == [
        ("/t/0", b"v0", 1),
        ("/t/1", b"again", 2),
        ("/t/2", b"v2", 1),
        ("/t/3", b"v3", 1),
        ("/t/4", b"v4", 1),
    ]
    assert isinstance(seen["one"], KeyValue) and seen["one"].value == b"again"
    assert seen["one"].mod_revision > seen["revisions"][-1]
    assert seen["missing"] is None
    assert seen["deleted"] is True and seen["deleted again"] is False
    assert seen["after"] == ["/t/1", "/t/2", "/t/3", "/t/4"]
    assert [kv.key for kv in seen["exact"]] == ["/t/2"]


def test_source_errors_name_the_endpoint() -> None:
    settings = EtcdSettings(endpoints=("http://127.0.0.1:1",), timeout=1)
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:1"):
        run_source(settings, lambda source: source.put("/k", b"v"))


def test_routes_and_keys_through_the_face(etcd: Etcd) -> None:
    options = {"endpoints": [etcd.endpoint]}
    spec = {"hosts": ["billing.example.com"], "servers": [{"address": "10.1.0.5", "port": 80}]}
    assert edge.read_route(options, "billing") is None
    edge.write_route(options, "billing", spec)
    assert edge.read_route(options, "billing") == spec
    keys = edge.etcd_keys(options, ["/breakwater/routes/"], prefix=True)
    assert [(k["key"], k["encoding"], k["version"]) for k in keys] == [
        ("/breakwater/routes/billing", "utf-8", 1)
    ]
    edge.write_route(options, "billing", None)
    assert edge.read_route(options, "billing") is None
    assert edge.etcd_keys(options, ["/breakwater/routes/billing"], prefix=False) == []


def test_settings_output_reads_no_etcd() -> None:
    view = edge.edge_view(
        {"haproxy": {"maxconn": 100}}, {"endpoints": ["http://127.0.0.1:1"]}, "settings"
    )
    assert view == {"settings": view["settings"]} and view["settings"]["haproxy"]["maxconn"] == 100


def haproxy_view(etcd: Etcd, config_dir: Path) -> dict[str, Any]:
    settings = {
        "etcd": {"endpoints": [etcd.endpoint]},
        "haproxy": {
            "config_dir": str(config_dir),
            "config_file": str(config_dir / "haproxy.cfg"),
            "stats_socket": str(config_dir.parent / "admin.sock"),
            "master_socket": str(config_dir.parent / "master.sock"),
        },
        "catalog": {"allow_special_addresses": True},
    }
    current = config_dir / "haproxy.cfg"
    return edge.edge_view(
        settings, None, "haproxy", current.read_text() if current.exists() else None
    )


def install(view: dict[str, Any], config_dir: Path, check_mode: bool = False) -> dict[str, Any]:
    return edge.install_haproxy_config(
        str(config_dir / "haproxy.cfg"),
        view["config"],
        view["generation_dir"],
        {f["name"]: f["content"] for f in view["files"] if not f["secret"]},
        {f["name"]: f["content"] for f in view["files"] if f["secret"]},
        check_mode=check_mode,
    )


def test_install_haproxy_config_as_the_watcher_does(etcd: Etcd, tmp_path: Path) -> None:
    config_dir = tmp_path / "breakwater"
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [("127.0.0.1", 8080)]))
    store(etcd, tls_secret("shop", "www-tls"))
    store(etcd, ingress("shop", "web", "www.example.com", "web", tls_secret="www-tls"))
    first = haproxy_view(etcd, config_dir)
    assert any(f["secret"] for f in first["files"])

    check = install(first, config_dir, check_mode=True)
    assert check["changed"] and not config_dir.exists()
    done = install(first, config_dir)
    assert (
        done["written"]
        == check["written"]
        == (
            str(config_dir / "node-state.map"),
            first["generation_dir"],
            str(config_dir / "haproxy.cfg"),
        )
    )
    assert (config_dir / "haproxy.cfg").read_text() == first["config"]
    assert not (config_dir / ".haproxy.cfg.staged").exists()
    generation = Path(first["generation_dir"])
    for entry in first["files"]:
        mode = stat.S_IMODE(os.stat(generation / entry["name"]).st_mode)
        assert mode == (0o600 if entry["secret"] else 0o644), entry["name"]
    again = install(haproxy_view(etcd, config_dir), config_dir)
    assert not again["changed"], again

    # A new catalog: a new generation; the one it replaces is kept (as the watcher
    # keeps it after a reload), the one before that pruned.
    store(etcd, ingress("shop", "more", "more.example.com", "web"))
    second = haproxy_view(etcd, config_dir)
    assert second["generation_dir"] != first["generation_dir"]
    changed = install(second, config_dir)
    assert changed["pruned"] == ()
    assert changed["before"] == first["config"] and changed["after"] == second["config"]
    assert sorted(p.name for p in config_dir.glob("gen-*")) == sorted(
        Path(d).name for d in (first["generation_dir"], second["generation_dir"])
    )

    # HAProxy refuses it: the last good file stays, nothing staged is left behind.
    broken = dict(second, config=second["config"] + "\nfrontend broken\n    bind :notaport\n")
    with pytest.raises(CheckFailed):
        install(broken, config_dir)
    assert (config_dir / "haproxy.cfg").read_text() == second["config"]
    assert not (config_dir / ".haproxy.cfg.staged").exists()

    # The next new catalog: the generation before the previous one is pruned.
    store(etcd, ingress("shop", "most", "most.example.com", "web"))
    third = install(haproxy_view(etcd, config_dir), config_dir)
    assert third["pruned"] == (first["generation_dir"],)
