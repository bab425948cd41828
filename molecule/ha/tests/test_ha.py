"""High availability on real systemd hosts: keepalived moves the VRRP VIP, FRR
announces the anycast VIP from every healthy node, and both follow edge-health.

Runs in order: the VIPs answer, HAProxy stopped on a node, a planned drain with
playbooks/drain_node.yml and restore_node.yml, then a whole node stopped and
started again.  Each check asks what a user would: does the client still get an
answer, which node holds the VIP, which next hops does the router have.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import testinfra

VRRP_VIP = "198.18.11.100"
ANYCAST_VIP = "198.19.255.10"
NODES = {"ha-lb1": "198.18.11.11", "ha-lb2": "198.18.11.12"}
PAGE = "ha-etcd1-8080"  # the lab backend's page (playbooks/lab.yml)
ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))

client = testinfra.get_host("podman://ha-client")
router = testinfra.get_host("podman://ha-router")
lbs = {name: testinfra.get_host(f"podman://{name}") for name in NODES}


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def get(vip: str) -> str:
    """One request from the client, on a new connection: the page, or '' on failure."""
    out = client.run(
        f"curl -s -m 2 -H 'Host: www.lab.example' http://{vip}/ || true"
    ).stdout.strip()
    return out


def holders() -> list[str]:
    """The LB nodes that have the VRRP VIP on an interface."""
    return [
        name
        for name, host in lbs.items()
        if f" {VRRP_VIP}/" in host.run("ip -4 -o addr show dev eth0").stdout
    ]


def next_hops() -> set[str]:
    """The router's next hops for the anycast VIP (kernel FIB, as FRR installed it)."""
    routes = json.loads(router.run(f"ip -j route show {ANYCAST_VIP}").stdout or "[]")
    hops: set[str] = set()
    for route in routes:
        if "gateway" in route:
            hops.add(route["gateway"])
        for hop in route.get("nexthops", []):
            hops.add(hop["gateway"])
    return hops


def health(name: str) -> dict:
    text = lbs[name].run("cat /run/breakwater/edge-health.json").stdout
    return json.loads(text) if text else {}


def playbook(name: str, *extra: str) -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".lab" / "installed")}
    run = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(ROOT / "playbooks" / name),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def both_serving() -> None:
    wait_until(lambda: holders() == ["ha-lb1"], 60, "lb1 (priority 100) to hold the VRRP VIP")
    wait_until(lambda: next_hops() == set(NODES.values()), 60, "two next hops at the router")


def test_the_vips_answer_with_one_vrrp_holder_and_two_bgp_next_hops():
    both_serving()
    assert get(VRRP_VIP) == PAGE
    assert get(ANYCAST_VIP) == PAGE
    for name in NODES:
        state = health(name)
        assert state["healthy"] is True and state["bgp"]["announced"] is True, state


def test_edge_info_reports_vrrp_and_bgp_state():
    script = (
        "import json; from breakwater.edge import edge_info; "
        "print(json.dumps(edge_info('/run/haproxy/admin.sock', '/run/breakwater/status.json')))"
    )
    info = json.loads(lbs["ha-lb1"].check_output(f'/opt/breakwater/venv/bin/python -c "{script}"'))
    assert [(v["instance"], v["state"]) for v in info["vrrp"]] == [("VI_EDGE_v4", "MASTER")]
    (peer,) = info["bgp"]["peers"]
    assert peer["peer"] == "198.18.11.5" and peer["state"] == "Established"
    assert info["health"]["healthy"] is True


def test_haproxy_stopped_on_the_holder_moves_both_vips_and_comes_back():
    both_serving()
    lb1 = lbs["ha-lb1"]
    lb1.run("systemctl stop haproxy")
    try:
        wait_until(lambda: holders() == ["ha-lb2"], 20, "the VRRP VIP on lb2")
        wait_until(lambda: next_hops() == {NODES["ha-lb2"]}, 20, "lb1 withdrawn at the router")
        assert get(VRRP_VIP) == PAGE and get(ANYCAST_VIP) == PAGE
        reasons = " ".join(health("ha-lb1")["reasons"])
        assert "HAProxy's master socket" in reasons or "monitor" in reasons, reasons
        log = lb1.run("journalctl -u breakwater-edge-health --no-pager -n 50").stdout
        assert "edge health: unhealthy" in log
    finally:
        lb1.run("systemctl start haproxy")
    both_serving()  # preempt: lb1, back in health, takes the VIP back
    assert get(VRRP_VIP) == PAGE and get(ANYCAST_VIP) == PAGE


def test_a_planned_drain_moves_traffic_first_then_restore_brings_it_back():
    both_serving()
    playbook("drain_node.yml", "-e", "node=ha-lb1")
    # drained: the VIP moved, the router has only lb2, the node says why
    assert holders() == ["ha-lb2"]
    assert next_hops() == {NODES["ha-lb2"]}
    state = health("ha-lb1")
    assert state["planned"] is True and state["bgp"]["announced"] is False
    assert get(VRRP_VIP) == PAGE and get(ANYCAST_VIP) == PAGE
    playbook("restore_node.yml", "-e", "node=ha-lb1")
    both_serving()


def test_a_whole_node_stopped_moves_the_vips_and_it_rejoins_when_started():
    both_serving()
    subprocess.run(["podman", "stop", "-t", "0", "ha-lb1"], check=True, capture_output=True)
    try:
        wait_until(lambda: holders() == ["ha-lb2"], 20, "the VRRP VIP on lb2")
        wait_until(lambda: next_hops() == {NODES["ha-lb2"]}, 20, "lb1 gone at the router")
        assert get(VRRP_VIP) == PAGE and get(ANYCAST_VIP) == PAGE
    finally:
        subprocess.run(["podman", "start", "ha-lb1"], check=True, capture_output=True)
    lbs["ha-lb1"].run("systemctl is-system-running --wait")
    both_serving()
    assert get(VRRP_VIP) == PAGE and get(ANYCAST_VIP) == PAGE
