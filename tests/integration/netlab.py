"""Network namespaces for the HA tests and the failover bench (docs/ha.md).

The pieces, each a small class that owns what it starts:

- :class:`Namespace`: ``ip netns`` with processes started inside it, its sysctls,
  every process in it killed at once (a node whose software died);
- :class:`Segment`: a layer-2 segment, a bridge in a namespace of its own with a
  veth to each node; a node's switch port down or up (a node whose link died);
- :class:`FRR`: zebra + bgpd + bfdd under an FRR pathspace (``-N``), its vtysh;
  an LB node's frr.conf is roles/bgp's template rendered (:func:`lb_frr_config`);
- :class:`Keepalived`: keepalived (VRRP only), in the foreground, with roles/keepalived's
  keepalived.conf and notify script rendered (:func:`keepalived_files`);
- :class:`NamespacedHAProxy`: the harness's HAProxy (our template), started in a
  namespace;
- :class:`EdgeLab`: the whole edge: one etcd and one real watcher per LB node (in
  the root namespace, see below), HAProxy, ``breakwater edge-health`` and
  keepalived and/or FRR on two LB nodes, a router (FRR, the upstream BGP peer, with
  multipath, BFD and GRACEFUL_SHUTDOWN honoured), a client behind the router and a
  backend on the segment.

The watchers and etcd run in the root namespace, on loopback: a watcher reaches its
HAProxy through unix sockets only (stats and master sockets, files), so the
namespace it runs in changes nothing but how it reaches etcd -- and from the root
namespace the test can seed etcd directly.  Each node's watcher writes the heartbeat
its edge-health reads.  A node "killed" (:meth:`LBNode.kill`) loses its watcher too.

Addresses are in 198.18.0.0/15 (RFC 2544's benchmarking range) and exist only in
the lab's namespaces; every name carries a per-lab prefix, so labs never meet.
Everything is removed by :meth:`EdgeLab.close` (also on failure: use it as a context
manager).  Needs root and ``ip netns``; :func:`missing` says what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)

from breakwater.catalog import Catalog
from breakwater.render.haproxy import render_shaped
from breakwater.targets.settings import HAProxySettings

FRR_DAEMONS = ("zebra", "bgpd", "bfdd")
FRR_DIR = Path("/usr/lib/frr")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# The lab's plan (198.18.0.0/15 only).
SEGMENT = "198.18.0.0/24"
ROUTER_SEGMENT = "198.18.0.1"
LB_ADDRESSES = ("198.18.0.11", "198.18.0.12")
BACKEND_ADDRESS = "198.18.0.21"
BACKEND_PORT = 8080
ROUTER_CLIENT = "198.18.1.1"
CLIENT_ADDRESS = "198.18.1.2"
VRRP_VIP = "198.18.0.100"  # on the segment, moved by keepalived
BGP_VIP = "198.18.2.100"  # anycast, on each node's lo, announced by edge-health
HOST = "failover.example"
ROUTER_ASN = 65000
LB_ASN = 65001


def missing() -> str | None:
    """Why the lab cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"bwprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"ip netns add fails: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def missing_daemons(*names: str) -> str | None:
    paths = {
        "keepalived": shutil.which("keepalived") or "/usr/sbin/keepalived",
        "frr": str(FRR_DIR / "bgpd"),
        "vtysh": shutil.which("vtysh") or "/usr/bin/vtysh",
    }
    for name in names:
        if not os.path.exists(paths[name]):
            return f"{name} is not installed ({paths[name]})"
    return None


def run(*args: str, check: bool = True, timeout: float = 30.0) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


# --- namespaces and segments ---------------------------------------------------------


@dataclass
class Namespace:
    name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def create(self) -> None:
        run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> str:
        return run("ip", "-n", self.name, *args, check=check)

    def exec(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def sysctl(self, key: str, value: str | int) -> None:
        self.exec("sysctl", "-qw", f"{key}={value}")

    def popen(self, args: Sequence[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        """A process inside the namespace (``ip netns exec`` execs it: same pid)."""
        handle = open(log, "ab")  # noqa: SIM115 - the child keeps it
        try:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *args],
                stdout=kwargs.pop("stdout", handle),
                stderr=handle,
                **kwargs,
            )
        finally:
            handle.close()
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        out = run("ip", "netns", "pids", self.name, check=False)
        return [int(pid) for pid in out.split()]

    def kill_all(self, sig: int = signal.SIGKILL) -> list[int]:
        """Every process in the namespace, at once (what is left of a dead node)."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        return pids

    def addresses(self, device: str) -> list[str]:
        out = json.loads(self.ip("-j", "-4", "addr", "show", "dev", device) or "[]")
        return [info["local"] for link in out for info in link.get("addr_info", [])]

    def delete(self) -> None:
        self.kill_all()
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        run("ip", "netns", "delete", self.name, check=False)


@dataclass
class Segment:
    """A bridge in its own namespace; each node joins it with a veth (``eth0`` in the
    node, ``p-<node>`` on the bridge)."""

    namespace: Namespace
    bridge: str = "br0"

    def create(self) -> None:
        """The bridge, in the (created) namespace."""
        self.namespace.ip("link", "add", self.bridge, "type", "bridge")
        self.namespace.ip("link", "set", self.bridge, "up")

    def port(self, node: Namespace) -> str:
        return f"p-{node.name[-10:]}"[:15]

    def attach(self, node: Namespace, address: str, device: str = "eth0") -> None:
        """``address`` with its prefix length: 198.18.0.11/24."""
        port = self.port(node)
        node.ip(
            "link",
            "add",
            device,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.namespace.name,
        )
        self.namespace.ip("link", "set", port, "master", self.bridge, "up")
        node.ip("addr", "add", address, "dev", device)
        node.ip("link", "set", device, "up")

    def link_down(self, node: Namespace) -> None:
        """The node's switch port down: the segment no longer hears it (nor it the
        segment), as when its cable or NIC dies."""
        self.namespace.ip("link", "set", self.port(node), "down")

    def link_up(self, node: Namespace) -> None:
        self.namespace.ip("link", "set", self.port(node), "up")


def veth(left: Namespace, left_address: str, right: Namespace, right_address: str) -> None:
    """A point-to-point link ``eth1`` between two namespaces."""
    left.ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", right.name)
    left.ip("addr", "add", left_address, "dev", "eth1")
    right.ip("addr", "add", right_address, "dev", "eth1")
    left.ip("link", "set", "eth1", "up")
    right.ip("link", "set", "eth1", "up")


# --- FRR -------------------------------------------------------------------------------


@dataclass
class FRR:
    """zebra, bgpd and bfdd of one FRR pathspace (``-N name``) inside a namespace."""

    namespace: Namespace
    name: str
    config: str

    @property
    def config_dir(self) -> Path:
        return Path("/etc/frr") / self.name

    @property
    def run_dir(self) -> Path:
        return Path("/var/run/frr") / self.name

    @property
    def vtysh_command(self) -> str:
        """What ``ha.vtysh`` is for this instance (vtysh reaches the daemons through
        the pathspace's unix sockets: the namespace it runs in does not matter)."""
        return f"/usr/bin/vtysh -N {self.name}"

    def start(self) -> None:
        for directory in (self.config_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
            shutil.chown(directory, "frr", "frr")
        (self.config_dir / "frr.conf").write_text(self.config)
        (self.config_dir / "vtysh.conf").write_text("")
        for path in (self.config_dir / "frr.conf", self.config_dir / "vtysh.conf"):
            shutil.chown(path, "frr", "frr")
        for daemon in FRR_DAEMONS:
            # No -f: each daemon would read all of frr.conf and choke on the others'
            # sections; vtysh -b hands each its part, as frrinit.sh does.
            self.namespace.exec(
                str(FRR_DIR / daemon),
                "-N",
                self.name,
                "-d",
                "-F",
                "datacenter",
                "--log",
                f"file:{self.run_dir / daemon}.log",
            )
        wait_for(lambda: "bfdd" in self.vtysh("show daemons"), what=f"FRR {self.name}")
        self.vtysh_boot()

    def vtysh_boot(self) -> None:
        out = run("vtysh", "-N", self.name, "-b", check=False)
        if "error" in out.lower():
            raise RuntimeError(f"vtysh -N {self.name} -b: {out}")

    def vtysh(self, *commands: str, timeout: float = 10.0) -> str:
        args = ["vtysh", "-N", self.name]
        for command in commands:
            args += ["-c", command]
        return run(*args, timeout=timeout)

    def json(self, command: str) -> Any:
        return json.loads(self.vtysh(command) or "{}")

    def pids(self) -> list[int]:
        pids = []
        for daemon in FRR_DAEMONS:
            with contextlib.suppress(OSError, ValueError):
                pids.append(int((self.run_dir / f"{daemon}.pid").read_text().split()[0]))
        return pids

    def stop(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.config_dir, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def router_frr_config(neighbors: Sequence[str]) -> str:
    """The upstream router: accepts the LB nodes' /32s, installs them all (ECMP),
    drops a dead node at BFD speed, and honours GRACEFUL_SHUTDOWN (RFC 8326) with
    local-preference 0."""
    members = "\n".join(f" neighbor {n} peer-group EDGE" for n in neighbors)
    return f"""frr defaults datacenter
hostname router
log syslog informational
!
bgp community-list standard GSHUT seq 5 permit graceful-shutdown
!
route-map FROM-EDGE permit 10
 match community GSHUT
 set local-preference 0
exit
route-map FROM-EDGE permit 20
exit
route-map TO-EDGE deny 10
exit
!
bfd
 profile edge
  detect-multiplier 3
  receive-interval 100
  transmit-interval 100
 exit
exit
!
router bgp {ROUTER_ASN}
 bgp router-id {ROUTER_SEGMENT}
 neighbor EDGE peer-group
 neighbor EDGE remote-as {LB_ASN}
 neighbor EDGE bfd
 neighbor EDGE bfd profile edge
 neighbor EDGE timers connect 1
{members}
 !
 address-family ipv4 unicast
  maximum-paths 8
  neighbor EDGE route-map FROM-EDGE in
  neighbor EDGE route-map TO-EDGE out
 exit-address-family
exit
!
"""


def _role_plugin() -> Any:
    """The collection's plugin_utils/ha.py (plain Python), for the roles' filters."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "breakwater_plugin_ha", REPO / "plugins" / "plugin_utils" / "ha.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_role(role: str, template: str, **variables: Any) -> str:
    """roles/<role>/templates/<template> rendered as Ansible would, with the role's
    defaults and vars under ``variables`` (which give what needs facts or filters)."""
    import jinja2
    import yaml

    context: dict[str, Any] = {"ansible_managed": "Ansible managed: rendered by netlab.py"}
    for layer in ("defaults", "vars"):
        path = REPO / "roles" / role / layer / "main.yml"
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            if not (isinstance(value, str) and "{{" in value):
                context[key] = value  # expressions: given in variables
    context.update(variables)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["comment"] = lambda text: "\n".join(
        f"# {line}" for line in str(text).splitlines()
    )
    source = (REPO / "roles" / role / "templates" / template).read_text()
    return environment.from_string(source).render(**context)


def lb_frr_config(hostname: str, router_id: str, neighbor: str, vips: Sequence[str]) -> str:
    """roles/bgp's frr.conf for an LB node peering with ``neighbor``: no network for
    the VIPs (edge-health adds them), an export policy that lets out exactly the
    VIPs, BFD on the session."""
    prefixes = [_role_plugin().host_prefix(vip) for vip in vips]
    return render_role(
        "bgp",
        "frr.conf.j2",
        bgp_asn=LB_ASN,
        bgp_peers=[{"address": neighbor, "remote_as": ROUTER_ASN}],
        bgp_vips=list(vips),
        bgp_router_id=router_id,
        bgp_hostname=hostname,
        __bgp_prefixes_v4=[p for p in prefixes if ":" not in p],
        __bgp_prefixes_v6=[p for p in prefixes if ":" in p],
        __bgp_accept_v4=[],
        __bgp_accept_v6=[],
    )


def keepalived_files(
    name: str, address: str, peer: str, priority: int, vip: str, directory: Path, track_file: str
) -> dict[str, str]:
    """roles/keepalived's keepalived.conf and notify script for one instance between
    two nodes over unicast (advert_int 0.5, no preemption: a node back in rotation
    does not take the VIP back from a healthy one); keyed by file name."""
    instances = [
        {
            "name": "breakwater",
            "interface": "eth0",
            "virtual_router_id": 51,
            "vips": [vip],
            "priority": priority,
            "advert_int": 0.5,
            "nopreempt": True,
            "unicast_peers": [peer],
            "unicast_src_ip": address,
        }
    ]
    facts = {
        "interfaces": ["lo", "eth0"],
        "eth0": {"ipv4": {"address": address, "netmask": "255.255.255.0"}},
    }
    rendered = _role_plugin().vrrp_instances(
        instances,
        facts,
        priority=100,
        advert_int=0.5,
        nopreempt=True,
        garp_master_delay=1,
        garp_master_refresh=60,
    )
    variables = {
        "keepalived_router_id": name,
        "keepalived_track_file": track_file,
        "keepalived_state_dir": str(directory / "vrrp"),
        "_keepalived_notify": str(directory / "vrrp-notify"),
        "__keepalived_instances": rendered,
    }
    return {
        "keepalived.conf": render_role("keepalived", "keepalived.conf.j2", **variables),
        "vrrp-notify": render_role("keepalived", "vrrp-notify.sh.j2", **variables),
    }


# --- keepalived --------------------------------------------------------------------------


@dataclass
class Keepalived:
    namespace: Namespace
    directory: Path
    files: dict[str, str]  # keepalived.conf and its notify script
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (self.directory / name).write_text(text)
        (self.directory / "vrrp-notify").chmod(0o755)
        conf = self.directory / "keepalived.conf"
        self.process = self.namespace.popen(
            [
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--no-syslog",
                "--use-file",
                str(conf),
                "--pid",
                str(self.directory / "keepalived.pid"),
                "--vrrp_pid",
                str(self.directory / "vrrp.pid"),
                "--checkers_pid",
                str(self.directory / "checkers.pid"),
                "--bfd_pid",
                str(self.directory / "bfd.pid"),
            ],
            self.directory / "keepalived.log",
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- HAProxy in a namespace ----------------------------------------------------------


@dataclass
class NamespacedHAProxy(HAProxy):
    """The harness's HAProxy, its master started inside ``namespace`` (reloads
    re-exec it there); the watcher and set_node_rotation reach it through its unix
    sockets from anywhere."""

    namespace: Namespace | None = None

    def start(self) -> None:
        assert self.namespace is not None
        rendered, _layout = render_shaped(Catalog(), None, {}, self.settings, self.varnish)
        from breakwater.targets.staging import ensure_node_state, write_generation

        os.makedirs(self.settings.config_dir, exist_ok=True)
        ensure_node_state(self.settings.config_dir)
        write_generation(rendered)
        Path(self.settings.config_file).write_text(rendered.config)
        for stale in (self.settings.master_socket, self.settings.stats_socket):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        self.process = self.namespace.popen(
            ["haproxy", "-W", "-S", self.settings.master_socket, "-f", self.settings.config_file],
            self.directory / "haproxy.log",
        )
        wait_for(lambda: os.path.exists(self.settings.stats_socket), what="stats socket")
        wait_for(lambda: self.processes().workers, what="an HAProxy worker")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            pids = [self.process.pid]
            with contextlib.suppress(Exception):
                pids += [int(pid) for pid in self.processes().workers]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(5)


def backend_haproxy_config(address: str, port: int) -> str:
    """The backend: HAProxy answering from memory with the address of the LB node
    that connected to it (the edge connects from its own segment address)."""
    return f"""global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend backend
    bind {address}:{port}
    http-request return status 200 content-type text/plain lf-string "via %[src]\\n"
"""


# --- the whole edge -------------------------------------------------------------------


@dataclass
class LBNode:
    name: str  # lb1, lb2
    namespace: Namespace
    address: str
    directory: Path
    haproxy: NamespacedHAProxy
    config_path: Path
    watcher: WatcherProcess
    edge_health: subprocess.Popen[bytes] | None = None
    keepalived: Keepalived | None = None
    frr: FRR | None = None

    @property
    def track_file(self) -> Path:
        return self.directory / "edge-health.track"

    @property
    def state_file(self) -> Path:
        return self.directory / "edge-health.json"

    @property
    def heartbeat_file(self) -> Path:
        return self.directory / "heartbeat.json"

    def health(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def healthy(self) -> bool:
        return bool(self.health().get("healthy"))

    def holds(self, vip: str) -> bool:
        return vip in self.namespace.addresses("eth0")

    def start_edge_health(self) -> None:
        self.edge_health = self.namespace.popen(
            [
                sys.executable,
                "-m",
                "breakwater.cli",
                "edge-health",
                "--config",
                str(self.config_path),
            ],
            self.directory / "edge-health.log",
        )

    def stop_edge_health(self) -> None:
        if self.edge_health and self.edge_health.poll() is None:
            self.edge_health.terminate()
            try:
                self.edge_health.wait(10)
            except subprocess.TimeoutExpired:
                self.edge_health.kill()
                self.edge_health.wait()

    def start(self) -> None:
        """HAProxy, the watcher, FRR, edge-health, keepalived: in the order the roles
        start them."""
        self.haproxy.start()
        if self.watcher.process is None or self.watcher.process.poll() is not None:
            self.watcher.start()
        if self.frr is not None:
            self.frr.start()
        self.start_edge_health()
        if self.keepalived is not None:
            self.keepalived.start()

    def kill(self) -> None:
        """Every process of the node at once (SIGKILL): the namespace's and its watcher."""
        self.namespace.kill_all()
        if self.watcher.process and self.watcher.process.poll() is None:
            self.watcher.process.kill()
            self.watcher.process.wait()

    def restart_after_kill(self) -> None:
        """A killed node back: what keepalived left behind (the VIP, its pid files)
        cleaned up as a reboot would, then everything started again."""
        if self.keepalived is not None:
            with contextlib.suppress(RuntimeError):
                self.namespace.ip("addr", "del", f"{VRRP_VIP}/24", "dev", "eth0")
            for pid_file in self.keepalived.directory.glob("*.pid"):
                pid_file.unlink()
        if self.frr is not None:
            for pid_file in self.frr.run_dir.glob("*.pid"):
                pid_file.unlink()
        self.start()

    def set_rotation(self, in_rotation: bool) -> None:
        """What drain_node.yml does on the node (edge_node): the same function."""
        import asyncio

        from breakwater.operations import set_node_rotation

        asyncio.run(
            set_node_rotation(
                self.haproxy.settings.stats_socket, self.haproxy.settings.config_dir, in_rotation
            )
        )

    def stop(self) -> None:
        if self.keepalived is not None:
            self.keepalived.stop()
        self.stop_edge_health()
        if self.frr is not None:
            self.frr.stop()
        self.watcher.stop()
        self.haproxy.stop()


@dataclass
class EdgeLab:
    """Two LB nodes on a segment with a router, a client behind it and a backend;
    ``vrrp`` and/or ``bgp`` for the HA mode(s)."""

    directory: Path
    vrrp: bool = True
    bgp: bool = True
    graceful_shutdown_seconds: float = 10.0
    # The client's keep-alive connections send a request every 10 ms: they are all
    # closed (Connection: close) well within this.
    drain_close_seconds: float = 1.0
    ha_interval: float = 0.5
    prefix: str = field(default_factory=lambda: f"bw{secrets.token_hex(2)}")
    namespaces: list[Namespace] = field(default_factory=list)
    nodes: list[LBNode] = field(default_factory=list)
    etcd: Etcd | None = None
    router_frr: FRR | None = None
    frr_configs: dict[str, str] = field(default_factory=dict)

    def _namespace(self, role: str) -> Namespace:
        namespace = Namespace(f"{self.prefix}-{role}")
        self.namespaces.append(namespace)
        namespace.create()
        return namespace

    def __enter__(self) -> EdgeLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment = Segment(self._namespace("sw"))
        self.segment.create()
        self.router = self._namespace("router")
        self.client = self._namespace("client")
        self.backend = self._namespace("backend")
        self.segment.attach(self.router, f"{ROUTER_SEGMENT}/24")
        veth(self.router, f"{ROUTER_CLIENT}/30", self.client, f"{CLIENT_ADDRESS}/30")
        self.client.ip("route", "add", "default", "via", ROUTER_CLIENT)
        self.router.sysctl("net.ipv4.ip_forward", 1)
        # ECMP by flow (addresses and ports): new connections spread over the nodes.
        self.router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)
        self.segment.attach(self.backend, f"{BACKEND_ADDRESS}/24")
        self.backend.ip("route", "add", "default", "via", ROUTER_SEGMENT)
        backend_dir = self.directory / "backend"
        backend_dir.mkdir(exist_ok=True)
        (backend_dir / "haproxy.cfg").write_text(
            backend_haproxy_config(BACKEND_ADDRESS, BACKEND_PORT)
        )
        self.backend.popen(
            ["haproxy", "-f", str(backend_dir / "haproxy.cfg")], backend_dir / "haproxy.log"
        )

        self.etcd = Etcd(self.directory / "etcd" / "data")
        self.etcd.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.etcd.start()
        store(self.etcd, service("shop", "web"))
        store(self.etcd, endpoint_slice("shop", "web", [(BACKEND_ADDRESS, BACKEND_PORT)]))
        store(self.etcd, ingress("shop", "web", HOST, "web"))

        for index, address in enumerate(LB_ADDRESSES):
            self.nodes.append(self._node(f"lb{index + 1}", address, LB_ADDRESSES[1 - index]))
        if self.bgp:
            self.router_frr = FRR(
                self.router, f"{self.prefix}-router", router_frr_config(LB_ADDRESSES)
            )
            self.router_frr.start()
        for node in self.nodes:
            node.start()
        self.wait_ready()

    def _node(self, name: str, address: str, peer: str) -> LBNode:
        namespace = self._namespace(name)
        self.segment.attach(namespace, f"{address}/24")
        namespace.ip("route", "add", "default", "via", ROUTER_SEGMENT)
        # HAProxy binds the VRRP VIP whether this node holds it or not.
        namespace.sysctl("net.ipv4.ip_nonlocal_bind", 1)
        if self.bgp:
            namespace.ip("addr", "add", f"{BGP_VIP}/32", "dev", "lo")
        directory = self.directory / name
        (directory / "haproxy").mkdir(parents=True, exist_ok=True)
        binds = ([f"{VRRP_VIP}:80"] if self.vrrp else []) + ([f"{BGP_VIP}:80"] if self.bgp else [])
        settings = HAProxySettings(
            config_dir=str(directory / "haproxy" / "breakwater"),
            config_file=str(directory / "haproxy" / "haproxy.cfg"),
            stats_socket=str(directory / "haproxy" / "admin.sock"),
            master_socket=str(directory / "haproxy" / "master.sock"),
            http_binds=tuple(binds),
            https_binds=("127.0.0.1:8443",),
            monitor_binds=("127.0.0.1:8404",),
            metrics_binds=("127.0.0.1:8405",),
            hard_stop_after="10s",
            log_target="stderr",
            maxconn=2000,
        )
        haproxy = NamespacedHAProxy(directory / "haproxy", settings, namespace=namespace)
        frr = None
        if self.bgp:
            config = lb_frr_config(name, address, ROUTER_SEGMENT, [BGP_VIP])
            self.frr_configs[name] = config
            frr = FRR(namespace, f"{self.prefix}-{name}", config)
        ha: dict[str, Any] = {
            "interval": self.ha_interval,
            "track_file": str(directory / "edge-health.track"),
            "state_file": str(directory / "edge-health.json"),
            "graceful_shutdown_seconds": self.graceful_shutdown_seconds,
            "drain_close_seconds": self.drain_close_seconds,
            "reassert_interval": 2.0,
        }
        if frr is not None:
            ha.update(bgp_asn=LB_ASN, bgp_prefixes=[f"{BGP_VIP}/32"], vtysh=frr.vtysh_command)
        config_path = watcher_config(
            directory, self.etcd, haproxy, ha=ha, watcher={"log_level": "INFO"}
        )
        watcher = WatcherProcess(config_path, directory / "watcher.log")
        keepalived = None
        if self.vrrp:
            keepalived = Keepalived(
                namespace,
                directory / "keepalived",
                keepalived_files(
                    name,
                    address,
                    peer,
                    110 if name == "lb1" else 100,
                    VRRP_VIP,
                    directory / "keepalived",
                    str(directory / "edge-health.track"),
                ),
            )
        return LBNode(
            name,
            namespace,
            address,
            directory,
            haproxy,
            config_path,
            watcher,
            keepalived=keepalived,
            frr=frr,
        )

    # --- what the tests look at -------------------------------------------------------

    def node(self, name: str) -> LBNode:
        return next(node for node in self.nodes if node.name == name)

    def by_address(self, address: str | None) -> str | None:
        return next((n.name for n in self.nodes if n.address == address), None)

    def get(self, vip: str, timeout: float = 2.0) -> tuple[int, str]:
        """One request from the client namespace: (status, body)."""
        out = self.client.exec(
            "curl",
            "-s",
            "-m",
            str(timeout),
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            f"Host: {HOST}",
            f"http://{vip}/",
            check=False,
            timeout=timeout + 5,
        )
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def served_via(self, vip: str) -> str | None:
        """Which LB node answered a request to ``vip`` (None: no answer)."""
        status, body = self.get(vip)
        words = body.split()
        return self.by_address(words[1]) if status == 200 and len(words) == 2 else None

    def vrrp_holders(self) -> list[str]:
        return [node.name for node in self.nodes if node.holds(VRRP_VIP)]

    def bgp_paths(self) -> list[dict[str, Any]]:
        """The router's paths to the BGP VIP (``show bgp ipv4 unicast VIP json``)."""
        assert self.router_frr is not None
        loaded = self.router_frr.json(f"show bgp ipv4 unicast {BGP_VIP}/32 json")
        return list(loaded.get("paths") or [])

    def fib_nexthops(self) -> list[str]:
        """The next hops of the BGP VIP in the router's kernel FIB."""
        out = json.loads(self.router.ip("-j", "route", "show", f"{BGP_VIP}/32") or "[]")
        hops = []
        for route in out:
            if "gateway" in route:
                hops.append(route["gateway"])
            hops += [hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop]
        if not hops and out and "nhid" in out[0]:
            group = json.loads(self.router.ip("-j", "nexthop", "show", "id", str(out[0]["nhid"])))
            for member in group[0].get("group", []):
                hop = json.loads(self.router.ip("-j", "nexthop", "show", "id", str(member["id"])))
                hops.append(hop[0]["gateway"])
        return sorted(hops)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every node healthy; the VRRP VIP on exactly one; the router with a path
        through each node in its FIB."""
        for node in self.nodes:
            wait_for(node.healthy, timeout, what=f"{node.name} healthy ({node.health()})")
        if self.vrrp:
            wait_for(lambda: len(self.vrrp_holders()) == 1, timeout, what="one VRRP master")
            wait_for(lambda: self.served_via(VRRP_VIP), timeout, what="the VRRP VIP to answer")
        if self.bgp:
            wanted = sorted(LB_ADDRESSES)
            wait_for(lambda: self.fib_nexthops() == wanted, timeout, what="ECMP to both nodes")
            wait_for(lambda: self.bfd_up() == wanted, timeout, what="BFD up with both nodes")

    def bfd_up(self) -> list[str]:
        """The router's BFD peers that are up."""
        assert self.router_frr is not None
        peers = self.router_frr.json("show bfd peers json")
        return sorted(peer["peer"] for peer in peers if peer.get("status") == "up")

    def client_process(
        self, vip: str, seconds: float, keep_alive: int = 4, interval: float = 0.01
    ) -> ClientRun:
        process = self.client.popen(
            [
                sys.executable,
                str(HERE / "netclient.py"),
                vip,
                "--host",
                HOST,
                "--seconds",
                str(seconds),
                "--keep-alive",
                str(keep_alive),
                "--interval",
                str(interval),
            ],
            self.directory / "client.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return ClientRun(process, self)

    def logs(self) -> str:
        """The tails of the daemons' logs, for a failed test."""
        parts = []
        for path in sorted(self.directory.glob("*/*.log")) + sorted(
            self.directory.glob("*/keepalived/*.log")
        ):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.relative_to(self.directory)}\n{text[-2500:]}")
        if self.router_frr is not None:
            with contextlib.suppress(Exception):
                parts.append(
                    "--- router: show bgp summary\n" + self.router_frr.vtysh("show bgp summary")
                )
        return "\n".join(parts)

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        for namespace in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                namespace.delete()
        frrs = [node.frr for node in self.nodes if node.frr] + (
            [self.router_frr] if self.router_frr else []
        )
        for frr in frrs:
            with contextlib.suppress(Exception):
                frr.remove()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.watcher.stop()
        if self.etcd is not None:
            with contextlib.suppress(Exception):
                self.etcd.stop(signal.SIGKILL)


# --- the client ---------------------------------------------------------------------


class ClientRun:
    """netclient.py in the client namespace; its records read as they come."""

    def __init__(self, process: subprocess.Popen[bytes], lab: EdgeLab) -> None:
        import threading

        self.process = process
        self.lab = lab
        self.records: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.records.append(json.loads(line))

    def since(self, start: float) -> list[dict[str, Any]]:
        return [r for r in list(self.records) if r["start"] >= start]

    def failures(self, start: float = 0.0) -> list[dict[str, Any]]:
        return [r for r in self.since(start) if not r["ok"]]

    def via(self, start: float = 0.0) -> set[str | None]:
        return {self.lab.by_address(r["via"]) for r in self.since(start) if r["ok"]}

    def stop(self) -> list[dict[str, Any]]:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.thread.join(5)
        return self.records

    def __enter__(self) -> ClientRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
