"""Least privilege against a real etcd with authentication on: the module
breakwater.edge.etcd_access gives the edge's user read access to exactly what its
watcher reads; the watcher serves with it; anything else is denied."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Etcd,
    WatcherProcess,
    endpoint_slice,
    http_get,
    ingress,
    service,
    storage_key,
    storage_value,
    wait_for,
    watcher_config,
)
from test_ansible_plugins import play
from test_etcd_source import make_pki

from breakwater.cluster.source import EtcdSettings, EtcdSource, SourceError
from breakwater.cluster.state import read_cluster
from breakwater.config import load_config, read_resources

EDGE_USER = "breakwater-edge"
SETTINGS: dict[str, Any] = {"catalog": {"secret_namespaces": ["shop"]}}


def etcdctl(server: Etcd, pki: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "etcdctl",
            f"--endpoints={server.endpoint}",
            f"--cacert={pki['ca']}",
            f"--cert={pki['root_cert']}",
            f"--key={pki['root_key']}",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


@pytest.fixture
def auth_etcd(tmp_path: Path):
    """etcd with client certificates and authentication on: root (certificate CN root)
    is the API server's stand-in; the edge's certificate says breakwater-edge."""
    pki = make_pki(tmp_path / "pki", clients=("root", EDGE_USER))
    server = Etcd(tmp_path / "etcd", tls=pki)
    server.start()
    wait_for(lambda: etcdctl(server, pki, "endpoint", "health").returncode == 0, what="etcd")
    etcdctl(server, pki, "user", "add", "root", "--no-password")
    etcdctl(server, pki, "user", "grant-role", "root", "root")
    etcdctl(server, pki, "auth", "enable")
    yield server, pki
    server.stop()


def settings_for(server: Etcd, pki: dict[str, str], user: str) -> EtcdSettings:
    return EtcdSettings(
        endpoints=(server.endpoint,),
        ca_file=pki["ca"],
        cert_file=pki[f"{user}_cert"],
        key_file=pki[f"{user}_key"],
        timeout=3,
    )


def run(settings: EtcdSettings, action: Any) -> Any:
    async def go() -> Any:
        source = EtcdSource(settings, [])
        try:
            return await action(source)
        finally:
            await source.disconnect()

    return asyncio.run(go())


def module_task(server: Etcd, pki: dict[str, str], **params: Any) -> dict[str, Any]:
    return {
        "breakwater.edge.etcd_access": {
            "endpoints": [server.endpoint],
            "ca_file": pki["ca"],
            "cert_file": pki["root_cert"],
            "key_file": pki["root_key"],
            "user": EDGE_USER,
            "settings": SETTINGS,
            **params,
        }
    }


def test_the_edge_reads_exactly_what_its_watcher_needs(
    auth_etcd, haproxy, backends, tmp_path
) -> None:
    server, pki = auth_etcd
    root, edge = settings_for(server, pki, "root"), settings_for(server, pki, EDGE_USER)

    # Before the module: authentication is on and the edge's user does not exist.
    with pytest.raises(SourceError, match=r"user name not found|permission denied"):
        asyncio.run(read_cluster(edge))

    check = play(tmp_path, [module_task(server, pki)], check=True)["result_0"]
    assert check["changed"] and check["access"]["user"] == EDGE_USER
    with pytest.raises(SourceError):  # check mode wrote nothing
        asyncio.run(read_cluster(edge))

    first = play(tmp_path, [module_task(server, pki)])["result_0"]
    second = play(tmp_path, [module_task(server, pki)])["result_0"]
    assert first["changed"] and not second["changed"]
    config = load_config(document=SETTINGS, environ={})
    expected = ["/registry/" + resource for resource in read_resources(config)]
    assert first["prefixes"] == [*expected, "/breakwater/routes/"]
    assert "/registry/secrets/shop/" in first["prefixes"]
    assert "/registry/minions/" not in first["prefixes"]  # pods mode reads no Nodes
    assert sorted(first["access"]["permissions"]) == sorted(
        f"read {prefix}*" for prefix in first["prefixes"]
    )

    # What the API server (root) writes, the edge reads; and nothing else.
    web = backends("web")
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [web.endpoint]),
        ingress("shop", "web", "shop.example.com", "web"),
    ]
    for obj in objects:
        run(root, lambda source, obj=obj: source.put(storage_key(obj), storage_value(obj)))
    run(root, lambda source: source.put("/registry/pods/shop/web-1", b"{}"))
    run(root, lambda source: source.put("/registry/secrets/other/db", b"{}"))

    state = asyncio.run(read_cluster(edge, read_resources(config)))
    assert ("Ingress", "shop", "web") in {
        (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        for obj in state.objects.values()
    }
    for denied in ("/registry/pods/", "/registry/secrets/other/", "/registry/minions/"):
        with pytest.raises(SourceError, match="permission denied"):
            run(edge, lambda source, key=denied: source.range(key, prefix=True))
    for key in ("/registry/ingress/shop/web", "/registry/pods/shop/x", "/breakwater/routes/x"):
        with pytest.raises(SourceError, match="permission denied"):
            run(edge, lambda source, key=key: source.put(key, b"{}"))
    with pytest.raises(SourceError, match="permission denied"):
        run(edge, lambda source: source.delete("/registry/ingress/shop/web"))

    # The watcher, with the edge's certificate and these settings, serves the route.
    path = watcher_config(
        tmp_path,
        server,
        haproxy,
        etcd={"ca_file": pki["ca"], "cert_file": edge.cert_file, "key_file": edge.key_file},
        catalog={"allow_special_addresses": True, "secret_namespaces": ["shop"]},
    )
    process = WatcherProcess(path, tmp_path / "watcher.log")
    process.start()
    try:
        wait_for(
            lambda: http_get(haproxy.http_port, "shop.example.com")[1].startswith("web "),
            what="the route served with the limited user",
        )
    finally:
        assert process.stop() == 0
    assert "permission denied" not in process.log()

    # Other settings, other permissions (every namespace's Secrets); absent removes both.
    narrower = play(
        tmp_path, [module_task(server, pki, settings={"catalog": {"secret_namespaces": []}})]
    )["result_0"]
    assert narrower["changed"] and "read /registry/secrets/*" in narrower["access"]["permissions"]
    gone = play(tmp_path, [module_task(server, pki, state="absent")])["result_0"]
    assert gone["changed"] and gone["access"]["user"] is None
    with pytest.raises(SourceError):
        asyncio.run(read_cluster(edge))
