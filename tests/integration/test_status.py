"""`breakwater status`: what a node serves and what is wrong, from a running edge."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from builders import gateway, gateway_class, http_route, rule
from harness import (
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    haproxy_settings,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)
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


def test_two_nodes_on_one_etcd_serve_the_same_generation(
    etcd, haproxy, backends, watcher, tmp_path
) -> None:
    """Nodes differ in their own settings (binds, paths), so their haproxy.cfg
    differ; what they serve is the same, and so is the generation they report."""
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    revision = store(etcd, ingress("shop", "web", "twin.example.com", "web"))
    directory = tmp_path / "second"
    directory.mkdir()
    second = HAProxy(directory / "haproxy", haproxy_settings(directory / "haproxy"))
    (directory / "haproxy").mkdir()
    second.start()
    twin = WatcherProcess(watcher_config(directory, etcd, second), directory / "watcher.log")
    twin.start()
    try:

        def generations() -> list[str | None]:
            found = []
            for path in (watcher.config_path.parent, directory):
                try:
                    report = json.loads((path / "status.json").read_text())
                except (OSError, ValueError):
                    return []
                if report.get("revision_applied", 0) < revision:
                    return []
                found.append(report["generation"])
            return found

        wait_for(generations, what="both nodes to apply the route")
        first, other = generations()
        assert first and first == other
        configs = [Path(h.settings.config_file).read_text() for h in (haproxy, second)]
        assert configs[0] != configs[1]  # their own binds
        assert serves(second, "twin.example.com", "web")
    finally:
        twin.stop()
        second.stop()


def test_status_and_catalog_report_the_gateway_apis_conditions(etcd, haproxy, backends, watcher):
    """The edge writes nothing to the cluster: the Gateway API's conditions are read in
    `breakwater status` (lines, and --json) and `breakwater catalog`."""
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, gateway_class())
    store(etcd, gateway("shop", "edge"))
    store(etcd, http_route("shop", "gw", [rule(("web", 80))], ["gw.example.com"], [EDGE]))
    elsewhere = [{**EDGE, "sectionName": "nope"}]
    revision = store(etcd, http_route("shop", "lost", [rule(("web", 80))], None, elsewhere))
    wait_for(lambda: serves(haproxy, "gw.example.com", "web"), what="the HTTPRoute")
    config = watcher.config_path

    def applied() -> bool:
        report = json.loads(status(config, "--json").stdout)
        return (report["watcher"] or {}).get("revision_applied", 0) >= revision

    wait_for(applied, what="the status to say the routes are applied")
    lines = status(config).stdout
    assert "gateway shop/edge: Accepted, Programmed" in lines
    assert "  listener http: Accepted, ResolvedRefs, Programmed; 1 routes attached" in lines
    assert "httproute shop/gw -> shop/edge: Accepted, ResolvedRefs" in lines
    assert "httproute shop/lost -> shop/edge/nope: Accepted=False (NoMatchingParent)" in lines
    report = json.loads(status(config, "--json").stdout)
    routes = report["gateway_api"]["httproutes"]
    assert routes["shop/lost"]["parents"][0]["conditions"][0]["reason"] == "NoMatchingParent"
    catalog = subprocess.run(
        [sys.executable, "-m", "breakwater.cli", "catalog", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    document = json.loads(catalog.stdout)
    assert (
        document["gateway_api"]["gateways"]["shop/edge"]["listeners"]["http"]["attachedRoutes"] == 1
    )
    assert [r["host"] for r in document["routes"]] == ["gw.example.com"]


EDGE = {"name": "edge", "namespace": "shop"}
