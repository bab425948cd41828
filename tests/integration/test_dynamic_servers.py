"""A backend that outgrows its server slots grows through the runtime API (HAProxy's
dynamic servers): no reload, every server in rotation, and a reload from the file
written afterwards runs exactly the same servers."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from builders import route_configmap
from harness import (
    HAProxy,
    endpoint_slice,
    http_get,
    service,
    store,
    wait_for,
)

from breakwater.targets.haproxy_api import reload


def stats(haproxy: HAProxy, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(haproxy.settings.stats_socket)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers_of(haproxy: HAProxy, backend: str) -> list[tuple[str, str, str, bool, str, bool]]:
    """What HAProxy runs for ``backend``: per server its name, address, port, whether
    it is in maintenance, its weight, and whether it is health-checked."""
    rows = []
    for line in stats(haproxy, f"show servers state {backend}").splitlines():
        fields = line.split()
        if len(fields) < 19 or not fields[0].isdigit():
            continue
        name, address, admin, weight, check_state, port = (
            fields[3],
            fields[4],
            int(fields[6]),
            fields[7],
            int(fields[13]),
            fields[18],
        )
        checked = bool(check_state & 0x4) if admin & 0x1 == 0 else None  # CHK_ST_ENABLED
        rows.append((name, address, port, bool(admin & 0x3), weight, bool(checked)))
    return rows


def answering(haproxy: HAProxy, host: str, tries: int) -> set[str]:
    return {http_get(haproxy.http_port, host)[1].split()[0] for _ in range(tries)}


def test_a_backend_outgrowing_its_slots_grows_without_a_reload_and_reloads_the_same(
    etcd, haproxy, backends, watcher
):
    pods = [backends(f"pod{i}") for i in range(7)]
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [pods[0].endpoint, pods[1].endpoint]))
    store(
        etcd,
        route_configmap(
            "shop",
            "web",
            {"hosts": "grow.example.com", "health-check-path": "/health", "balance": "leastconn"},
        ),
    )
    wait_for(lambda: answering(haproxy, "grow.example.com", 8) == {"pod0", "pod1"}, what="route")
    backend = next(
        line.split()[1]
        for line in Path(haproxy.settings.config_file).read_text().splitlines()
        if line.startswith("backend be_shop_web")
    )
    assert len(servers_of(haproxy, backend)) == 4  # min_slots
    before = haproxy.processes()

    # Seven pods: the backend's four slots no longer hold them.
    store(etcd, endpoint_slice("shop", "web", [pod.endpoint for pod in pods]))
    names = {pod.name for pod in pods}
    wait_for(lambda: answering(haproxy, "grow.example.com", 28) == names, what="seven pods")
    after = haproxy.processes()
    assert (after.reloads, after.workers) == (before.reloads, before.workers), "no reload"
    running = servers_of(haproxy, backend)
    assert [row[0] for row in running] == [f"s{i}" for i in range(1, 9)]
    assert all(row[5] for row in running if not row[3]), "every server in rotation is checked"

    # The file catches up; a reload from it runs the very same servers.
    config_file = Path(haproxy.settings.config_file)
    wait_for(lambda: "    server s8 127.0.0.1:1 disabled\n" in config_file.read_text())
    asyncio.run(reload(haproxy.settings.master_socket))  # waits for the new worker
    assert servers_of(haproxy, backend) == running
    assert answering(haproxy, "grow.example.com", 28) == names

    # Scaling down needs no reload either: the surplus slots are freed, and kept.
    reloads = haproxy.processes().reloads
    store(etcd, endpoint_slice("shop", "web", [pods[6].endpoint]))
    wait_for(lambda: answering(haproxy, "grow.example.com", 6) == {"pod6"}, what="one pod")
    assert haproxy.processes().reloads == reloads
    assert len(servers_of(haproxy, backend)) == 8


def test_a_static_rr_backend_that_outgrows_its_slots_is_reloaded(etcd, haproxy, backends, watcher):
    pods = [backends(f"pod{i}") for i in range(5)]
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [pods[0].endpoint]))
    store(
        etcd,
        route_configmap("shop", "web", {"hosts": "static.example.com", "balance": "static-rr"}),
    )
    wait_for(lambda: answering(haproxy, "static.example.com", 2) == {"pod0"}, what="route")
    reloads = haproxy.processes().reloads
    store(etcd, endpoint_slice("shop", "web", [pod.endpoint for pod in pods]))
    names = {pod.name for pod in pods}
    wait_for(lambda: answering(haproxy, "static.example.com", 20) == names, what="five pods")
    # HAProxy cannot add servers to a static-rr backend: this one took a reload.
    assert haproxy.processes().reloads == reloads + 1
    wait_for(lambda: "reload (slots): be_shop_web_http: 5 servers" in watcher.log(), what="log")
