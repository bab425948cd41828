#!/usr/bin/env python3
"""Soak: the edge under sustained churn for many minutes, as a new user would run it.

Real etcd, real HAProxy (master-worker, logging to stdout as in production) and the
watcher as a subprocess with production-like settings (etcd backoff defaults, log
level INFO), on loopback.  The backends are a pool of static HTTP servers (one
HAProxy answering "b<index> ..." on 24 loopback addresses); only those addresses
are ever endpoints.  ``--routes`` Services, each with an EndpointSlice of 1-3
endpoints and an Ingress host ``svc<i>.soak.example``.  Throughout the run:

- every 50 ms one Service, drawn at random, gets a new set of endpoints: 1 to 12,
  weighted 1/size, so backends keep outgrowing their server slots (4, 8, 16);
- every 5 s one route is created (Service, EndpointSlice, Ingress with a new host)
  and another one, drawn at random, deleted: the route count stays at ``--routes``;
- etcd is compacted to its current revision every minute, and restarted once in
  the middle of the run (down ~5 s, same data directory and ports); routes and
  compactions come half a period off the minute marks, where the sampler reads;
- wrk keeps 32 keep-alive connections on one stable route (``svc0``: its endpoints
  never change) for the whole run, and counts every non-2xx response;
- a checker, every 2 s, GETs a rotating sample of the routes (``--sample``) plus the
  routes deleted in the last minute, each on a new connection, and compares the
  backend that answered with the endpoints etcd holds for that route's Service (a
  deleted route must answer 404).  A mismatch opens a "wrong-route observation",
  closed by the first later check that agrees (routes with one open are checked
  again every 100 ms); each records how long after the last write to that route it
  was seen, so "in flight" (within 1 s of a write) can be told from "stale";
- every minute: the watcher's RSS, CPU seconds (its own, and its children's: the
  ``haproxy -c`` checks), open fds; HAProxy's current and old workers and their
  RSS, its reload count; the generation directories; HAProxy's log lines, the
  "Proxy ... stopped" ones apart.

At the end: wrk's figures, the wrong-route observations, the per-minute table,
reloads by cause (from the watcher's log: ``reload (<cause>): ...`` where the
watcher says why, else guessed from the summary: servers, routes or other), and
"Proxy ... stopped" lines per reload, by channel (``[WARNING]`` lines are HAProxy's
stderr copies, the bare ones the log target's).  ``--varnish`` adds the Varnish
tier (as the integration tests start it) and makes ``--cache-share`` of the routes
cacheable through Ingress annotations (TTL 1 s); every check uses a path of its
own, so each one is a miss that Varnish sends back through HAProxy to a backend.

HAProxy's hard-stop-after is the tests' 10 s (``--hard-stop-after``).  HAProxy logs
every request (``option httplog``) to haproxy.log: at wrk's rate that is a few
hundred MB a minute in the work directory.  Prints figures; never fails on a time.

    .venv/bin/python bench/soak.py [--minutes 20] [--routes 500] [--varnish]
        [--json PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from common import (
    StaticBackends,
    Writer,
    parse_wrk,
    percentile,
    wait_until,
    wrk_command,
)
from harness import (
    Etcd,
    HAProxy,
    Varnish,
    WatcherProcess,
    endpoint_slice,
    haproxy_settings,
    http_get,
    ingress,
    service,
    wait_for,
    watcher_config,
)

from breakwater.lab import storage_key, storage_value
from breakwater.targets.haproxy_api import parse_show_proc

NAMESPACE = "soak"
STABLE = "svc0"  # wrk's route: its endpoints never change, it is never deleted
MAX_ENDPOINTS = 12
SIZE_WEIGHTS = [1 / size for size in range(1, MAX_ENDPOINTS + 1)]
CHANGE_INTERVAL = 0.05
ROUTE_INTERVAL = 5.0
COMPACT_INTERVAL = 60.0
ETCD_DOWN = 5.0
CHECK_INTERVAL = 2.0
RECHECK_INTERVAL = 0.1
DELETED_CHECKED_FOR = 60.0
PEAK_INTERVAL = 5.0
IN_FLIGHT = 1.0  # an observation opened this soon after a write to its route is "in flight"


def host_of(name: str) -> str:
    return f"{name}.soak.example"


# --- what etcd holds, as the writer last wrote it --------------------------------------------


@dataclass
class Route:
    name: str
    endpoints: frozenset[int]  # indices into the backend pool
    cacheable: bool
    last_write: float  # monotonic
    deleted_at: float | None = None


class Expected:
    """The routes as written to etcd, updated after each write; shared with the checker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, Route] = {}

    def snapshot(self, name: str) -> Route:
        with self.lock:
            return dataclasses.replace(self.routes[name])

    def live(self) -> list[str]:
        with self.lock:
            return [n for n, r in self.routes.items() if r.deleted_at is None]

    def recently_deleted(self, now: float, keep: set[str]) -> list[str]:
        """Routes deleted in the last minute; older ones are forgotten, unless in ``keep``."""
        with self.lock:
            for name in [
                n
                for n, r in self.routes.items()
                if r.deleted_at is not None
                and now - r.deleted_at > DELETED_CHECKED_FOR
                and n not in keep
            ]:
                del self.routes[name]
            return [n for n, r in self.routes.items() if r.deleted_at is not None]


# --- the checker ------------------------------------------------------------------------------


@dataclass
class Observation:
    route: str
    opened: float  # monotonic
    since_write: float  # seconds from the last write to the route to the opening check
    seen: str  # what the edge answered, e.g. "200 b7" or "404"
    expected: str
    closed: float | None = None
    checks: int = 1  # checks that disagreed, the opening one included

    @property
    def in_flight(self) -> bool:
        return self.since_write < IN_FLIGHT


def answered(status: int, body: str) -> str:
    if status == 200 and body.startswith("b"):
        return f"200 {body.split(' ', 1)[0]}"
    return str(status) if status else body


class Checker:
    """GETs routes on new connections and compares the backend with what etcd holds."""

    def __init__(self, port: int, expected: Expected, sample: int, start: float) -> None:
        self.port = port
        self.expected = expected
        self.sample = sample
        self.start = start
        self.open: dict[str, Observation] = {}
        self.closed: list[Observation] = []
        self.checks = 0
        self.disagreed = 0
        self.rounds: list[tuple[float, float, int]] = []  # (began, seconds, checks)
        self.slow_checks: list[tuple[float, float]] = []  # (began, seconds): over 1 s
        self.counter = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="checker", daemon=True)
        self.error: str | None = None

    def check(self, name: str) -> None:
        self.counter += 1  # a path of its own: never a cache hit
        began = time.monotonic()
        try:
            status, body = http_get(self.port, host_of(name), f"/soak/{self.counter}", 5.0)
        except OSError as exc:
            status, body = 0, f"error {type(exc).__name__}"
        now = time.monotonic()
        if now - began > 1.0:
            self.slow_checks.append((began - self.start, now - began))
        route = self.expected.snapshot(name)
        if route.deleted_at is not None:
            agrees, expected = status == 404, "404"
        else:
            index = body.split(" ", 1)[0][1:] if status == 200 and body.startswith("b") else ""
            agrees = index.isdigit() and int(index) in route.endpoints
            expected = "200 " + ",".join(f"b{i}" for i in sorted(route.endpoints))
        self.checks += 1
        observation = self.open.get(name)
        if agrees:
            if observation is not None:
                observation.closed = now
                self.closed.append(self.open.pop(name))
            return
        self.disagreed += 1
        if observation is not None:
            observation.checks += 1
            return
        self.open[name] = Observation(
            name, now, now - route.last_write, answered(status, body), expected
        )

    def run(self) -> None:
        try:
            position = 0
            next_round = time.monotonic()
            while not self.stop.is_set():
                began = time.monotonic()
                live = sorted(self.expected.live(), key=lambda n: int(n[3:]))
                count = min(self.sample, len(live))
                picked = [live[(position + i) % len(live)] for i in range(count)]
                position = (position + count) % max(1, len(live))
                names = dict.fromkeys(
                    [*picked, *self.expected.recently_deleted(began, set(self.open)), *self.open]
                )
                for name in names:
                    if self.stop.is_set():
                        return
                    self.check(name)
                self.rounds.append((began - self.start, time.monotonic() - began, len(names)))
                next_round = max(next_round + CHECK_INTERVAL, time.monotonic())
                while not self.stop.is_set() and time.monotonic() < next_round:
                    for name in list(self.open):
                        self.check(name)
                    self.stop.wait(min(RECHECK_INTERVAL, max(0, next_round - time.monotonic())))
        except Exception as exc:  # reported at the end; the run goes on without checks
            self.error = repr(exc)

    def figures(self, end: float) -> dict[str, Any]:
        def describe(obs: Observation) -> dict[str, Any]:
            return {
                "route": obs.route,
                "opened_s": round(obs.opened - self.start, 3),
                "duration_s": round((obs.closed or end) - obs.opened, 3),
                "closed": obs.closed is not None,
                "since_write_s": round(obs.since_write, 3),
                # from the last write before it opened to the first check that agreed
                "write_to_agreement_s": round(
                    (obs.closed or end) - obs.opened + obs.since_write, 3
                ),
                "in_flight": obs.in_flight,
                "seen": obs.seen,
                "expected": obs.expected,
                "checks": obs.checks,
            }

        everything = [*self.closed, *self.open.values()]
        return {
            "checks": self.checks,
            "disagreeing_checks": self.disagreed,
            "rounds": len(self.rounds),
            "round_s": [[round(b, 1), round(s, 3), n] for b, s, n in self.rounds],
            "slow_checks": [[round(b, 1), round(s, 3)] for b, s in self.slow_checks],
            "error": self.error,
            "observations": [describe(o) for o in sorted(everything, key=lambda o: o.opened)],
        }


# --- per-minute samples -----------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, children's waited-for) CPU seconds of a process, user and system."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14-17
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def old_workers(show_proc: str) -> list[int]:
    pids, section = [], None
    for line in show_proc.splitlines():
        if line.startswith("#"):
            section = line.strip("# ")
            continue
        fields = line.split()
        if section == "old workers" and len(fields) > 1 and fields[1] == "worker":
            pids.append(int(fields[0]))
    return pids


class LogTail:
    """Complete lines appended to a file since the last read, in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def chunks(self, size: int = 4 << 20) -> Iterator[bytes]:
        """Each chunk starts at a line's start and ends with a newline."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with handle:
            handle.seek(self.offset)
            rest = b""
            while block := handle.read(size):
                block = rest + block
                cut = block.rfind(b"\n") + 1
                rest = block[cut:]
                self.offset += cut
                if cut:
                    yield block[:cut]


STOPPED = b" stopped (cumulated conns"  # "Proxy be_x stopped (cumulated conns: FE: 0, BE: 0)."


def haproxy_lines(tail: LogTail) -> dict[str, int]:
    """Lines, "Proxy ... stopped" lines by channel, and server state lines (runtime API).

    Hundreds of MB a minute (a line per request): counted with bytes methods, a few MB
    at a time, handing the GIL over in between, so the checker and the churn go on.
    """
    counts = {"lines": 0, "stopped_stderr": 0, "stopped_log": 0, "server_state": 0}
    for chunk in tail.chunks():
        counts["lines"] += chunk.count(b"\n")
        position = chunk.find(STOPPED)
        while position >= 0:
            line = chunk.rfind(b"\n", 0, position) + 1
            stderr = chunk.startswith(b"[WARNING]", line)
            counts["stopped_stderr" if stderr else "stopped_log"] += 1
            position = chunk.find(STOPPED, position + 1)
        counts["server_state"] += (
            chunk.startswith(b"Server ") + chunk.count(b"\nServer ") + chunk.count(b" : Server ")
        )
        time.sleep(0)
    return counts


# "INFO breakwater.daemon.watcher: reload (slots): be_x: 9 servers (9 ready) (after ...)"
SYNC_LINE = re.compile(r"^INFO \S+: (reload|runtime|written)(?: \((\w+)\))?: (.*)$")
SERVERS_PART = re.compile(r"^\S+: \d+ servers \(\d+ ready\)$")


def reload_cause(explicit: str | None, summary: str) -> str:
    """The watcher's own cause when it gives one; else guessed from the old summary."""
    if explicit:
        return explicit
    parts = summary.rsplit(" (after ", 1)[0].split("; ")
    if all(SERVERS_PART.match(part) for part in parts):
        return "servers"
    if any(part.startswith(("+route", "-route")) for part in parts):
        return "routes"
    return "other"


class WatcherLog:
    """Sync lines of the watcher's log: reloads by cause, runtime updates, problems."""

    def __init__(self, path: Path) -> None:
        self.tail = LogTail(path)
        self.reloads: Counter[str] = Counter()
        self.runtime = 0
        self.written = 0  # haproxy.cfg written after runtime changes (no reload)
        self.without_cause = 0  # reload lines with no "(after ...)": deferred file writes
        self.problems: Counter[str] = Counter()  # WARNING/ERROR/CRITICAL lines, by text
        self.tracebacks = 0

    def read(self) -> tuple[int, int]:
        """New (reload, runtime) lines since the last read, counted into the totals."""
        reloads = runtime = 0
        for chunk in self.tail.chunks():
            for line in chunk.decode(errors="replace").splitlines():
                match = SYNC_LINE.match(line)
                if match and match[1] == "reload":
                    self.reloads[reload_cause(match[2], match[3])] += 1
                    self.without_cause += " (after " not in match[3]
                    reloads += 1
                elif match and match[1] == "runtime":
                    self.runtime += 1
                    runtime += 1
                elif match:
                    self.written += 1
                elif line.startswith(("WARNING", "ERROR", "CRITICAL")):
                    self.problems[re.sub(r"\d+", "N", line)[:160]] += 1
                elif line.startswith("Traceback"):
                    self.tracebacks += 1
        return reloads, runtime


class Sampler:
    """Once a minute: the watcher's and HAProxy's processes, files and log lines."""

    def __init__(
        self, proxy: HAProxy, watcher: WatcherProcess, watcher_log: WatcherLog, start: float
    ) -> None:
        self.proxy = proxy
        self.watcher = watcher
        self.watcher_log = watcher_log
        self.start = start
        self.haproxy_log = LogTail(proxy.directory / "haproxy.log")
        self.rows: list[dict[str, Any]] = []
        self.cpu = (0.0, 0.0)
        self.reloads = 0
        self.failed = 0
        self.watcher_exit: str | None = None
        self.peak_rss = 0.0  # the watcher's, read every PEAK_INTERVAL

    def begin(self) -> None:
        """The baseline: what happened before the run is not counted."""
        self.haproxy_log.skip()
        self.watcher_log.read()
        self.watcher_log.reloads.clear()
        self.watcher_log.runtime = 0
        self.watcher_log.written = 0
        self.watcher_log.without_cause = 0
        self.cpu = cpu_seconds(self.pid)
        table = self.proxy.processes()
        self.reloads, self.failed = table.reloads, table.failed

    @property
    def pid(self) -> int:
        assert self.watcher.process is not None
        return self.watcher.process.pid

    def sample(self, minute: int) -> dict[str, Any]:
        assert self.watcher.process is not None
        code = self.watcher.process.poll()
        if code is not None and self.watcher_exit is None:
            self.watcher_exit = f"exited with code {code} before minute {minute}"
        own, children = cpu_seconds(self.pid)
        for _ in range(5):  # a worker that exits between "show proc" and /proc: again
            text = self.proxy.master("show proc")
            table = parse_show_proc(text)
            old = old_workers(text)
            workers_rss = [rss_mb(pid) for pid in table.workers]
            if all(workers_rss):
                break
            time.sleep(0.2)
        config_dir = Path(self.proxy.settings.config_dir)
        generations = [
            p for p in config_dir.iterdir() if p.name.startswith("gen-") and p.suffix != ".new"
        ]
        lines = haproxy_lines(self.haproxy_log)
        watcher_reloads, runtime = self.watcher_log.read()
        row = {
            "minute": minute,
            "watcher_rss_mb": round(rss_mb(self.pid), 1),
            "watcher_cpu_s": round(own - self.cpu[0], 2),
            "checks_cpu_s": round(children - self.cpu[1], 2),
            "watcher_fds": open_fds(self.pid),
            "workers": len(table.workers),
            "old_workers": len(old),
            "worker_rss_mb": round(sum(workers_rss), 1),
            "old_workers_rss_mb": round(sum(rss_mb(p) for p in old), 1),
            "generations": len(generations),
            "haproxy_reloads": table.reloads - self.reloads,
            "haproxy_failed_reloads": table.failed - self.failed,
            "watcher_reloads": watcher_reloads,
            "watcher_runtime": runtime,
            "log_lines": lines["lines"],
            "stopped_stderr": lines["stopped_stderr"],
            "stopped_log": lines["stopped_log"],
            "other_lines": lines["lines"] - lines["stopped_stderr"] - lines["stopped_log"],
            "server_state_lines": lines["server_state"],  # of the other lines
        }
        self.cpu = (own, children)
        self.reloads, self.failed = table.reloads, table.failed
        self.rows.append(row)
        return row


# --- the churn: every write to etcd, from one thread --------------------------------------------


class Churn:
    """Endpoint changes, new and deleted routes, compactions, the etcd restart."""

    def __init__(
        self,
        etcd: Etcd,
        backends: StaticBackends,
        expected: Expected,
        rng: random.Random,
        cache_share: float,
    ) -> None:
        self.etcd = etcd
        self.backends = backends
        self.expected = expected
        self.rng = rng
        self.cache_share = cache_share
        self.writer = Writer(etcd)
        self.next_index = 0
        self.counts: Counter[str] = Counter()
        self.events: list[str] = []

    def endpoints(self, indices: frozenset[int]) -> list[tuple[str, int]]:
        pool = self.backends.endpoints
        return [pool[i] for i in sorted(indices)]

    def draw(self, sizes: list[int], weights: list[float] | None = None) -> frozenset[int]:
        size = self.rng.choices(sizes, weights)[0]
        return frozenset(self.rng.sample(range(len(self.backends.addresses)), size))

    def put(self, obj: dict[str, Any]) -> None:
        key, value = storage_key(obj).encode(), storage_value(obj)
        self.writer.loop.run_until_complete(self.writer.client.put(key, value))

    def delete(self, obj: dict[str, Any]) -> None:
        key = storage_key(obj).encode()
        self.writer.loop.run_until_complete(self.writer.client.delete(key))

    def objects(self, route: Route) -> list[dict[str, Any]]:
        annotations = (
            {"breakwater.io/cache": "true", "breakwater.io/cache-ttl": "1s"}
            if route.cacheable
            else None
        )
        return [
            service(NAMESPACE, route.name),
            endpoint_slice(NAMESPACE, route.name, self.endpoints(route.endpoints)),
            ingress(
                NAMESPACE, route.name, host_of(route.name), route.name, annotations=annotations
            ),
        ]

    def new_route(self) -> Route:
        """A route as created: 1 to 3 endpoints; a share of them cacheable."""
        name = f"svc{self.next_index}"
        self.next_index += 1
        endpoints = self.draw([1, 2, 3])
        cacheable = name != STABLE and self.rng.random() < self.cache_share
        return Route(name, endpoints, cacheable, time.monotonic())

    def populate(self, routes: int) -> None:
        created = [self.new_route() for _ in range(routes)]
        self.writer.put_all([obj for route in created for obj in self.objects(route)])
        now = time.monotonic()
        with self.expected.lock:
            for route in created:
                route.last_write = now
                self.expected.routes[route.name] = route

    def change_endpoints(self) -> None:
        candidates = [n for n in self.expected.live() if n != STABLE]
        if not candidates:
            return
        name = self.rng.choice(candidates)
        endpoints = self.draw(list(range(1, MAX_ENDPOINTS + 1)), SIZE_WEIGHTS)
        self.put(endpoint_slice(NAMESPACE, name, self.endpoints(endpoints)))
        with self.expected.lock:
            route = self.expected.routes[name]
            route.endpoints, route.last_write = endpoints, time.monotonic()
        self.counts["endpoint changes"] += 1
        self.counts[f"changes to {len(endpoints)} endpoints"] += 1

    def replace_route(self) -> None:
        route = self.new_route()
        for obj in self.objects(route):
            self.put(obj)
        route.last_write = time.monotonic()
        with self.expected.lock:
            self.expected.routes[route.name] = route
        self.counts["routes created"] += 1
        candidates = [n for n in self.expected.live() if n not in (STABLE, route.name)]
        name = self.rng.choice(candidates)
        old = self.expected.snapshot(name)
        ingress_object, slice_object, service_object = reversed(self.objects(old))
        self.delete(ingress_object)
        with self.expected.lock:
            gone = self.expected.routes[name]
            gone.deleted_at = gone.last_write = time.monotonic()
        self.delete(slice_object)
        self.delete(service_object)
        self.counts["routes deleted"] += 1

    def compact(self, start: float) -> None:
        """Compact to the current revision (a read of the stable Service tells it)."""
        key = storage_key(service(NAMESPACE, STABLE)).encode()
        current = self.writer.loop.run_until_complete(self.writer.client.get(key))
        assert current is not None, "the stable Service is never deleted"
        revision = int(current.header.revision)
        self.writer.loop.run_until_complete(self.writer.client.compact(revision, physical=True))
        self.counts["compactions"] += 1
        self.events.append(f"{time.monotonic() - start:7.1f} s  compacted to revision {revision}")

    def restart_etcd(self, start: float) -> None:
        self.writer.close()
        self.etcd.stop()
        down = time.monotonic()
        self.events.append(f"{down - start:7.1f} s  etcd stopped")
        time.sleep(ETCD_DOWN)
        self.etcd.start()
        self.writer = Writer(self.etcd)
        up = time.monotonic()
        self.events.append(f"{up - start:7.1f} s  etcd answering again ({up - down:.1f} s down)")
        self.counts["etcd restarts"] += 1

    def run(self, start: float, seconds: float, stop: threading.Event) -> None:
        end = start + seconds
        next_change = start
        # Half a period off the minute marks, where the sampler reads the processes.
        next_route = start + ROUTE_INTERVAL / 2
        next_compact = start + COMPACT_INTERVAL / 2
        restart_at: float | None = start + seconds / 2
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                return
            try:
                if restart_at is not None and now >= restart_at:
                    restart_at = None
                    self.restart_etcd(start)
                    continue
                if now >= next_compact:
                    next_compact += COMPACT_INTERVAL
                    self.compact(start)
                if now >= next_route:
                    next_route += ROUTE_INTERVAL
                    self.replace_route()
                if now >= next_change:
                    next_change = max(next_change + CHANGE_INTERVAL, now - CHANGE_INTERVAL)
                    self.change_endpoints()
            except Exception as exc:  # an etcd hiccup: counted, and the churn goes on
                self.counts["failed writes"] += 1
                if self.counts["failed writes"] <= 5:
                    self.events.append(f"{now - start:7.1f} s  write failed: {exc!r}")
                time.sleep(0.1)
            stop.wait(max(0.0, min(next_change, next_route, next_compact) - time.monotonic()))

    def close(self) -> None:
        self.writer.close()


# --- the run ------------------------------------------------------------------------------------


def wrk_process(url: str, host: str, seconds: float, connections: int = 32) -> subprocess.Popen:
    """wrk as bench/common.wrk runs it, in the background for the whole run."""
    return subprocess.Popen(
        wrk_command(url, host, seconds, connections),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def x_cache(port: int, host: str, path: str) -> str:
    """The X-Cache header of one GET ("MISS", "HIT"), or "none": Varnish on the way or not."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        return response.getheader("X-Cache") or "none"
    finally:
        connection.close()


def production_config(path: Path) -> None:
    """The test config, made production-like: etcd backoff defaults, log level INFO."""
    document = yaml.safe_load(path.read_text())
    document["etcd"].pop("backoff_initial", None)
    document["etcd"].pop("backoff_max", None)
    document["watcher"]["log_level"] = "INFO"
    path.write_text(yaml.safe_dump(document))


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    seconds = args.minutes * 60
    stopping: list[Any] = []  # (what, stop) in start order; stopped in reverse
    stop = threading.Event()
    figures: dict[str, Any] = {
        "settings": {
            "minutes": args.minutes,
            "routes": args.routes,
            "pool": args.pool,
            "varnish": args.varnish,
            "cache_share": args.cache_share if args.varnish else 0.0,
            "sample": args.sample,
            "hard_stop_after": args.hard_stop_after,
            "seed": args.seed,
            "work": str(work),
        }
    }
    wrk: subprocess.Popen | None = None
    churn: Churn | None = None
    checker: Checker | None = None
    watcher: WatcherProcess | None = None
    try:
        backends = StaticBackends(work, args.pool)
        stopping.append(("backends", backends.stop))
        etcd = Etcd(work / "etcd")
        etcd.start()
        stopping.append(("etcd", etcd.stop))
        directory = work / "haproxy"
        directory.mkdir()
        settings = dataclasses.replace(
            haproxy_settings(directory),
            log_target="stdout",
            hard_stop_after=args.hard_stop_after,
        )
        varnish = None
        if args.varnish:
            varnish = Varnish.configure(work / "varnish", str(directory / "varnish-return.sock"))
        proxy = HAProxy(directory, settings, varnish.settings if varnish else None)
        proxy.start()
        stopping.append(("haproxy", proxy.stop))
        if varnish is not None:
            varnish.start()
            stopping.append(("varnish", varnish.stop))
        expected = Expected()
        churn = Churn(etcd, backends, expected, rng, args.cache_share if args.varnish else 0.0)
        stopping.append(("etcd client", churn.close))
        churn.populate(args.routes)
        config = watcher_config(work, etcd, proxy)
        production_config(config)
        watcher = WatcherProcess(config, work / "watcher.log")
        began = time.monotonic()
        watcher.start()
        stopping.append(("watcher", watcher.stop))
        last = f"svc{args.routes - 1}"
        wait_until(lambda: http_get(proxy.http_port, host_of(last))[0] == 200, 300)
        wait_until(lambda: http_get(proxy.http_port, host_of(STABLE))[0] == 200, 60)
        figures["first_sync_s"] = round(time.monotonic() - began, 2)
        # The first sync's log line follows the reload: wait for it, so it is not counted.
        wait_for(
            lambda: any(map(SYNC_LINE.match, watcher.log().splitlines())), 30, "first sync line"
        )
        print(
            f"{args.routes} routes served {figures['first_sync_s']:.1f} s after the watcher"
            f" started; soaking for {args.minutes:g} min (work directory {work})",
            flush=True,
        )

        if varnish is not None:
            cached = next(n for n, r in expected.routes.items() if r.cacheable)
            with contextlib.suppress(AssertionError):  # Varnish's health check: 200 ms
                wait_for(lambda: x_cache(proxy.http_port, host_of(cached), "/") != "none", 10)
            figures["varnish_check"] = [
                x_cache(proxy.http_port, host_of(cached), "/soak/warmup") for _ in range(2)
            ]
            print(f"Varnish on the way of {host_of(cached)}: {figures['varnish_check']}")

        watcher_log = WatcherLog(work / "watcher.log")
        start = time.monotonic()
        sampler = Sampler(proxy, watcher, watcher_log, start)
        sampler.begin()
        checker = Checker(proxy.http_port, expected, args.sample, start)
        wrk = wrk_process(f"http://127.0.0.1:{proxy.http_port}/", host_of(STABLE), seconds)
        checker.thread.start()

        def sample_minutes() -> None:
            for minute in range(1, int(args.minutes) + 1):
                while (left := start + 60 * minute - time.monotonic()) > 0:
                    if stop.wait(min(left, PEAK_INTERVAL)):
                        return
                    sampler.peak_rss = max(sampler.peak_rss, rss_mb(sampler.pid))
                try:
                    row = sampler.sample(minute)
                except Exception as exc:
                    print(f"  minute {minute}: no sample: {exc!r}", flush=True)
                    continue
                print(
                    f"  minute {minute}: watcher {row['watcher_rss_mb']:.0f} MB,"
                    f" {row['watcher_cpu_s']:.1f} s CPU; {row['haproxy_reloads']} reloads;"
                    f" {len(checker.open)} wrong routes open",
                    flush=True,
                )

        sampling = threading.Thread(target=sample_minutes, name="sampler", daemon=True)
        sampling.start()
        churn.run(start, seconds, stop)
        end = time.monotonic()
        sampling.join(30)
        checker.stop.set()
        checker.thread.join(30)
        output = wrk.communicate(timeout=60)[0]
        wrk = None
        load = parse_wrk(output)
        load.pop("output")
        figures["wrk"] = load
        figures["churn"] = dict(churn.counts)
        figures["events"] = churn.events
        figures["checker"] = checker.figures(end)
        figures["minutes"] = sampler.rows
        figures["peak_watcher_rss_mb"] = round(sampler.peak_rss, 1)
        watcher_log.read()
        figures["watcher"] = {
            "reloads_by_cause": dict(watcher_log.reloads),
            "runtime_updates": watcher_log.runtime,
            "file_writes": watcher_log.written,
            "reloads_without_after": watcher_log.without_cause,
            "problems": dict(watcher_log.problems.most_common(10)),
            "tracebacks": watcher_log.tracebacks,
            "exit": sampler.watcher_exit,
        }
    finally:
        stop.set()
        if checker is not None:
            checker.stop.set()
        if wrk is not None and wrk.poll() is None:
            wrk.send_signal(signal.SIGTERM)
            wrk.wait(10)
        for what, stopper in reversed(stopping):
            try:
                result = stopper()
                if what == "watcher":
                    figures["watcher_returncode"] = result
            except Exception as exc:
                print(f"stopping {what}: {exc!r}", file=sys.stderr)
    if figures.get("watcher_returncode") not in (0, None) and watcher is not None:
        print(f"the watcher exited with {figures['watcher_returncode']}; its log ends:")
        print(watcher.log()[-3000:])
    return figures


# --- the report ---------------------------------------------------------------------------------


def durations(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"median {statistics.median(values):.2f} s, p99 {percentile(values, 0.99):.2f} s,"
        f" max {max(values):.2f} s"
    )


COLUMNS = [
    ("min", "minute", "{:>3}"),
    ("w MB", "watcher_rss_mb", "{:>6.0f}"),
    ("w CPU", "watcher_cpu_s", "{:>6.1f}"),
    ("chk CPU", "checks_cpu_s", "{:>7.1f}"),
    ("fds", "watcher_fds", "{:>4}"),
    ("wkr", "workers", "{:>3}"),
    ("old", "old_workers", "{:>3}"),
    ("wkr MB", "worker_rss_mb", "{:>6.0f}"),
    ("old MB", "old_workers_rss_mb", "{:>6.0f}"),
    ("gens", "generations", "{:>4}"),
    ("reloads", "haproxy_reloads", "{:>7}"),
    ("w rel", "watcher_reloads", "{:>5}"),
    ("runtime", "watcher_runtime", "{:>7}"),
    ("stopped", "stopped_total", "{:>8}"),
    ("other lines", "other_lines", "{:>11}"),
]


def report(figures: dict[str, Any]) -> None:
    load, checker, rows = figures["wrk"], figures["checker"], figures["minutes"]
    settings = figures["settings"]
    print()
    print(
        f"soak: {settings['minutes']:g} min, {settings['routes']} routes,"
        f" pool of {settings['pool']} backends"
        + (f", Varnish ({settings['cache_share']:.0%} cacheable)" if settings["varnish"] else "")
    )
    churn = figures["churn"]
    print(
        f"churn: {churn.get('endpoint changes', 0)} endpoint changes,"
        f" {churn.get('routes created', 0)} routes created,"
        f" {churn.get('routes deleted', 0)} deleted, {churn.get('compactions', 0)} compactions,"
        f" {churn.get('etcd restarts', 0)} etcd restart, {churn.get('failed writes', 0)}"
        " failed writes"
    )
    big = sum(v for k, v in churn.items() if k.startswith("changes to") and int(k.split()[2]) > 4)
    huge = sum(v for k, v in churn.items() if k.startswith("changes to") and int(k.split()[2]) > 8)
    print(f"  endpoint sets of more than 4: {big}, of more than 8: {huge}")
    for event in figures["events"]:
        print(f"  {event}")
    print(
        f"wrk on {host_of(STABLE)} (32 connections): {load['requests']} requests,"
        f" {load['rps']:.0f}/s, p99 {load.get('p99_ms', 0):.2f} ms;"
        f" non-2xx {load['non_2xx']}; socket errors {load['socket_errors']}"
        f" ({load['socket_errors_detail']})"
    )
    observations = checker["observations"]
    in_flight = [o for o in observations if o["in_flight"]]
    stale = [o for o in observations if not o["in_flight"]]
    still_open = [o for o in observations if not o["closed"]]
    round_seconds = [r[1] for r in checker["round_s"]] or [0.0]
    slowest = max(checker["round_s"], key=lambda r: r[1], default=[0.0, 0.0, 0])
    print(
        f"checker: {checker['checks']} checks in {checker['rounds']} rounds"
        f" (median {statistics.median(round_seconds):.2f} s, slowest"
        f" {slowest[1]:.1f} s at {slowest[0]:.0f} s), {len(checker['slow_checks'])} checks"
        " slower than 1 s,"
        f" {checker['disagreeing_checks']} disagreed"
        + (f"; checker failed: {checker['error']}" if checker["error"] else "")
    )
    print(
        f"wrong-route observations: {len(observations)}, {len(in_flight)} within"
        f" {IN_FLIGHT:g} s of a write to the route, {len(stale)} later;"
        f" {len(still_open)} still open at the end"
    )
    print(f"  durations, all: {durations([o['duration_s'] for o in observations])}")
    print(f"  durations, within {IN_FLIGHT:g} s: {durations([o['duration_s'] for o in in_flight])}")
    print(f"  durations, later: {durations([o['duration_s'] for o in stale])}")
    print(
        "  from the write to the first check that agreed:"
        f" {durations([o['write_to_agreement_s'] for o in observations])}"
    )
    for obs in sorted(observations, key=lambda o: -o["duration_s"])[:8]:
        print(
            f"    {obs['route']:>8} at {obs['opened_s']:7.1f} s for {obs['duration_s']:6.2f} s"
            f" ({obs['since_write_s']:.2f} s after a write): saw {obs['seen']},"
            f" expected {obs['expected'][:60]}" + ("" if obs["closed"] else " [open]")
        )
    print()
    print("per minute (w: the watcher; chk CPU: its children, the haproxy -c checks;")
    print(" wkr/old: HAProxy's current and old workers; stopped: 'Proxy ... stopped' lines)")
    print("  ".join(title for title, _, _ in COLUMNS))
    for row in rows:
        row = {**row, "stopped_total": row["stopped_stderr"] + row["stopped_log"]}
        print("  ".join(form.format(row[key]).rjust(len(title)) for title, key, form in COLUMNS))
    watcher = figures["watcher"]
    reloads = sum(r["haproxy_reloads"] for r in rows)
    failed = sum(r["haproxy_failed_reloads"] for r in rows)
    causes = ", ".join(f"{k} {v}" for k, v in sorted(watcher["reloads_by_cause"].items()))
    print()
    print(
        f"reloads by cause (watcher log): {causes or 'none'};"
        f" runtime updates {watcher['runtime_updates']};"
        f" haproxy.cfg written after runtime changes {watcher['file_writes']}"
    )
    if watcher["reloads_without_after"]:
        print(
            f"  of the reloads, {watcher['reloads_without_after']} logged without '(after ...)'"
            " (the deferred file write after runtime changes)"
        )
    print(f"HAProxy reloads (master): {reloads}, failed {failed}")
    stderr = sum(r["stopped_stderr"] for r in rows)
    log = sum(r["stopped_log"] for r in rows)
    if reloads:
        print(
            f"'Proxy ... stopped' lines per reload: {(stderr + log) / reloads:.0f}"
            f" ({stderr / reloads:.0f} stderr [WARNING] copies, {log / reloads:.0f} log-target)"
        )
    others = sum(r["other_lines"] for r in rows)
    server_state = sum(r["server_state_lines"] for r in rows)
    print(
        f"other HAProxy log lines: {others}, of which {server_state} 'Server ... is ...'"
        " (runtime API changes); the rest requests and notices"
    )
    print(
        f"peak watcher RSS (read every {PEAK_INTERVAL:g} s):"
        f" {figures['peak_watcher_rss_mb']:.0f} MB"
    )
    if watcher["problems"] or watcher["tracebacks"]:
        print(f"watcher warnings/errors ({watcher['tracebacks']} tracebacks):")
        for line, count in watcher["problems"].items():
            print(f"  {count:>5} x {line}")
    if watcher["exit"]:
        print(f"the watcher {watcher['exit']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--routes", type=int, default=500)
    parser.add_argument("--pool", type=int, default=24, help="static backend addresses")
    parser.add_argument("--sample", type=int, default=150, help="routes checked per round")
    parser.add_argument("--varnish", action="store_true", help="with the Varnish tier")
    parser.add_argument("--cache-share", type=float, default=0.2, help="with --varnish")
    parser.add_argument("--hard-stop-after", default="10s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args()
    if args.routes < 2 or args.pool < MAX_ENDPOINTS or args.sample < 1:
        parser.error(f"--routes must be at least 2, --pool at least {MAX_ENDPOINTS}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: not empty")
        figures = soak(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="bw-soak-") as work:
            figures = soak(args, Path(work))
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
