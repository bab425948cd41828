"""The sandboxes of the edge's units (issue #13, item 3): systemd-analyze's exposure
within the goals, and what the daemons must still do inside them."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner
import yaml

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
LB_NODES = RUNNER.get_hosts("lb")
ETCD_NODES = RUNNER.get_hosts("etcd")
# testinfra's podman backend (podman exec) instead of one ansible process per command.
testinfra_hosts = ["podman://" + name for name in LB_NODES]

WATCHER_CONFIG = "/etc/breakwater/watcher.yml"
WATCHER_USER = "breakwater"
# Issue #13: HAProxy and Varnish at most 4.0, the watcher at most 2.0. The exporter and
# etcd run without any capability: the watcher's goal holds for them too.
GOALS = {
    "haproxy.service": 4.0,
    "varnish.service": 4.0,
    "breakwater-watcher.service": 2.0,
    "prometheus-varnish-exporter.service": 2.0,
}
SANDBOXED = ["haproxy", "varnish", "prometheus-varnish-exporter"]


def lab_ip(host) -> str:
    return str(RUNNER.get_variables(host.backend.get_hostname())["lab_ip"])


def settings(host) -> dict:
    """The watcher's configuration on the node, as the roles rendered it."""
    return dict(yaml.safe_load(host.file(WATCHER_CONFIG).content_string))


def get(ip: str, host: str, path: str = "/") -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(ip, 80, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def exposure(host, unit: str) -> float:
    """The "Overall exposure level" of ``systemd-analyze security``."""
    report = host.check_output(f"systemd-analyze security --no-pager {unit}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert found, report[-2000:]
    return float(found.group(1))


def properties(host, unit: str, *names: str) -> dict[str, str]:
    flags = " ".join(f"-p {name}" for name in names)
    shown = host.check_output(f"systemctl show {unit} {flags}")
    return dict(line.split("=", 1) for line in shown.splitlines())


def varnishadm(host, *words: str) -> str:
    """A command on Varnish's admin port, as the watcher gives it (its user, the secret)."""
    varnish = settings(host)["varnish"]
    admin = ["-T", varnish["admin"], "-S", varnish["secret_file"]]
    command = host.run(
        shlex.join(["runuser", "-u", WATCHER_USER, "--", "varnishadm", *admin, *words])
    )
    assert command.rc == 0, f"varnishadm {' '.join(words)}: {command.stdout}{command.stderr}"
    return str(command.stdout)


def haproxy_processes(host) -> tuple[str, set[str]]:
    """HAProxy's master (the unit's main process) and its workers."""
    master = host.check_output("systemctl show -p MainPID --value haproxy")
    workers = host.check_output(f"ps -o pid= --ppid {master} || true").split()
    return master, set(workers)


@pytest.mark.parametrize("unit", sorted(GOALS))
def test_exposure_is_within_the_goal(host, unit: str) -> None:
    level = exposure(host, unit)
    assert level <= GOALS[unit], f"{unit}: exposure {level}, goal {GOALS[unit]}"


def test_etcd_exposure_is_within_the_goal() -> None:
    for name in ETCD_NODES:
        node = testinfra.get_host(f"podman://{name}")
        assert properties(node, "etcd", "ProtectSystem")["ProtectSystem"] == "strict"
        assert exposure(node, "etcd.service") <= 2.0


@pytest.mark.parametrize("unit", SANDBOXED)
def test_the_sandbox_is_in_force(host, unit: str) -> None:
    shown = properties(
        host, unit, "ProtectSystem", "NoNewPrivileges", "DropInPaths", "NeedDaemonReload"
    )
    assert shown["ProtectSystem"] == "strict"
    assert shown["NoNewPrivileges"] == "yes"
    assert f"/etc/systemd/system/{unit}.service.d/hardening.conf" in shown["DropInPaths"].split()
    assert shown["NeedDaemonReload"] == "no"
    # The running process is the one started inside it.
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    status = host.file(f"/proc/{pid}/status").content_string
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE), status
    assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE), status
    bounding = properties(host, unit, "CapabilityBoundingSet")["CapabilityBoundingSet"]
    assert "cap_sys_admin" not in bounding.split()


def test_haproxy_reload_starts_a_new_worker_and_keeps_serving(host) -> None:
    ip = lab_ip(host)
    master, before = haproxy_processes(host)
    assert before, "no HAProxy worker"
    assert host.run("systemctl reload haproxy").rc == 0
    # The old worker finishes its connections (keep-alive: 10 s) and leaves: the master
    # may signal it (CAP_KILL).
    deadline = time.monotonic() + 30
    while True:
        assert get(ip, "www.lab.example")[0] == 200
        now_master, workers = haproxy_processes(host)
        if len(workers) == 1 and not workers & before:
            break
        assert time.monotonic() < deadline, f"workers before {before}, now {workers}"
        time.sleep(0.5)
    assert now_master == master  # a reload, not a restart
    assert host.service("haproxy").is_running


def test_the_watchers_sockets_answer_inside_the_sandbox(host) -> None:
    haproxy = settings(host)["haproxy"]
    ask = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.settimeout(5)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(sys.argv[2].encode() + b'\\n')\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())\n"
    )

    def answer(path: str, command: str) -> str:
        return str(
            host.check_output(
                shlex.join(["runuser", "-u", WATCHER_USER, "--", "python3", "-c", ask])
                + " "
                + shlex.join([path, command])
            )
        )

    assert "master" in answer(haproxy["master_socket"], "show proc")
    assert "Pid:" in answer(haproxy["stats_socket"], "show info")


def test_a_new_vcl_is_loaded_and_used(host) -> None:
    varnish = settings(host)["varnish"]

    def active() -> str:
        lines = [line.split() for line in varnishadm(host, "vcl.list").splitlines()]
        return next(words[-1] for words in lines if words and words[0] == "active")

    previous = active()
    name = f"hardening_{time.time_ns()}"
    varnishadm(host, "vcl.load", name, varnish["vcl_file"])  # compiled and loaded
    try:
        varnishadm(host, "vcl.use", name)
        assert active() == name
        assert get(lab_ip(host), "api.lab.example", f"/?vcl={name}")[0] == 200
    finally:
        varnishadm(host, "vcl.use", previous)
        varnishadm(host, "vcl.discard", name)
    assert active() == previous


def test_a_ban_empties_the_cache(host) -> None:
    ip = lab_ip(host)
    token = f"hardening{time.time_ns()}"
    path = f"/?ban={token}"
    get(ip, "api.lab.example", path)
    assert get(ip, "api.lab.example", path)[1].get("x-cache") == "HIT"
    varnishadm(host, "ban", "req.url", "~", token)  # a regular expression
    assert get(ip, "api.lab.example", path)[1].get("x-cache") == "MISS"


def test_the_exporter_reads_varnish_inside_its_sandbox(host) -> None:
    arguments = host.file("/etc/default/prometheus-varnish-exporter").content_string
    found = re.search(r"-web\.listen-address (\S+?):(\d+)", arguments)
    assert found, arguments
    address = lab_ip(host) if found.group(1) in ("", "0.0.0.0") else found.group(1)
    if address.startswith("127."):
        metrics = host.check_output(f"curl -sf http://{address}:{found.group(2)}/metrics")
    else:
        connection = http.client.HTTPConnection(address, int(found.group(2)), timeout=10)
        try:
            connection.request("GET", "/metrics")
            metrics = connection.getresponse().read().decode()
        finally:
            connection.close()
    assert re.search(r"^varnish_up 1$", metrics, re.MULTILINE), metrics[-2000:]
