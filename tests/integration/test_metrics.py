"""The watcher's Prometheus metrics, scraped from a running watcher as Prometheus
would, and checked with Prometheus' own promtool."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request

import yaml
from harness import (
    WatcherProcess,
    endpoint_slice,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)
from test_watcher_e2e import serves


def scrape(watcher: WatcherProcess) -> str:
    listen = yaml.safe_load(watcher.config_path.read_text())["watcher"]["metrics_listen"]
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as response:
        return response.read().decode()


def value(text: str, series: str) -> float:
    """The value of one series (name and labels as Prometheus prints them), or 0."""
    for line in text.splitlines():
        name, _, number = line.rpartition(" ")
        if name == series:
            return float(number)
    return 0.0


def test_metrics_say_what_the_watcher_did(etcd, haproxy, backends, watcher) -> None:
    web, other = backends("web"), backends("other")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    revision = store(etcd, ingress("shop", "web", "metrics.example.com", "web"))
    wait_for(lambda: serves(haproxy, "metrics.example.com", "web"), what="route")
    assert value(scrape(watcher), "breakwater_etcd_connected") == 1
    # A sync is counted once HAProxy runs it (just after it serves).
    wait_for(lambda: value(scrape(watcher), "breakwater_etcd_revision_applied") >= revision)
    before = scrape(watcher)

    # Prometheus' own linter takes the output as it is.
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=before, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # An endpoint change: a runtime sync, no reload.
    store(etcd, endpoint_slice("shop", "web", [web.endpoint, other.endpoint]))
    wait_for(
        lambda: (
            value(scrape(watcher), 'breakwater_syncs_total{kind="runtime",outcome="ok"}')
            == value(before, 'breakwater_syncs_total{kind="runtime",outcome="ok"}') + 1
        ),
        what="one runtime sync more",
    )
    after = scrape(watcher)
    assert value(after, 'breakwater_watch_events_total{kind="put"}') > value(
        before, 'breakwater_watch_events_total{kind="put"}'
    )
    assert value(after, 'breakwater_haproxy_reloads_total{cause="config"}') == value(
        before, 'breakwater_haproxy_reloads_total{cause="config"}'
    )
    assert value(after, 'breakwater_haproxy_server_slots{state="used"}') == 2
    assert value(after, 'breakwater_haproxy_server_slots{state="free"}') == 2
    assert value(after, 'breakwater_haproxy_spare_backends{state="idle"}') == 64
    assert value(after, 'breakwater_haproxy_spare_backends{state="in_use"}') == 0
    assert value(after, "breakwater_haproxy_runtime_commands_total") > value(
        before, "breakwater_haproxy_runtime_commands_total"
    )
    assert value(after, "breakwater_etcd_revision_applied") == value(
        after, "breakwater_etcd_revision_seen"
    )

    # A new route to a new Service: a spare section, no reload.
    store(etcd, service("shop", "api"))
    store(etcd, endpoint_slice("shop", "api", [other.endpoint]))
    store(etcd, ingress("shop", "api", "api.example.com", "api"))
    wait_for(lambda: serves(haproxy, "api.example.com", "other"), what="route to a new Service")
    wait_for(
        lambda: value(scrape(watcher), 'breakwater_haproxy_spare_backends{state="in_use"}') == 1,
        what="a spare in use",
    )
    assert value(scrape(watcher), 'breakwater_haproxy_spare_backends{state="idle"}') == 63

    # The first wildcard host: exactly one reload, and the generation the status says.
    store(etcd, ingress("shop", "second", "*.second.example.com", "web"))
    wait_for(lambda: serves(haproxy, "a.second.example.com", "web"), what="second route")
    wait_for(
        lambda: (
            value(scrape(watcher), 'breakwater_haproxy_reloads_total{cause="config"}')
            == value(before, 'breakwater_haproxy_reloads_total{cause="config"}') + 1
        ),
        what="one reload more",
    )
    # That reload gave the new Service its own section, and a fresh pool of spares.
    assert value(scrape(watcher), 'breakwater_haproxy_spare_backends{state="in_use"}') == 0
    status_file = watcher.config_path.parent / "status.json"
    wait_for(
        lambda: "*.second.example.com" in status_file.read_text(),
        what="the status to hold the new route",
    )
    generation = json.loads(status_file.read_text())["generation"]
    assert f'breakwater_generation_info{{generation="{generation}",' in scrape(watcher)

    # A rejected object is counted, and named.
    bad = ingress("shop", "bad", "bad..example.com", "web")
    store(etcd, bad)
    wait_for(lambda: value(scrape(watcher), 'breakwater_rejected_objects{resource="Ingress"}') == 1)
    assert 'breakwater_rejected_object{object="Ingress shop/bad"' in scrape(watcher)

    # etcd away: the gauge says so, while HAProxy keeps serving.
    etcd.stop(signal.SIGKILL)
    wait_for(lambda: value(scrape(watcher), "breakwater_etcd_connected") == 0, what="0")
    # The gauge is read live; the status file is rewritten beside the loop, a moment later.
    wait_for(
        lambda: json.loads(status_file.read_text())["etcd_connected"] is False,
        what="the status file to say etcd is away",
    )
    assert serves(haproxy, "api.example.com", "other")
    etcd.start()
    wait_for(lambda: value(scrape(watcher), "breakwater_etcd_connected") == 1, timeout=20)


def test_a_metrics_address_taken_is_a_clear_start_up_error(etcd, haproxy, tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = watcher_config(tmp_path, etcd, haproxy, watcher={"metrics_listen": address})
        process = WatcherProcess(config, tmp_path / "watcher.log")
        process.start()
        assert process.process is not None and process.process.wait(30) == 1
    assert f"watcher.metrics_listen {address}: cannot listen" in process.log()


def test_haproxy_serves_its_own_metrics(etcd, haproxy, backends, watcher) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "promex.example.com", "web"))
    wait_for(lambda: serves(haproxy, "promex.example.com", "web"), what="route")
    for _ in range(3):
        serves(haproxy, "promex.example.com", "web")
    address = haproxy.settings.metrics_binds[0]

    def backend_responses() -> float:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            text = response.read().decode()
        series = 'haproxy_backend_http_responses_total{proxy="be_shop_web_http",code="2xx"}'
        return value(text, series)

    wait_for(lambda: backend_responses() >= 4, what="the backend's 2xx responses counted")
