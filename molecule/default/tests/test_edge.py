"""Behaviour of the provisioned edge, checked from the controller and on the nodes."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
LB_NODES = RUNNER.get_hosts("lb")
# testinfra's podman backend (podman exec) instead of one ansible process per command.
testinfra_hosts = ["podman://" + name for name in LB_NODES]

LAB = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / ".lab" / "molecule"
ETCD_IP = RUNNER.get_variables(RUNNER.get_hosts("etcd")[0])["lab_ip"]
# The lab etcd has authentication on: objects are written as root (the API server's
# stand-in); the edge's user, breakwater, may only read what its watcher reads.
ETCD_FLAGS = [
    "--etcd-endpoints",
    f"https://{ETCD_IP}:2379",
    "--etcd-cacert",
    str(LAB / "pki" / "ca.crt"),
    "--etcd-cert",
    str(LAB / "pki" / "root.crt"),
    "--etcd-key",
    str(LAB / "pki" / "root.key"),
]


def lab_ip(host) -> str:
    return RUNNER.get_variables(host.backend.get_hostname())["lab_ip"]


def get(
    ip: str, host: str, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection(ip, 80, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read().decode()
    finally:
        connection.close()


def seed(manifest: str, *extra: str) -> None:
    path = LAB / f"test-{abs(hash(manifest))}.yaml"
    path.write_text(manifest)
    subprocess.run(
        [sys.executable, "-m", "breakwater.cli", "lab-seed", *ETCD_FLAGS, *extra, str(path)],
        check=True,
        capture_output=True,
    )


def ingress(name: str, host: str) -> str:
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: shop, creationTimestamp: "2026-02-01T00:00:00Z"}}
spec:
  ingressClassName: breakwater
  rules:
    - host: {host}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
"""


@pytest.mark.parametrize("service", ["haproxy", "varnish", "breakwater-watcher"])
def test_services_run(host, service: str) -> None:
    unit = host.service(service)
    if not unit.is_running:
        journal = host.run(f"journalctl -u {service} --no-pager -n 80").stdout
        pytest.fail(f"{service} is not running on {host.backend.get_hostname()}:\n{journal}")
    assert unit.is_enabled


def test_host_routed_request_reaches_the_backend(host) -> None:
    status, _, body = get(lab_ip(host), "www.lab.example")
    assert (status, body.strip()) == (200, "mol-backend1-8080")
    assert get(lab_ip(host), "unknown.lab.example")[0] == 404


def test_the_labs_httproute_is_served_and_its_header_match_decides(host) -> None:
    status, _, body = get(lab_ip(host), "gw.lab.example")
    assert (status, body.strip()) == (200, "mol-backend1-8080")
    status, _, body = get(lab_ip(host), "gw.lab.example", headers={"X-Lab": "api"})
    assert (status, body.strip()) == (200, "mol-backend1-8081")


def test_cacheable_route_answers_from_cache(host) -> None:
    path = f"/?fresh={host.backend.get_hostname()}-{time.time_ns()}"  # a new cache key
    first = get(lab_ip(host), "api.lab.example", path)
    second = get(lab_ip(host), "api.lab.example", path)
    assert (first[0], first[1].get("x-cache")) == (200, "MISS")
    assert (second[0], second[1].get("x-cache")) == (200, "HIT")


def test_endpointslice_is_served_within_two_seconds(host) -> None:
    documents = (LAB / "lab-objects.yaml").read_text().split("\n---")
    web_slice = next(d for d in documents if "kind: EndpointSlice" in d and "name: web-1" in d)
    seed(web_slice.replace("port: 8080", "port: 8081"))
    start = time.monotonic()
    try:
        while get(lab_ip(host), "www.lab.example")[2].strip() != "mol-backend1-8081":
            assert time.monotonic() - start < 2.0, "not served within 2 s"
            time.sleep(0.02)
    finally:
        seed(web_slice)
    deadline = time.monotonic() + 5
    while get(lab_ip(host), "www.lab.example")[2].strip() != "mol-backend1-8080":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ten_configuration_changes_leave_one_master_and_its_worker(host) -> None:
    ip = lab_ip(host)
    name = host.backend.get_hostname()
    manifests = [ingress(f"change-{name}-{i}", f"change{i}.{name}.lab.example") for i in range(10)]
    try:
        for index, manifest in enumerate(manifests):
            seed(manifest)
            deadline = time.monotonic() + 10
            while get(ip, f"change{index}.{name}.lab.example")[0] != 200:
                assert time.monotonic() < deadline, f"change {index} not served"
                time.sleep(0.05)
    finally:
        for manifest in manifests:
            seed(manifest, "--delete")

    def processes() -> list[list[str]]:
        table = host.run("ps -eo pid=,ppid=,stat=,comm=").stdout
        return [line.split() for line in table.splitlines()]

    # Old workers finish their last connections (Varnish's pooled ones close within
    # HAProxy's keep-alive timeout, 10 s) and exit; the master reaps them.
    deadline = time.monotonic() + 30
    while len([p for p in processes() if p[-1] == "haproxy"]) > 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    table = processes()
    haproxy = [p for p in table if p[-1] == "haproxy"]
    assert [p for p in table if p[2].startswith("Z")] == []  # no zombies at all
    masters = [p for p in haproxy if p[1] == "1"]
    assert len(masters) == 1, haproxy
    workers = [p for p in haproxy if p[1] == masters[0][0]]
    assert len(haproxy) == 2 and len(workers) == 1, haproxy


def test_watcher_is_hardened(host) -> None:
    properties = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show breakwater-watcher -p Type -p User -p NoNewPrivileges -p ProtectSystem"
            " -p ProtectHome -p PrivateTmp -p CapabilityBoundingSet -p WatchdogUSec"
            " -p RestrictAddressFamilies -p PrivateDevices"
        ).splitlines()
    )
    assert properties["Type"] == "notify"
    assert properties["User"] == "breakwater"
    assert properties["NoNewPrivileges"] == "yes"
    assert properties["ProtectSystem"] == "strict"
    assert properties["ProtectHome"] == "yes"
    assert properties["PrivateTmp"] == "yes"
    assert properties["PrivateDevices"] == "yes"
    assert properties["CapabilityBoundingSet"] == ""
    assert properties["WatchdogUSec"] != "0"
    assert set(properties["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    watcher_pid = host.check_output("systemctl show -p MainPID --value breakwater-watcher")
    assert host.check_output(f"ps -o user= -p {watcher_pid}") == "breakwater"


def run_playbook(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Runs a playbook of the installed collection (scripts/install-collection)."""
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."))
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(project / ".lab" / "installed"),
        "BREAKWATER_LAB_DIR": str(LAB),
    }
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            f"breakwater.edge.{name}",
            *extra,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def monitor(ip: str) -> int:
    connection = http.client.HTTPConnection(ip, 8404, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status
    finally:
        connection.close()


def test_drain_node_playbook_takes_a_node_out_and_back(host) -> None:
    name, ip = host.backend.get_hostname(), lab_ip(host)
    assert monitor(ip) == 200
    out = run_playbook("drain_node", "-e", f"node={name}")
    assert out.returncode == 0, out.stdout[-3000:]
    assert monitor(ip) == 503
    assert get(ip, "www.lab.example")[0] == 200  # clients that still come are served
    back = run_playbook("drain_node", "-e", f"node={name}", "-e", "node_state=in_rotation")
    assert back.returncode == 0, back.stdout[-3000:]
    assert monitor(ip) == 200


def test_purge_cache_playbook_empties_the_cache_on_every_node(host) -> None:
    ip = lab_ip(host)
    path = f"/?purge={host.backend.get_hostname()}-{time.time_ns()}"
    get(ip, "api.lab.example", path)
    assert get(ip, "api.lab.example", path)[1].get("x-cache") == "HIT"
    run = run_playbook("purge_cache", "-e", "host=api.lab.example", "-e", "mode=ban")
    assert run.returncode == 0, run.stdout[-3000:]
    assert get(ip, "api.lab.example", path)[1].get("x-cache") == "MISS"


def prometheus(query: str) -> list[dict]:
    """An instant query to the lab's Prometheus (on the etcd host)."""
    connection = http.client.HTTPConnection(ETCD_IP, 9090, timeout=5)
    try:
        connection.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        answer = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def scalar(query: str) -> float | None:
    result = prometheus(query)
    return float(result[0]["value"][1]) if result else None


def wait_for_value(query: str, expected: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (value := scalar(query)) != expected:
        assert time.monotonic() < deadline, f"{query} = {value}, expected {expected}"
        time.sleep(0.5)


def test_prometheus_scrapes_the_node_and_sees_its_changes(host) -> None:
    ip = lab_ip(host)
    name = host.backend.get_hostname()
    for job in ("breakwater", "haproxy", "varnish"):  # the watcher, HAProxy, the exporter
        wait_for_value(f'up{{instance="{ip}",job="{job}"}}', 1)
    wait_for_value(f'breakwater_etcd_connected{{instance="{ip}"}}', 1)
    assert scalar(f'varnish_up{{instance="{ip}"}}') == 1

    reloads = f'breakwater_haproxy_reloads_total{{instance="{ip}",cause="config"}}'
    runtime = f'breakwater_syncs_total{{instance="{ip}",kind="runtime",outcome="ok"}}'
    time.sleep(4)  # two scrapes: what earlier tests changed is in
    before_reloads, before_runtime = scalar(reloads), scalar(runtime) or 0.0
    manifest = ingress(f"prom-{name}", f"prom.{name}.lab.example")
    seed(manifest)
    try:
        deadline = time.monotonic() + 10
        while get(ip, f"prom.{name}.lab.example")[0] != 200:
            assert time.monotonic() < deadline, "the new route is not served"
            time.sleep(0.05)
        # A new route: through the runtime API, no reload.
        deadline = time.monotonic() + 30
        while (scalar(runtime) or 0.0) < before_runtime + 1:
            assert time.monotonic() < deadline, "no runtime sync seen by Prometheus"
            time.sleep(0.5)
        before_runtime = scalar(runtime) or 0.0

        documents = (LAB / "lab-objects.yaml").read_text().split("\n---")
        web_slice = next(d for d in documents if "kind: EndpointSlice" in d and "name: web-1" in d)
        seed(web_slice.replace("port: 8080", "port: 8081"))
        seed(web_slice)
        deadline = time.monotonic() + 30
        while (scalar(runtime) or 0.0) < before_runtime + 1:  # endpoints: runtime syncs
            assert time.monotonic() < deadline, "no runtime sync seen by Prometheus"
            time.sleep(0.5)
        assert scalar(reloads) == before_reloads  # no reload for either
        # Both nodes, each with its own binds, serve the same: one generation.
        wait_for_value("count(count by (generation) (breakwater_generation_info))", 1)
    finally:
        seed(manifest, "--delete")


def etcdctl_as_edge(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "etcdctl",
            f"--endpoints=https://{ETCD_IP}:2379",
            f"--cacert={LAB / 'pki' / 'ca.crt'}",
            f"--cert={LAB / 'pki' / 'breakwater.crt'}",
            f"--key={LAB / 'pki' / 'breakwater.key'}",
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_edges_etcd_user_reads_what_its_watcher_reads_and_nothing_else() -> None:
    # The watchers serve (the other tests) with this user; it reads its prefixes...
    allowed = etcdctl_as_edge("get", "--prefix", "--keys-only", "/registry/ingress/")
    assert allowed.returncode == 0, allowed.stderr
    assert "/registry/ingress/" in allowed.stdout
    # ...and nothing else: no Pods, no Nodes in pods mode, no write anywhere.
    for denied in (
        ("get", "--prefix", "/registry/pods/"),
        ("get", "--prefix", "/registry/minions/"),
        ("put", "/registry/ingress/shop/x", "{}"),
        ("del", "/registry/ingress/shop/web"),
        ("put", "/breakwater/routes/x", "{}"),
    ):
        out = etcdctl_as_edge(*denied)
        assert out.returncode != 0 and "permission denied" in out.stderr, (denied, out)
