"""The HA data path end to end (docs/ha.md), in network namespaces (netlab.py): two
LB nodes with HAProxy, a real watcher each and ``breakwater edge-health``; a client
behind a router; keepalived (VRRP) or FRR (BGP anycast with BFD and
GRACEFUL_SHUTDOWN), configured as roles/keepalived and roles/bgp render them.

Needs root and ``ip netns`` (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import wait_for
from netlab import BGP_VIP, LB_ADDRESSES, VRRP_VIP, EdgeLab, missing, missing_daemons

_why = missing()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"failover lab: {_why}"),
    pytest.mark.timeout(240),
]


def _failed(records: list[dict[str, Any]], kind: str, start: float, end: float) -> int:
    return sum(
        1 for r in records if r["kind"] == kind and not r["ok"] and start <= r["start"] < end
    )


@pytest.mark.skipif(missing_daemons("keepalived") is not None, reason="keepalived missing")
def test_vrrp_moves_the_vip_to_a_healthy_node(tmp_path: Path) -> None:
    with EdgeLab(tmp_path / "lab", bgp=False) as lab:
        try:
            _vrrp(lab)
        except BaseException:
            print(lab.logs())
            raise


def _vrrp(lab: EdgeLab) -> None:
    (holder_name,) = lab.vrrp_holders()
    holder = lab.node(holder_name)
    other = next(node for node in lab.nodes if node is not holder)
    assert lab.served_via(VRRP_VIP) == holder.name

    with lab.client_process(VRRP_VIP, seconds=90) as client:
        wait_for(lambda: client.via(), what="the client's first answers")
        # Planned: out of rotation (what drain_node.yml does): HAProxy closes keep-alive
        # connections for ha.drain_close_seconds, then FAULT -> the VIP moves.
        drained = time.monotonic()
        holder.set_rotation(False)
        wait_for(lambda: lab.vrrp_holders() == [other.name], 10, what="the VIP on the other node")
        moved = time.monotonic() - drained
        state = holder.health()
        assert state["planned"] and not state["healthy"], state
        mark = time.monotonic()
        wait_for(lambda: other.name in client.via(mark), 5, what="answers via other")
        assert moved >= lab.drain_close_seconds, "the VIP left before connections were closed"
        assert moved < lab.drain_close_seconds + 3, f"the VIP took {moved:.1f} s to move"

        # Back in rotation: healthy again, but no preemption -- the VIP stays.
        undrained = time.monotonic()
        holder.set_rotation(True)
        wait_for(holder.healthy, 10, what="the drained node healthy again")
        time.sleep(1.5)  # three advertisement intervals
        assert lab.vrrp_holders() == [other.name]

        # The new holder's HAProxy dies: edge-health finds it, the VIP comes back.
        killed = time.monotonic()
        other.haproxy.kill()
        wait_for(lambda: lab.vrrp_holders() == [holder.name], 10, what="the VIP back")
        mark = time.monotonic()
        wait_for(lambda: holder.name in client.via(mark), 5, what="answers again")
        back = time.monotonic() - killed
        time.sleep(0.5)
        records = client.stop()

    assert back < 5, f"the VIP took {back:.1f} s to leave a node whose HAProxy died"
    last_failure = max((r["start"] for r in records if not r["ok"]), default=killed)
    assert last_failure - killed < 5, "requests still failed 5 s after HAProxy died"
    assert not other.holds(VRRP_VIP)
    # A planned move loses nothing: keep-alive connections were closed by HAProxy before
    # the VIP left (priority 0 advertisement, gratuitous ARP).
    print(
        f"drain: VIP moved in {moved:.2f} s,"
        f" failed new {_failed(records, 'new', drained, undrained)}"
        f" keep-alive {_failed(records, 'ka', drained, undrained)};"
        f" HAProxy killed: VIP back in {back:.2f} s, failed new"
        f" {_failed(records, 'new', killed, killed + 10)}"
        f" keep-alive {_failed(records, 'ka', killed, killed + 10)}"
    )
    failed = [r for r in records if not r["ok"] and drained <= r["start"] < undrained]
    for r in failed:
        print(r["kind"], round(r["start"] - drained, 3), round(r["end"] - drained, 3), r["error"])
    # Keep-alive connections were all closed before the move: no request on a reused
    # connection fails. New connections (a new client's, or a keep-alive client's
    # reconnecting after Connection: close) can fail only while the VIP is nowhere:
    # the released holder drops it at once (FAULT, a priority 0 advertisement), the
    # other takes it after keepalived's skew time ((256 - priority) / 256 of advert_int:
    # 0.30 s for priority 100 at 0.5 s). On some machines none fails in that window, on
    # others each new connection in it does (README, "Failover"); never before it, and
    # never long after the move.
    fresh = [r for r in failed if r["kind"] == "new" or not r["reused"]]
    assert [r for r in failed if r["kind"] == "ka" and r["reused"]] == [], failed
    moved_at = drained + moved
    skew = (256 - 100) / 256 * 0.5
    assert all(moved_at - skew - 0.2 <= r["start"] <= moved_at + 0.1 for r in fresh), failed
    assert all(r["end"] - moved_at < 1.0 for r in fresh), failed


@pytest.mark.skipif(missing_daemons("frr", "vtysh") is not None, reason="FRR missing")
def test_bgp_anycast_ecmp_graceful_shutdown_and_bfd(tmp_path: Path) -> None:
    with EdgeLab(tmp_path / "lab", vrrp=False, graceful_shutdown_seconds=3) as lab:
        try:
            _bgp(lab)
        except BaseException:
            print(lab.logs())
            raise


def _lb1_path(lab: EdgeLab) -> dict[str, Any] | None:
    for path in lab.bgp_paths():
        if path["nexthops"][0]["ip"] == LB_ADDRESSES[0]:
            return path
    return None


def _bgp(lab: EdgeLab) -> None:
    lb1, lb2 = lab.nodes
    assert lab.router_frr is not None
    # The router: the VIP with two next hops, in its RIB and in the kernel's FIB.
    assert lab.fib_nexthops() == sorted(LB_ADDRESSES)
    rib = lab.router_frr.json(f"show ip route {BGP_VIP}/32 json")[f"{BGP_VIP}/32"][0]
    assert sorted(hop["ip"] for hop in rib["nexthops"] if hop.get("fib")) == sorted(LB_ADDRESSES)
    assert lab.bfd_up() == sorted(LB_ADDRESSES)
    # No other prefix leaves a node (the role's export policy).
    assert [p["network"] for p in _received(lab)] == [f"{BGP_VIP}/32"]

    with lab.client_process(BGP_VIP, seconds=90) as client:
        wait_for(lambda: client.via() == {"lb1", "lb2"}, 10, what="ECMP: answers via both nodes")

        # Planned drain: GRACEFUL_SHUTDOWN first (local-preference 0 on the router),
        # then the withdrawal after ha.graceful_shutdown_seconds.
        drained = time.monotonic()
        lb1.set_rotation(False)
        gshut = wait_for(
            lambda: (p := _lb1_path(lab)) and "graceful-shutdown" in _communities(p) and p,
            10,
            what="lb1's path with GRACEFUL_SHUTDOWN",
        )
        seen_gshut = time.monotonic() - drained
        assert gshut.get("locPrf") == 0, gshut
        wait_for(lambda: lab.fib_nexthops() == [LB_ADDRESSES[1]], 5, what="the FIB via lb2")
        wait_for(lambda: _lb1_path(lab) is None, 15, what="lb1's path withdrawn")
        withdrawn = time.monotonic() - drained
        assert lb1.health()["bgp"]["announced"] is False
        mark = time.monotonic()
        time.sleep(0.5)
        assert client.via(mark) == {"lb2"}

        lb1.set_rotation(True)
        wait_for(lambda: lab.fib_nexthops() == sorted(LB_ADDRESSES), 15, what="ECMP again")
        undrained = time.monotonic()
        wait_for(lambda: client.via(undrained) == {"lb1", "lb2"}, 10, what="both nodes again")

        # A dead node: lb2's link down; BFD takes it out of the router's FIB.
        cut = time.monotonic()
        lab.segment.link_down(lb2.namespace)
        wait_for(lambda: lab.fib_nexthops() == [LB_ADDRESSES[0]], 5, what="lb2 out of the FIB")
        detected = time.monotonic() - cut
        time.sleep(1.0)
        records = client.stop()
        lab.segment.link_up(lb2.namespace)

    print(
        f"GSHUT seen after {seen_gshut:.2f} s, withdrawn after {withdrawn:.2f} s;"
        f" dead node out of the FIB after {detected:.2f} s"
    )
    assert withdrawn >= lab.drain_close_seconds + 3 - 0.6, (
        f"withdrawn {withdrawn:.1f} s after the drain: no GSHUT period"
    )
    assert detected < 2, f"BFD took {detected:.2f} s"
    # Nothing lost through a planned drain: keep-alive connections were closed first,
    # then the router moved new flows to lb2 at GRACEFUL_SHUTDOWN, while lb1 still
    # served whatever reached it.
    # As with VRRP, a connection opened in the very instant the router's path changes
    # (GRACEFUL_SHUTDOWN, the withdrawal, the return to ECMP) can have its handshake
    # and its request sent to two nodes, and be reset: at most that one, only at a
    # change, and never a request on a reused connection.
    lost = [r for r in records if not r["ok"] and drained <= r["start"] < undrained]
    fresh = [r for r in lost if r["kind"] == "new" or not r["reused"]]
    assert [r for r in lost if r["kind"] == "ka" and r["reused"]] == [], lost
    assert len(fresh) <= 1, lost
    changes = [drained + seen_gshut, drained + withdrawn, undrained]
    assert all(min(abs(r["end"] - at) for at in changes) < 1.0 for r in fresh), lost
    # The dead node: only what was hashed to it until BFD took it out.
    late = [r for r in records if not r["ok"] and r["start"] > cut + detected + 0.5]
    assert not late, late


def _communities(path: dict[str, Any]) -> str:
    return str((path.get("community") or {}).get("string", ""))


def _received(lab: EdgeLab) -> list[dict[str, Any]]:
    assert lab.router_frr is not None
    routes = lab.router_frr.json("show bgp ipv4 unicast json").get("routes", {})
    return [{"network": network} for network in sorted(routes)]
