"""edge-health against the real edge: etcd, HAProxy and the watcher as processes.

What keepalived and FRR will act on is what these tests read: the track file (0/1)
and the state file, with the reason a node lost the VIP in words.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import endpoint_slice, http_get, ingress, service, store, wait_for

from breakwater.config import load_config
from breakwater.ha.health import EdgeHealth
from breakwater.operations import set_node_rotation


def http_get_headers(port: int, host: str) -> tuple[int, str, dict[str, str]]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, response.read().decode(), headers
    finally:
        connection.close()


def health_for(watcher, tmp_path: Path, **ha) -> EdgeHealth:
    overrides = {
        "ha.drain_close_seconds": 1.0,
        "ha.track_file": str(tmp_path / "edge-health.track"),
        "ha.state_file": str(tmp_path / "edge-health.json"),
        "ha.fall": 2,
        "ha.rise": 2,
        **{f"ha.{key}": value for key, value in ha.items()},
    }
    return EdgeHealth(load_config(str(watcher.config_path), environ={}, overrides=overrides))


def step(health: EdgeHealth, times: int = 1) -> dict:
    for _ in range(times):
        asyncio.run(health.step())
    return json.loads(Path(health.ha.state_file).read_text())


def track(health: EdgeHealth) -> str:
    return Path(health.ha.track_file).read_text().strip()


def serving(etcd, haproxy, backends) -> None:
    backend = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [backend.endpoint]))
    store(etcd, ingress("shop", "web", "shop.example.com", "web"))
    wait_for(lambda: http_get(haproxy.http_port, "shop.example.com")[0] == 200, what="route")
    heartbeat = Path(haproxy.directory).parent / "heartbeat.json"
    wait_for(
        lambda: heartbeat.exists() and json.loads(heartbeat.read_text())["synced"],
        what="the watcher's heartbeat to say it synced",
    )


def test_a_serving_node_earns_the_vip_and_loses_it_when_taken_out_of_rotation(
    etcd, haproxy, backends, watcher, tmp_path
):
    serving(etcd, haproxy, backends)
    health = health_for(watcher, tmp_path)
    assert step(health)["healthy"] is False  # one good check: not yet (rise 2)
    state = step(health)
    assert state["healthy"] is True and state["reasons"] == [], state
    assert track(health) == "0"

    settings = haproxy.settings
    asyncio.run(set_node_rotation(settings.stats_socket, settings.config_dir, False))
    state = step(health)  # planned: at the first check, not after fall
    assert (state["healthy"], state["planned"]) == (False, True)
    assert state["reasons"] == [
        f"monitor {settings.monitor_binds[0]} answered 503: out of rotation"
    ]
    # closing: the VIP stays while HAProxy closes keep-alive connections ...
    assert state["phase"] == "closing" and track(health) == "0"
    status, _body, headers = http_get_headers(haproxy.http_port, "shop.example.com")
    assert status == 200 and headers.get("connection") == "close"
    # ... then it goes
    time.sleep(health.ha.drain_close_seconds)
    state = step(health)
    assert state["phase"] == "released" and track(health) == "1"
    # the node still serves its clients while they move away
    assert http_get(haproxy.http_port, "shop.example.com")[0] == 200

    asyncio.run(set_node_rotation(settings.stats_socket, settings.config_dir, True))
    assert step(health)["healthy"] is False
    assert step(health)["healthy"] is True and track(health) == "0"


def test_an_etcd_outage_keeps_the_vip_a_dead_watcher_or_haproxy_loses_it(
    etcd, haproxy, backends, watcher, tmp_path
):
    serving(etcd, haproxy, backends)
    health = health_for(watcher, tmp_path, heartbeat_max_age=3)
    assert step(health, 2)["healthy"] is True

    # etcd away: the watcher serves the last good state, as every node does
    etcd.stop()
    wait_for(
        lambda: not json.loads((tmp_path / "heartbeat.json").read_text())["etcd_connected"],
        what="the heartbeat to say etcd is away",
    )
    assert step(health, 3)["healthy"] is True
    etcd.start()

    # the watcher gone: its heartbeat ages, and the node lets the VIP go
    watcher.stop()
    time.sleep(3.5)
    state = step(health, 2)
    assert state["healthy"] is False and not state["planned"]
    assert "the watcher's heartbeat is" in state["reasons"][0]
    assert track(health) == "1"

    # back, synced from etcd: the VIP is earned again
    watcher.start()
    wait_for(lambda: step(health)["healthy"], timeout=20, what="healthy again")

    haproxy.stop()
    state = step(health, 2)
    assert state["healthy"] is False
    assert any("HAProxy's master socket" in reason for reason in state["reasons"])
    assert any(reason.startswith("monitor ") for reason in state["reasons"])


def test_the_command_checks_once_and_says_why(etcd, haproxy, backends, watcher, tmp_path):
    serving(etcd, haproxy, backends)
    command = [sys.executable, "-m", "breakwater.cli", "edge-health", "--once", "--config"]
    ok = subprocess.run([*command, str(watcher.config_path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"ok": True, "planned": False, "reasons": []}

    settings = haproxy.settings
    asyncio.run(set_node_rotation(settings.stats_socket, settings.config_dir, False))
    out = subprocess.run([*command, str(watcher.config_path)], capture_output=True, text=True)
    assert out.returncode == 1
    verdict = json.loads(out.stdout)
    assert verdict["planned"] is True and "out of rotation" in verdict["reasons"][0]
