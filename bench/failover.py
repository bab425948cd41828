#!/usr/bin/env python3
"""Failover: how long clients of the edge's VIPs go unanswered when an LB node dies,
and what a planned drain costs them (docs/ha.md).

The lab is tests/integration/netlab.py's: network namespaces on this machine, two LB
nodes (HAProxy from our template, a real watcher each against one etcd, ``breakwater
edge-health``, keepalived and FRR rendered from roles/keepalived and roles/bgp), a
router running FRR (multipath, BFD, GRACEFUL_SHUTDOWN honoured), a backend, and a
client behind the router.  Traffic stays inside those namespaces (198.18.0.0/15).

The client (netclient.py, in the client namespace) opens a new connection every 10 ms
(open loop: the first success after an outage is seen within 10 ms, not after a
connect timeout) and keeps 4 keep-alive connections each sending a request every
10 ms; every request has a 1 s timeout.  Scenarios, each repeated ``--repeat`` times:

- vrrp link / vrrp kill: the VRRP master's switch port goes down / every process of
  the node is SIGKILLed (HAProxy, keepalived, FRR, edge-health, its watcher);
- bgp link / bgp kill: the same for one of the two nodes carrying the anycast VIP;
- vrrp drain / bgp drain: the node is taken out of rotation as drain_node.yml does
  (breakwater.operations.set_node_rotation): HAProxy answers with ``Connection:
  close`` while the node keeps its VIPs for ``--close`` seconds
  (ha.drain_close_seconds; 11 in production, for idle keep-alive connections too);
  then VRRP releases the VIP, and BGP sends GRACEFUL_SHUTDOWN for ``--gshut``
  seconds (ha.graceful_shutdown_seconds; 10 in production), then withdraws.

Figures, from the failure (or the drain) at t=0:
- other: the end of the first successful request through the other node that was
  sent after t=0 (with BGP the other node serves throughout: ~0);
- recovered: the end of the first successful request sent after the last failed one
  (from then on every request was answered) -- the outage as clients see it;
- failed new / failed ka: failed requests on new / keep-alive connections.  A
  keep-alive connection whose node died fails its request (timeout, or a reset
  from the node that now holds the address) and is then opened again; each failed
  attempt counts, reconnects included, so the keep-alive count depends on the
  retry rate (every 10 ms): compare it across runs, not with "new".  "reused" is
  how many of them went over a connection that had already answered (a client
  retrying idempotent requests on a fresh connection would hide those).

Never fails on a time; exits 2 when the lab cannot run (not root, no ip netns).

    sudo .venv/bin/python bench/failover.py [--repeat 5] [--close 1] [--gshut 3] [--only ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts tests/integration on sys.path
from netlab import (
    BGP_VIP,
    LB_ADDRESSES,
    VRRP_VIP,
    EdgeLab,
    LBNode,
    missing,
    missing_daemons,
)

SCENARIOS = ("vrrp-link", "vrrp-kill", "bgp-link", "bgp-kill", "vrrp-drain", "bgp-drain")
GOALS = {"vrrp": 3.0, "bgp": 1.0}


def poll(predicate: Callable[[], Any], timeout: float) -> float | None:
    """Seconds until predicate() holds (None: not within timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.02)
    return None


def figures(records: list[dict[str, Any]], t0: float, node: str, lab: EdgeLab) -> dict[str, Any]:
    after = [r for r in records if r["end"] >= t0]
    failed = [r for r in after if not r["ok"]]
    other = [
        r["end"] - t0
        for r in after
        if r["ok"] and r["start"] >= t0 and lab.by_address(r["via"]) != node
    ]
    # The keep-alive connections on the failed node at t0: their last answer's node.
    last_via: dict[int, str | None] = {}
    for r in sorted(records, key=lambda r: r["start"]):
        if r["kind"] == "ka" and r["ok"] and r["end"] < t0:
            last_via[r["worker"]] = lab.by_address(r["via"])
    last_failed = max((r["start"] for r in failed), default=None)
    if last_failed is None:
        recovered = 0.0
    else:
        later = [r["end"] for r in after if r["ok"] and r["start"] > last_failed]
        recovered = min(later) - t0 if later else float("nan")
    return {
        "other": min(other) if other else float("nan"),
        "recovered": recovered,
        "new": sum(1 for r in failed if r["kind"] == "new"),
        "ka": sum(1 for r in failed if r["kind"] == "ka"),
        "reused": sum(1 for r in failed if r["kind"] == "ka" and r["reused"]),
        "ka_on_node": sum(1 for via in last_via.values() if via == node),
    }


class Bench:
    def __init__(self, lab: EdgeLab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.turn = 0

    def bgp_node(self) -> LBNode:
        self.turn += 1
        return self.lab.nodes[self.turn % 2]

    def vrrp_holder(self) -> LBNode:
        (name,) = self.lab.vrrp_holders()
        return self.lab.node(name)

    def run(self, scenario: str) -> dict[str, Any]:
        mode, _, what = scenario.partition("-")
        vip = VRRP_VIP if mode == "vrrp" else BGP_VIP
        node = self.vrrp_holder() if mode == "vrrp" else self.bgp_node()
        other = next(n for n in self.lab.nodes if n is not node)
        client = self.lab.client_process(vip, seconds=60)
        try:
            if poll(lambda: len(client.via()) >= (1 if mode == "vrrp" else 2), 10) is None:
                raise RuntimeError(f"{scenario}: the client gets no answers")
            time.sleep(0.3)
            t0 = time.monotonic()
            if what == "link":
                self.lab.segment.link_down(node.namespace)
            elif what == "kill":
                node.kill()
            else:
                node.set_rotation(False)
            moved = self.wait_moved(mode, what, node, other)
            time.sleep(1.5)
            records = client.stop()
        finally:
            client.stop()
        result = figures(records, t0, node.name, self.lab)
        result["moved"] = moved
        self.restore(what, node)
        return result

    def wait_moved(self, mode: str, what: str, node: LBNode, other: LBNode) -> float:
        """Seconds until the VIP moved: VRRP on the other node; BGP: the router's FIB
        through the other node only (a drain: and the drained node's path withdrawn)."""
        if mode == "vrrp":
            moved = poll(lambda: other.name in self.lab.vrrp_holders(), self.args.close + 15)
        else:
            moved = poll(lambda: self.lab.fib_nexthops() == [other.address], self.args.close + 15)
            if what == "drain":
                poll(
                    lambda: node.address not in self._paths(),
                    self.args.close + self.args.gshut + 10,
                )
        return float("nan") if moved is None else moved

    def _paths(self) -> list[str]:
        return [p["nexthops"][0]["ip"] for p in self.lab.bgp_paths()]

    def restore(self, what: str, node: LBNode) -> None:
        if what == "link":
            self.lab.segment.link_up(node.namespace)
        elif what == "kill":
            node.restart_after_kill()
        else:
            node.set_rotation(True)
        self.lab.wait_ready(timeout=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gshut", type=float, default=3.0, help="ha.graceful_shutdown_seconds")
    parser.add_argument(
        "--close", type=float, default=1.0, help="ha.drain_close_seconds (11 in production)"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--max-seconds", type=float, default=900, help="stop repeating after")
    args = parser.parse_args()
    why = missing() or missing_daemons("keepalived", "frr", "vtysh")
    if why:
        print(f"skipped: {why}")
        return 2
    scenarios = [s for s in args.only.split(",") if s]
    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="bw-failover-") as directory:
        t = time.monotonic()
        with EdgeLab(
            Path(directory), graceful_shutdown_seconds=args.gshut, drain_close_seconds=args.close
        ) as lab:
            print(
                f"lab up in {time.monotonic() - t:.1f} s: nodes {', '.join(LB_ADDRESSES)};"
                f" VRRP VIP {VRRP_VIP} (keepalived advert_int 0.5, edge-health interval"
                f" {lab.ha_interval} s); BGP VIP {BGP_VIP} (BFD 3 x 100 ms);"
                f" drain: keep-alive connections closed for {args.close:g} s, then"
                f" GRACEFUL_SHUTDOWN {args.gshut:g} s"
            )
            bench = Bench(lab, args)
            for round_ in range(args.repeat):
                for scenario in scenarios:
                    if time.monotonic() - started > args.max_seconds:
                        break
                    try:
                        result = bench.run(scenario)
                    except Exception as exc:
                        print(f"{scenario} #{round_ + 1}: FAILED: {exc}")
                        print(lab.logs()[-4000:])
                        return 1
                    results[scenario].append(result)
                    print(
                        f"{scenario} #{round_ + 1}: moved {result['moved']:.2f} s,"
                        f" other {result['other']:.2f} s, recovered {result['recovered']:.2f} s,"
                        f" failed new {result['new']}, ka {result['ka']}"
                        f" ({result['reused']} reused; {result['ka_on_node']} of 4 connections"
                        " were on the node)",
                        flush=True,
                    )
    print()
    print(
        "scenario     runs  moved s (med/max)  other s (med/max)  recovered s (med/max)"
        "  failed new (med/max)  failed ka (med/max)  goal"
    )
    for scenario, runs in results.items():
        if not runs:
            continue
        mode, _, what = scenario.partition("-")
        goal = "0 failed" if what == "drain" else f"<= {GOALS[mode]:g} s"

        def mm(key: str, fmt: str, runs: list[dict[str, Any]] = runs) -> str:
            values = [r[key] for r in runs]
            return f"{statistics.median(values):{fmt}} / {max(values):{fmt}}"

        print(
            f"{scenario:<12} {len(runs):>4}  {mm('moved', '.2f'):>17}  {mm('other', '.2f'):>17}"
            f"  {mm('recovered', '.2f'):>21}  {mm('new', 'd'):>20}  {mm('ka', 'd'):>19}  {goal}"
        )
    print(
        "keep-alive: a connection to a node that died (or gave the VIP up) fails until the"
        " client reconnects; each failed attempt counts (reconnects included, every 10 ms)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
