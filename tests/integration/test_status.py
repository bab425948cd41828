"""`breakwater status`: what a node serves and what is wrong, from a running edge."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from harness import endpoint_slice, ingress, service, store, wait_for
from test_watcher_e2e import serves


def status(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "breakwater.cli", "status", "--config", str(config), *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_status_tells_a_serving_edge_from_one_that_lost_etcd(etcd, haproxy, backends, watcher):
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    revision = store(etcd, ingress("shop", "web", "status.example.com", "web"))
    wait_for(lambda: serves(haproxy, "status.example.com", "web"), what="route")
    config = watcher.config_path

    def applied() -> bool:
        report = json.loads(status(config, "--json").stdout)
        return (report["watcher"] or {}).get("revision_applied", 0) >= revision

    wait_for(applied, what="the status to say the route is applied")
    healthy = status(config)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "PROBLEM" not in healthy.stdout
    assert f"etcd: connected, revision {revision}" in healthy.stdout
    generation = json.loads(status(config, "--json").stdout)["watcher"]["generation"]
    assert f"generation: {generation} since " in healthy.stdout
    assert f"haproxy: master {haproxy.processes().master_pid}" in healthy.stdout

    etcd.stop(signal.SIGKILL)
    wait_for(lambda: status(config).returncode == 1, what="status to report the outage")
    report = status(config)
    assert "PROBLEM: the watcher is not connected to etcd" in report.stdout
    assert "etcd: DISCONNECTED" in report.stdout
    assert serves(haproxy, "status.example.com", "web")  # and the edge keeps serving

    watcher.stop()
    stopped = status(config)
    assert stopped.returncode == 1
    assert "that wrote the status is not running" in stopped.stdout
