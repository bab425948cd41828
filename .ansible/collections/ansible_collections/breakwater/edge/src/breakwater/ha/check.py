"""Should this node hold the edge's VIPs?  Asked of the edge itself (docs/ha.md).

Three probes, each bounded by ``ha.check_timeout``:

- HAProxy's master answers ``show proc`` and has a worker;
- the monitor frontend (``haproxy.monitor_binds``) answers 200; its 503 "out of
  rotation" is a *planned* failure (``edge_node state=out_of_rotation``);
- the watcher's heartbeat is fresh, and what it serves came from etcd -- or etcd is
  away and it serves the last good state, as every node then does.

Only what is wrong with this node counts: an etcd outage or a backend down is the same
on every node, and withdrawing all of them for it would take down what serves.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from breakwater.targets.haproxy_api import HAProxyError, show_proc

OUT_OF_ROTATION = "out of rotation"  # the monitor's 503 body (haproxy.cfg.j2)


@dataclass(frozen=True)
class Verdict:
    """One check: ``ok``; ``soft`` failures (the watcher still syncing after a start)
    keep a healthy node healthy but do not make an unhealthy one healthy; ``planned``:
    the node was taken out of rotation on purpose."""

    ok: bool
    soft: bool = False
    planned: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probes:
    """Where the probes look (from the watcher's settings)."""

    master_socket: str
    monitor: tuple[str, int] | str  # (host, port), or a unix socket path
    heartbeat_file: str | None
    heartbeat_max_age: float
    timeout: float


def monitor_address(bind: str) -> tuple[str, int] | str:
    """Where to ask the monitor, from its HAProxy ``bind`` line: the address it
    listens on, loopback for a wildcard, or the unix socket's path."""
    address = bind.split()[0] if bind.split() else ""
    for family in ("ipv4@", "ipv6@"):
        if address.startswith(family):
            address = address[len(family) :]
    if address.startswith("unix@"):
        return address[len("unix@") :]
    if address.startswith("/"):
        return address
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"monitor bind {bind!r}: no port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host in ("", "*", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


async def _probe_master(probes: Probes) -> tuple[str | None, bool]:
    """(reason it failed or None, whether the master refused the connection: it does
    for the moment it re-executes on a reload, while its workers serve on)."""
    try:
        table = await show_proc(probes.master_socket, probes.timeout)
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        return f"HAProxy's master socket {probes.master_socket}: {exc}", True
    except (HAProxyError, OSError, TimeoutError) as exc:
        reason = exc or type(exc).__name__
        return f"HAProxy's master socket {probes.master_socket}: {reason}", False
    if not table.workers:
        return "HAProxy's master has no worker", False
    return None, False


async def _probe_monitor(probes: Probes) -> tuple[str | None, bool]:
    """(reason it failed or None, whether the failure was out of rotation)."""
    where = probes.monitor
    shown = where if isinstance(where, str) else f"{where[0]}:{where[1]}"
    try:
        if isinstance(where, str):
            connect = asyncio.open_unix_connection(where)
        else:
            connect = asyncio.open_connection(where[0], where[1])
        reader, writer = await asyncio.wait_for(connect, probes.timeout)
        try:
            writer.write(b"GET / HTTP/1.0\r\nHost: breakwater-edge-health\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(4096), probes.timeout)
        finally:
            writer.close()
    except (OSError, TimeoutError) as exc:
        return f"monitor {shown}: {exc or type(exc).__name__}", False
    status_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    if len(parts) >= 2 and parts[1] == "200":
        return None, False
    body = reply.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
    if len(parts) >= 2 and parts[1] == "503" and body == OUT_OF_ROTATION:
        return f"monitor {shown} answered 503: {OUT_OF_ROTATION}", True
    return f"monitor {shown} answered {status_line!r}", False


def judge_heartbeat(
    heartbeat: dict[str, object] | None, max_age: float, now: float
) -> tuple[str | None, bool]:
    """(reason, soft) from the watcher's heartbeat; (None, False) when it is fine."""
    if heartbeat is None:
        return "no watcher heartbeat", False
    written = heartbeat.get("written_at")
    if not isinstance(written, int | float):
        return "the watcher heartbeat has no time", False
    age = now - written
    if age > max_age:
        return f"the watcher's heartbeat is {age:.0f} s old (watcher stopped or hung)", False
    if heartbeat.get("synced") or not heartbeat.get("etcd_connected"):
        return None, False  # synced from etcd, or etcd away: serving the last good state
    started = heartbeat.get("started_at")
    syncing = now - started if isinstance(started, int | float) else max_age + 1
    if syncing <= max_age:
        return f"the watcher started {syncing:.0f} s ago and has not synced yet", True
    return f"the watcher is connected to etcd but has not synced in {syncing:.0f} s", False


def read_state(path: str | None) -> dict[str, object] | None:
    """A small JSON object another process keeps (the watcher's heartbeat,
    edge-health's state file), or None when it is not there or not whole."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


async def check(probes: Probes, now: float | None = None) -> Verdict:
    """Ask the edge, all probes at once."""
    (master, refused), (monitor, out_of_rotation) = await asyncio.gather(
        _probe_master(probes), _probe_monitor(probes)
    )
    heartbeat, heartbeat_soft = judge_heartbeat(
        read_state(probes.heartbeat_file),
        probes.heartbeat_max_age,
        time.time() if now is None else now,
    )
    hard: list[str] = []
    soft: list[str] = []
    if master:
        # refused while the monitor answers: a reload's re-exec, HAProxy serves on
        (soft if refused and (monitor is None or out_of_rotation) else hard).append(master)
    if monitor and not out_of_rotation:
        hard.append(monitor)
    if heartbeat:
        (soft if heartbeat_soft else hard).append(heartbeat)
    planned = out_of_rotation and not hard
    reasons = tuple(([monitor] if out_of_rotation and monitor else []) + hard + soft)
    return Verdict(
        ok=not reasons,
        soft=bool(soft) and not hard and not planned,
        planned=planned,
        reasons=reasons,
    )
