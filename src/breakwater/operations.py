"""Operations on an edge node: installing a rendered HAProxy configuration the way
the watcher does, and day-2 operations through HAProxy's runtime API.

Used by the Ansible modules ``haproxy_config``, ``haproxy_server``, ``edge_node`` and
``edge_info``, through :mod:`breakwater.edge`.  Runtime states (drain, maintenance)
last until HAProxy next reloads, like every runtime API change; to take a server
away for good, change its source (scale the workload, or set ``state: drain`` on a
plain route's server).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import os
import re
import shlex
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from breakwater.config import Config
from breakwater.ha.frr import FRR, FRRError
from breakwater.ha.vrrp import vrrp_states
from breakwater.render.haproxy import RenderedConfig
from breakwater.render.slots import FREE_SLOT
from breakwater.targets.haproxy_api import (
    HAProxyError,
    RuntimeSession,
    runtime_reply_ok,
    show_proc,
)
from breakwater.targets.staging import (
    FileTarget,
    ensure_node_state,
    generation_dirs,
    remove_old_generations,
    write_generation,
)
from breakwater.targets.varnish_cli import VarnishCLI, VarnishError, parse_vcl_list, read_secret

AdminState = Literal["ready", "drain", "maint"]
NODE_STATE_MAP = "node-state.map"
DRAINING_KEY = "draining"

# show servers state: srv_admin_state bits (HAProxy's SRV_ADMF_*)
_FORCED_MAINT, _INHERITED_MAINT, _CONFIG_MAINT, _FORCED_DRAIN = 0x01, 0x02, 0x04, 0x08
_DRAIN_BITS = 0x08 | 0x10 | 0x40


@dataclass(frozen=True)
class ConfigChange:
    """What installing a rendered haproxy.cfg changed (or, in check mode, would)."""

    before: str | None  # haproxy.cfg as it was (None: there was none)
    after: str
    written: tuple[str, ...]  # paths written: node-state.map, the generation, haproxy.cfg
    pruned: tuple[str, ...]  # older generation directories removed

    @property
    def changed(self) -> bool:
        return bool(self.written or self.pruned)


_GENERATION = re.compile(r"gen-[0-9a-f]{16}")


async def install_haproxy_config(
    config_file: str,
    rendered: RenderedConfig,
    check_mode: bool = False,
    haproxy_binary: str = "haproxy",
) -> ConfigChange:
    """Install ``rendered`` with the watcher's own staging steps: the generation
    directory and ``node-state.map`` first, then haproxy.cfg staged beside itself,
    checked with ``haproxy -c`` and renamed over the old one (only when its bytes
    differ), then every other generation directory beside it removed.

    HAProxy is not reloaded (the caller does that).  A failed check raises
    :class:`~breakwater.targets.staging.CheckFailed` and leaves haproxy.cfg as it was.
    """
    generation_dir = os.path.normpath(rendered.generation_dir)
    config_dir, name = os.path.split(generation_dir)
    if not os.path.isabs(generation_dir) or not _GENERATION.fullmatch(name):
        raise ValueError(f"{generation_dir} is not a generation directory (/…/gen-<16 hex digits>)")
    rendered = dataclasses.replace(rendered, generation_dir=generation_dir)
    target = FileTarget(config_file, [haproxy_binary, "-c", "-f", "{}"])
    before = target.current()
    node_state = os.path.join(config_dir, NODE_STATE_MAP)
    written = [
        path
        for path, missing in (
            (node_state, not os.path.exists(node_state)),
            (generation_dir, not os.path.isdir(generation_dir)),
            (config_file, before != rendered.config),
        )
        if missing
    ]
    existing = sorted(os.listdir(config_dir)) if os.path.isdir(config_dir) else []
    others = [
        os.path.join(config_dir, entry)
        for entry in existing
        if _GENERATION.fullmatch(entry) and entry != name
    ]
    # What the watcher keeps after a reload: the generation in use and the one before
    # it (the configuration being replaced, or else the newest other one). Keeping the
    # same here makes a run on a node the watcher keeps report nothing to change.
    if before != rendered.config:
        previous = set(generation_dirs(before))
    else:
        previous = {max(others, key=os.path.getmtime)} if others else set()
    pruned = [path for path in others if path not in previous]
    if not check_mode:
        os.makedirs(config_dir, mode=0o755, exist_ok=True)
        ensure_node_state(config_dir)
        write_generation(rendered)
        if before != rendered.config:
            await target.write_checked(rendered.config)
        remove_old_generations(config_dir, {generation_dir, *previous})
    return ConfigChange(before, rendered.config, tuple(written), tuple(pruned))


@dataclass(frozen=True)
class ServerStatus:
    backend: str
    server: str
    address: str
    port: int
    admin: AdminState
    up: bool
    weight: int
    sessions: int


def _admin_state(bits: int) -> AdminState:
    if bits & (_FORCED_MAINT | _INHERITED_MAINT | _CONFIG_MAINT):
        return "maint"
    if bits & _DRAIN_BITS:
        return "drain"
    return "ready"


async def sessions(runtime: RuntimeSession) -> dict[tuple[str, str], int]:
    """Current sessions (scur) of every proxy and server, by (proxy, server name)."""
    text = await runtime.command("show stat")
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {(row["pxname"], row["svname"]): int(row["scur"] or 0) for row in rows}


async def server_states(runtime: RuntimeSession, backend: str | None = None) -> list[ServerStatus]:
    """The servers of ``backend`` (or of every backend), free slots left out."""
    text = await runtime.command(f"show servers state {backend or ''}".strip())
    if text.startswith("Can't find backend"):
        raise HAProxyError(f"backend {backend} does not exist")
    current = await sessions(runtime)
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 19 or line.startswith("#") or not fields[0].isdigit():
            continue
        name, server = fields[1], fields[3]
        if f"{fields[4]}:{fields[18]}" == FREE_SLOT:
            continue  # a free slot the watcher keeps for new endpoints, not a server
        found.append(
            ServerStatus(
                backend=name,
                server=server,
                address=fields[4],
                port=int(fields[18]),
                admin=_admin_state(int(fields[6])),
                up=fields[5] == "2",
                weight=int(fields[7]),
                sessions=current.get((name, server), 0),
            )
        )
    return found


async def set_server_state(
    socket_path: str,
    backend: str,
    server: str | None,
    state: AdminState,
    wait: bool = False,
    timeout: float = 300.0,
    check_mode: bool = False,
) -> tuple[list[ServerStatus], list[ServerStatus]]:
    """Set ``server`` (or every server of ``backend``) to ``state``; (before, after).

    With ``wait``, drain and maint return only once the servers' sessions reach zero,
    or raise :class:`HAProxyError` when ``timeout`` passes first.
    """
    runtime = RuntimeSession(socket_path)
    try:
        before = [s for s in await server_states(runtime, backend) if server in (None, s.server)]
        if server is not None and not before:
            raise HAProxyError(f"server {backend}/{server} does not exist")
        if check_mode:
            return before, before
        for status in before:
            if status.admin != state:
                command = f"set server {backend}/{status.server} state {state}"
                reply = await runtime.command(command)
                if not runtime_reply_ok(command, reply):
                    raise HAProxyError(f"{command}: {reply}")
        deadline = time.monotonic() + timeout
        while True:
            after = [s for s in await server_states(runtime, backend) if server in (None, s.server)]
            if not wait or state == "ready" or all(s.sessions == 0 for s in after):
                return before, after
            if time.monotonic() > deadline:
                busy = ", ".join(f"{s.server} ({s.sessions})" for s in after if s.sessions)
                raise HAProxyError(f"sessions still open after {timeout:.0f}s: {busy}")
            await asyncio.sleep(0.5)
    finally:
        await runtime.close()


async def set_node_rotation(
    socket_path: str,
    config_dir: str,
    in_rotation: bool,
    wait: bool = False,
    timeout: float = 300.0,
    frontend: str = "bw_public",
    check_mode: bool = False,
) -> tuple[bool, bool]:
    """Put this node in or out of rotation: its monitor URI answers 200 or 503.

    The state is a runtime map entry and the file ``node-state.map`` beside the
    configuration, so it survives reloads.  Returns (was in rotation, is in rotation).
    """
    map_path = os.path.join(config_dir, NODE_STATE_MAP)
    runtime = RuntimeSession(socket_path)
    try:
        entries = await runtime.command(f"show map {map_path}")
        if entries.startswith("Unknown map"):
            raise HAProxyError(f"HAProxy has no map {map_path}: is the monitor frontend on?")
        was_in = DRAINING_KEY not in entries.split()
        if check_mode or was_in == in_rotation:
            return was_in, was_in if check_mode else in_rotation
        with open(map_path + ".staged", "w", encoding="utf-8") as handle:
            handle.write("" if in_rotation else f"{DRAINING_KEY} 1\n")
        # The map keeps its owner, group and mode (the watcher's user writes it too).
        current = os.stat(map_path)
        os.chown(map_path + ".staged", current.st_uid, current.st_gid)
        os.chmod(map_path + ".staged", current.st_mode & 0o7777)
        os.replace(map_path + ".staged", map_path)
        command = (
            f"del map {map_path} {DRAINING_KEY}"
            if in_rotation
            else f"add map {map_path} {DRAINING_KEY} 1"
        )
        reply = await runtime.command(command)
        if reply:
            raise HAProxyError(f"{command}: {reply}")
        if wait and not in_rotation:
            await wait_no_sessions(runtime, timeout, frontend)
        return was_in, in_rotation
    finally:
        await runtime.close()


async def wait_no_sessions(
    runtime: RuntimeSession, timeout: float, frontend: str = "bw_public"
) -> float:
    """Wait until ``frontend`` has no session left; the seconds it took."""
    started = time.monotonic()
    while True:
        current = (await sessions(runtime)).get((frontend, "FRONTEND"), 0)
        if current == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise HAProxyError(f"{frontend} still has {current} sessions after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def edge_info(
    socket_path: str,
    status_file: str | None,
    health_file: str | None = None,
    vrrp_dir: str | None = None,
    vtysh: str | None = None,
) -> dict[str, Any]:
    """What the node serves now: the watcher's status, HAProxy's live servers, and
    (docs/ha.md) edge-health's verdict, keepalived's VRRP states and FRR's BGP peers."""
    info: dict[str, Any] = {"watcher": None, "servers": [], "health": None, "vrrp": [], "bgp": None}
    if status_file and os.path.exists(status_file):
        with open(status_file, encoding="utf-8") as handle:
            info["watcher"] = json.load(handle)
    if health_file and os.path.exists(health_file):
        with open(health_file, encoding="utf-8") as handle:
            info["health"] = json.load(handle)
    info["vrrp"] = vrrp_states(vrrp_dir) if vrrp_dir else []
    if vtysh and os.path.exists(shlex.split(vtysh)[0]):
        try:
            info["bgp"] = {"peers": await FRR(vtysh, 0, ()).summary(), "error": None}
        except FRRError as exc:
            info["bgp"] = {"peers": [], "error": str(exc)}
    runtime = RuntimeSession(socket_path)
    try:
        info["servers"] = [
            asdict(s) for s in await server_states(runtime) if s.backend.startswith("be_")
        ]
    finally:
        await runtime.close()
    return info


# --- breakwater status -------------------------------------------------------------


async def edge_status(config: Config) -> dict[str, Any]:
    """The watcher's status file, HAProxy's processes and Varnish's active VCL, and
    what is wrong (``problems``: empty when the edge serves what etcd says)."""
    status: dict[str, Any] = {"watcher": None, "haproxy": None, "varnish": None}
    problems: list[str] = []
    path = config.watcher.status_file
    try:
        with open(path or "", encoding="utf-8") as handle:
            watcher = json.load(handle)
    except (OSError, ValueError) as exc:
        watcher = None
        problems.append(f"no watcher status in {path}: {exc}")
    if watcher is not None:
        # The routing model: `breakwater catalog` prints it; of it, the Gateway API's
        # status conditions are the status's.
        catalog = watcher.pop("catalog", None)
        if isinstance(catalog, dict) and catalog.get("gateway_api"):
            status["gateway_api"] = catalog["gateway_api"]
        status["watcher"] = watcher
        problems.extend(_watcher_problems(watcher))
    try:
        table = await show_proc(config.haproxy.master_socket)
        status["haproxy"] = {
            "master_pid": table.master_pid,
            "reloads": table.reloads,
            "failed_reloads": table.failed,
            "workers": list(table.workers),
        }
        if not table.workers:
            problems.append("HAProxy has no worker")
    except (HAProxyError, OSError, TimeoutError) as exc:
        problems.append(f"HAProxy's master socket {config.haproxy.master_socket}: {exc}")
    if config.varnish.enabled:
        try:
            secret = read_secret(config.varnish.secret_file)
            async with VarnishCLI(config.varnish.admin, secret, timeout=5) as cli:
                loaded = parse_vcl_list(await cli.command("vcl.list"))
            active = [vcl.name for vcl in loaded if vcl.active]
            status["varnish"] = {"active_vcl": active[0] if active else None}
            if not active:
                problems.append("Varnish has no active VCL")
        except (VarnishError, OSError, TimeoutError) as exc:
            problems.append(f"Varnish at {config.varnish.admin}: {exc}")
    status["problems"] = problems
    return status


def _watcher_problems(watcher: dict[str, Any]) -> list[str]:
    problems = []
    pid = watcher.get("pid")
    if isinstance(pid, int) and not _running(pid):
        problems.append(f"the watcher (pid {pid}) that wrote the status is not running")
    if not watcher.get("etcd_connected"):
        problems.append("the watcher is not connected to etcd: serving the last good state")
    if watcher.get("last_action") == "failed" or watcher.get("last_error"):
        problems.append(f"the last sync failed: {watcher.get('last_error')}")
    return problems


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # there, under another user
    return True


def status_lines(status: dict[str, Any], now: float | None = None) -> list[str]:
    """``breakwater status`` for people: a few lines, problems first."""
    now = time.time() if now is None else now
    lines = [f"PROBLEM: {problem}" for problem in status["problems"]]
    watcher = status["watcher"]
    if watcher is not None:
        connected = "connected" if watcher.get("etcd_connected") else "DISCONNECTED"
        lines.append(
            f"etcd: {connected}, revision {watcher.get('revision')}"
            f" (applied {watcher.get('revision_applied')})"
        )
        last = watcher.get("last_sync")
        age = f"{now - last:.0f} s ago" if isinstance(last, int | float) else "never"
        lines.append(f"last sync: {watcher.get('last_action')}, {age}")
        since = watcher.get("generation_since")
        served = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        lines.append(f"generation: {watcher.get('generation')}{served if since else ''}")
        behind = watcher.get("file_behind_since")
        if behind:
            lines.append(f"haproxy.cfg behind the runtime API for {now - behind:.0f} s")
        rejected = watcher.get("rejected_count", 0)
        lines.append(f"rejected objects: {rejected} (`breakwater catalog` lists them)")
        ignored = watcher.get("ignored_count", 0)
        if ignored:
            lines.append(f"ignored annotations: {ignored} (`breakwater migrate-report` lists them)")
    haproxy = status["haproxy"]
    if haproxy is not None:
        workers = ", ".join(str(pid) for pid in haproxy["workers"]) or "none"
        lines.append(
            f"haproxy: master {haproxy['master_pid']}, workers {workers},"
            f" {haproxy['reloads']} reloads ({haproxy['failed_reloads']} failed)"
        )
    if status["varnish"] is not None:
        lines.append(f"varnish: active VCL {status['varnish']['active_vcl']}")
    lines += gateway_lines(status.get("gateway_api") or {})
    return lines


def _conditions(conditions: list[dict[str, str]]) -> str:
    return ", ".join(
        c["type"] + ("" if c["status"] == "True" else f"=False ({c['reason']})") for c in conditions
    )


def gateway_lines(gateway: dict[str, Any]) -> list[str]:
    """The Gateway API's conditions, as the spec names them: each Gateway and listener,
    and each HTTPRoute's parents (``--json`` has the messages)."""
    lines = []
    for name, found in sorted(gateway.get("gateways", {}).items()):
        lines.append(f"gateway {name}: {_conditions(found['conditions'])}")
        for listener, state in sorted(found.get("listeners", {}).items()):
            lines.append(
                f"  listener {listener}: {_conditions(state['conditions'])};"
                f" {state['attachedRoutes']} routes attached"
            )
    for name, found in sorted(gateway.get("httproutes", {}).items()):
        for parent in found.get("parents", []):
            lines.append(
                f"httproute {name} -> {parent['parentRef']}: {_conditions(parent['conditions'])}"
            )
        if found.get("conditions"):
            lines.append(f"httproute {name}: {_conditions(found['conditions'])}")
    return lines
