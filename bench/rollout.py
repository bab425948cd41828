#!/usr/bin/env python3
"""Rollout: how long HAProxy serves old and new pods at once while two pods move.

A rollout moves a backend's two servers (``set server … addr`` for s1 and s2).  Sent
one command at a time, with a round trip each, HAProxy balances over one new and one
old server in between; sent as one batch on the runtime session (what
HAProxyTarget does), they land together.  Both ways are measured side by side here,
interleaved in rounds, against a real HAProxy on loopback and four real HTTP
backends (two "old" pods, two "new" ones, each answering its name) -- no etcd, no
watcher: HAProxyTarget is driven directly, as the watcher's endpoint path drives it
(``apply(catalog, servers_only=[backend])``), on one event loop for the whole run.

One client thread sends requests as fast as it can, one after the other, on one
keep-alive connection; HAProxy balances them roundrobin, so consecutive requests
alternate between the two servers.  The pods close HAProxy's connection after each
reply, so that each request goes to a server's address of the moment (with
``--keep-alive`` they keep it open, and HAProxy 2.6 then sends the client's requests
to a server's old pod after the move, in either mode, as long as that connection
lasts).  For each move: the first reply from a new pod after the move started; the
move overlaps when a reply from an old pod still arrives after it (before the next
move), and its window is the time from that first new reply to the last old one.

Prints, per mode: moves; seen (moves a new pod answered before the next move);
% of the seen moves that overlap; the window's median / p99 / max over the
overlapping ones; the spread (from the write of a move's first command to that of
its last: how long HAProxy runs one server moved and one not -- one write when
batched); the apply's median; the requests/s the client achieved.  A sequential
client sees an overlap only when the spread outlasts a request's round trip (one
new HAProxy-to-pod connection each), so the spread is the finer measure.  Never
fails on a time.

    .venv/bin/python bench/rollout.py [--moves 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import http.client
import multiprocessing
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import percentile
from harness import Backend as Pod
from harness import HAProxy, free_port, haproxy_settings

from breakwater.catalog import Backend, BackendOptions, Catalog, Route, Server
from breakwater.targets.haproxy import HAProxyPlan, HAProxyTarget
from breakwater.targets.haproxy_api import HAProxyError, runtime_reply_ok
from breakwater.targets.staging import ApplyResult

HOST = "rollout.example"
BACKEND = "be_bench_web_http"
OLD = ("127.0.0.61", "127.0.0.62")
NEW = ("127.0.0.63", "127.0.0.64")
NAMES = {"127.0.0.61": "old-a", "127.0.0.62": "old-b", "127.0.0.63": "new-a", "127.0.0.64": "new-b"}
MODES = ("batched", "one by one")


class OneByOneTarget(HAProxyTarget):
    """The old behaviour, kept only here for the comparison: each runtime command sent
    on its own, its reply awaited before the next (a round trip each).  Servers-only
    plans alone (what a rollout is), the target's state updated as HAProxyTarget._send
    does for them.  Keeps, for each plan, the time from its first command's write to
    its last's: how long HAProxy runs some servers moved and some not."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.spreads: list[float] = []

    async def _send(self, plan: HAProxyPlan) -> ApplyResult:
        if plan.rendered is not None or plan.routes is not None:
            raise NotImplementedError("only servers-only plans are sent one by one")
        first = last = time.monotonic()
        # In the order the batch takes (new servers placed before old ones are freed):
        # only the one write differs.
        for command in await self._batch(plan):
            assert isinstance(command, str)
            last = time.monotonic()
            reply = await self.session.command(command)
            if not runtime_reply_ok(command, reply):
                raise HAProxyError(f"runtime API refused {command!r}: {reply[:300]}")
        self.spreads.append(last - first)
        self.structure = plan.structure
        self.layout.update(plan.layout)
        if plan.commands:
            self._runtime_changes += 1
            self.mark_stale()
        count = len(plan.commands)
        return ApplyResult("runtime", f"{count} runtime commands", count)


def serve_pods(port: int, keep_alive: bool, stop: Any) -> None:
    """The four pods, in a process of their own: in the benchmark's process they would
    take the GIL from the event loop that sends the commands."""
    pods = [Pod(NAMES[address], address, port) for address in (*OLD, *NEW)]
    for pod in pods:
        handler = pod.server.RequestHandlerClass
        # It writes its headers and its body apart: with Nagle's algorithm, the body
        # waits for HAProxy's delayed ACK (tens of ms a request).
        handler.disable_nagle_algorithm = True
        if not keep_alive:
            # Each reply closes HAProxy's connection to the pod, so each request is
            # balanced to a server's address of the moment.  (Kept alive, HAProxy 2.6
            # sends a client's requests over the connection its session holds to a
            # server's old address after 'set server addr' -- see --keep-alive.)
            handler.protocol_version = "HTTP/1.0"
    stop.wait()
    for pod in pods:
        pod.close()


def catalog(addresses: tuple[str, str], port: int) -> Catalog:
    servers = tuple(Server(address, port, "ready") for address in addresses)
    backend = Backend(BACKEND, "bench", "web", "http", BackendOptions(), servers)
    route = Route(HOST, "/", "prefix", BACKEND, "Ingress bench/rollout")
    return Catalog(routes=[route], backends={BACKEND: backend})


class Client(threading.Thread):
    """Sequential requests on one keep-alive connection: (monotonic time of the
    reply, the pod that answered)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.replies: list[tuple[float, str]] = []
        self.errors = 0
        self.connections = 0  # opened to HAProxy: 1 unless it closed one
        self.running = True

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"Host": HOST}
        while self.running:
            try:
                if connection.sock is None:
                    self.connections += 1
                connection.request("GET", "/", headers=headers)
                response = connection.getresponse()
                body = response.read()
                now = time.monotonic()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()  # reconnected by the next request
                continue
            if response.status == 200:
                self.replies.append((now, body.split(maxsplit=1)[0].decode()))
            else:
                self.errors += 1
        connection.close()


class Move:
    def __init__(self, mode: str, to: tuple[str, str], start: float, applied: float) -> None:
        self.mode, self.to, self.start, self.applied = mode, to, start, applied
        self.end = float("inf")  # when the next move started


def analyse(move: Move, replies: list[tuple[float, str]], times: list[float]) -> float | None:
    """The overlap window of one move in ms: 0.0 when none; None when no new pod
    answered before the next move started (the move was not observed)."""
    new = {NAMES[address] for address in move.to}
    first = bisect.bisect_left(times, move.start)
    last = bisect.bisect_left(times, move.end)
    after = replies[first:last]
    first_new = next((i for i, (_t, pod) in enumerate(after) if pod in new), None)
    if first_new is None:
        return None
    old_after = [t for t, pod in after[first_new + 1 :] if pod not in new]
    if not old_after:
        return 0.0
    return (old_after[-1] - after[first_new][0]) * 1000


HEADER = (
    f"{'mode':<11} {'moves':>5} {'seen':>5} {'overlap':>8} {'window ms med/p99/max':>22}"
    f" {'spread us med/p99/max':>22} {'apply ms':>8} {'req/s':>6}"
)


def report(
    mode: str,
    moves: list[Move],
    replies: list[tuple[float, str]],
    rounds: list[tuple[float, float]],
    spreads: list[float] | None,
) -> str:
    """One mode's line; ``rounds``: its rounds' (start, end), for the client's rate;
    ``spreads``: its sends' (None: one write each)."""
    times = [t for t, _pod in replies]
    windows = [analyse(move, replies, times) for move in moves]
    seen = [w for w in windows if w is not None]
    overlapping = [w for w in seen if w > 0]
    served = sum(
        bisect.bisect_left(times, finished) - bisect.bisect_left(times, began)
        for began, finished in rounds
    )
    seconds = sum(finished - began for began, finished in rounds)
    share = 100 * len(overlapping) / len(seen) if seen else 0.0
    window = "-"
    if overlapping:
        window = (
            f"{statistics.median(overlapping):.2f} / {percentile(overlapping, 0.99):.2f}"
            f" / {max(overlapping):.2f}"
        )
    spread = "0 (one write)"
    if spreads:
        micro = [value * 1e6 for value in spreads]
        spread = (
            f"{statistics.median(micro):.0f} / {percentile(micro, 0.99):.0f} / {max(micro):.0f}"
        )
    apply_ms = statistics.median(move.applied - move.start for move in moves) * 1000
    return (
        f"{mode:<11} {len(moves):>5} {len(seen):>5} {share:>6.1f} % {window:>22}"
        f" {spread:>22} {apply_ms:>8.2f} {served / seconds:>6.0f}"
    )


async def run(args: argparse.Namespace, directory: Path, port: int) -> None:
    haproxy = HAProxy(directory, haproxy_settings(directory))
    haproxy.start()
    batched = HAProxyTarget(haproxy.settings, reload_timeout=20)
    targets: dict[str, HAProxyTarget] = {"batched": batched}
    client = Client(haproxy.http_port)
    try:
        first = await batched.apply(catalog(OLD, port))
        if first.action != "reload":
            raise SystemExit(f"the first apply did not reload: {first.action} {first.detail}")
        # The other target takes HAProxy as the file says it is (the same slots); from
        # here on, after each move, the target that did not move takes the other's slots.
        one_by_one = targets["one by one"] = OneByOneTarget(haproxy.settings, reload_timeout=20)
        warm = await one_by_one.apply(catalog(OLD, port))
        if warm.action != "none":
            raise SystemExit(f"the second target would change HAProxy: {warm.action}")
        client.start()
        await asyncio.sleep(0.5)
        moves: list[Move] = []
        rounds: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        at = OLD
        per_round = max(1, args.moves // args.rounds)
        for round_number in range(args.rounds):
            order = MODES if round_number % 2 == 0 else MODES[::-1]
            for mode in order:
                target = targets[mode]
                # Its session may have idled out during the other mode's round: the
                # reconnection is made here, not in the first move.
                await target.session.command("show info")
                began = time.monotonic()
                for _ in range(per_round):
                    at = NEW if at == OLD else OLD
                    start = time.monotonic()
                    result = await target.apply(catalog(at, port), servers_only=[BACKEND])
                    applied = time.monotonic()
                    if result.action != "runtime":
                        raise SystemExit(f"{mode}: not a runtime change: {result}")
                    if moves:
                        moves[-1].end = start
                    moves.append(Move(mode, at, start, applied))
                    other = targets[MODES[1] if mode == MODES[0] else MODES[0]]
                    other.layout = dict(target.layout)
                    await asyncio.sleep(random.uniform(args.pause_min, args.pause_max) / 1000)
                rounds[mode].append((began, time.monotonic()))
        moves[-1].end = time.monotonic()
    finally:
        client.running = False
        client.join(10)
        for target in targets.values():
            await target.close()
        haproxy.stop()
    replies = list(client.replies)
    pods = "keep HAProxy's connections alive" if args.keep_alive else "close after each reply"
    print(
        f"# {per_round * args.rounds} moves of 2 pods per mode, {args.rounds} rounds,"
        f" modes interleaved; {args.pause_min:g}-{args.pause_max:g} ms between moves;"
        f" pods {pods}"
    )
    print(
        f"# client: {len(replies)} replies, {client.errors} errors,"
        f" {client.connections} connection(s) to HAProxy"
    )
    print(HEADER)
    spreads = {"batched": None, "one by one": one_by_one.spreads}
    for mode in MODES:
        mode_moves = [move for move in moves if move.mode == mode]
        print(report(mode, mode_moves, replies, rounds[mode], spreads[mode]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=200, help="moves per mode")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pause-min", type=float, default=20.0, help="ms between moves")
    parser.add_argument("--pause-max", type=float, default=60.0, help="ms between moves")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="pods keep HAProxy's connections alive (default: they close after each reply)",
    )
    args = parser.parse_args()
    random.seed(args.seed)
    port = free_port()
    stop = multiprocessing.get_context("spawn").Event()
    pods = multiprocessing.get_context("spawn").Process(
        target=serve_pods, args=(port, args.keep_alive, stop)
    )
    pods.start()
    try:
        deadline = time.monotonic() + 20
        for address in (*OLD, *NEW):
            while True:
                try:
                    socket.create_connection((address, port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        with (
            tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp,
            asyncio.Runner() as runner,
        ):
            runner.run(run(args, Path(tmp), port))
    finally:
        stop.set()
        pods.join(10)
        if pods.is_alive():
            pods.terminate()


if __name__ == "__main__":
    main()
