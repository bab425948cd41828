"""End to end: objects written into a real etcd drive a real HAProxy through the watcher."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import aetcd
import pytest
from harness import (
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    http_get,
    ingress,
    service,
    storage_key,
    store,
    wait_for,
    watcher_config,
)

from breakwater.k8s.encode import encode_protobuf


def serves(haproxy: HAProxy, host: str, expected: str, path: str = "/") -> bool:
    status, body = http_get(haproxy.http_port, host, path)
    return status == 200 and body.startswith(expected + " ")


def test_request_with_ingress_host_reaches_its_backend(etcd, haproxy, backends, watcher):
    web, api = backends("web"), backends("api")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))  # protobuf, as stored
    store(etcd, service("shop", "api"), encoding="json")
    store(etcd, endpoint_slice("shop", "api", [api.endpoint]), encoding="json")
    store(etcd, ingress("shop", "web", "www.example.com", "web"), encoding="json")
    store(etcd, ingress("shop", "api", "www.example.com", "api", path="/api"))

    wait_for(lambda: serves(haproxy, "www.example.com", "web"), what="web route")
    assert serves(haproxy, "WWW.Example.com:80", "web", "/index.html")
    assert serves(haproxy, "WWW.Example.com:80", "api", "/api/v1")
    assert serves(haproxy, "www.example.com", "api", "/api/v1/items")
    assert serves(haproxy, "www.example.com", "api", "/api")
    # Prefix semantics: /apiary is not under /api.
    assert serves(haproxy, "www.example.com", "web", "/apiary")
    status, body = http_get(haproxy.http_port, "unknown.example.com")
    assert status == 404 and "no route" in body
    assert api.requests["/api/v1/items"] == 1


def test_wildcard_and_hostless_rules(etcd, haproxy, backends, watcher):
    servers = {name: backends(name) for name in ("exact", "wild", "any")}
    for name, server in servers.items():
        store(etcd, service("shop", name))
        store(etcd, endpoint_slice("shop", name, [server.endpoint]))
    store(etcd, ingress("shop", "exact", "a.wild.example", "exact"))
    store(etcd, ingress("shop", "wild", "*.wild.example", "wild"))
    hostless = ingress("shop", "any", "unused", "any", path="/shared")
    del hostless["spec"]["rules"][0]["host"]
    store(etcd, hostless)
    wait_for(lambda: serves(haproxy, "b.wild.example", "wild"), what="wildcard route")
    wait_for(lambda: serves(haproxy, "x.example", "any", "/shared"), what="host-less route")
    assert serves(haproxy, "a.wild.example", "exact")  # an exact host beats the wildcard
    assert serves(haproxy, "A.Wild.Example:80", "exact")
    assert serves(haproxy, "B.WILD.example:8080", "wild", "/shared")  # host before path
    assert serves(haproxy, "wild.example", "any", "/shared/x")  # *.d does not match d
    assert http_get(haproxy.http_port, "wild.example", "/")[0] == 404


def test_scaling_an_endpointslice_moves_traffic_without_a_reload(etcd, haproxy, backends, watcher):
    first, second, third = backends("one"), backends("two"), backends("three")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [first.endpoint]))
    store(etcd, ingress("shop", "web", "scale.example.com", "web"))
    wait_for(lambda: serves(haproxy, "scale.example.com", "one"), what="first server")
    worker = haproxy.worker_pid()
    reloads = haproxy.processes().reloads

    # Scale up: three servers (within the backend's four slots), all in rotation.
    store(etcd, endpoint_slice("shop", "web", [first.endpoint, second.endpoint, third.endpoint]))

    def all_three_answer() -> bool:
        seen = {http_get(haproxy.http_port, "scale.example.com")[1].split()[0] for _ in range(12)}
        return seen == {"one", "two", "three"}

    wait_for(all_three_answer, what="traffic on all three servers")
    store(etcd, endpoint_slice("shop", "web", [third.endpoint]))
    wait_for(
        lambda: all(serves(haproxy, "scale.example.com", "three") for _ in range(6)),
        what="traffic only on the remaining server",
    )
    assert haproxy.worker_pid() == worker, "endpoint changes must not reload HAProxy"
    assert haproxy.processes().reloads == reloads

    # The file on disk then says what runs (it is written coalesce.file_delay after
    # the runtime commands), so a later reload keeps the same servers.
    config_file = Path(haproxy.settings.config_file)
    wait_for(
        lambda: f"{first.address}:{first.port}" not in config_file.read_text(),
        what="the rendered file to follow the runtime change",
    )
    assert f"server s3 {third.address}:{third.port}\n" in config_file.read_text()


def test_a_burst_of_endpoint_changes_writes_the_file_once(etcd, haproxy, backends, tmp_path):
    servers = [backends(f"s{i}") for i in range(3)]
    config = watcher_config(tmp_path, etcd, haproxy, coalesce={"file_delay": 5.0})
    watcher = WatcherProcess(config, tmp_path / "watcher.log")
    watcher.start()
    try:
        store(etcd, service("shop", "web"))
        store(etcd, endpoint_slice("shop", "web", [servers[0].endpoint]))
        store(etcd, ingress("shop", "web", "burst.example.com", "web"))
        wait_for(lambda: serves(haproxy, "burst.example.com", "s0"), what="first server")
        # Ten endpoint changes, each served before the next one is written.
        for step in range(1, 11):
            current = servers[step % 3]
            store(etcd, endpoint_slice("shop", "web", [current.endpoint]))
            wait_for(
                lambda c=current: all(
                    serves(haproxy, "burst.example.com", c.name) for _ in range(4)
                ),
                what=f"change {step}",
            )
        last = servers[10 % 3]
        config_file = Path(haproxy.settings.config_file)
        wait_for(
            lambda: (
                f"server s1 {last.address}:{last.port}\n" in config_file.read_text()
                or f"{last.address}:{last.port} " in config_file.read_text()
            ),
            timeout=15,
            what="the file to name the last server",
        )
        for other in servers:
            if other is not last:
                assert f"{other.address}:{other.port}" not in config_file.read_text()
        # The file is in place a moment before the watcher logs that it wrote it.
        written = "haproxy.cfg written after runtime changes"
        wait_for(lambda: written in watcher.log(), what="the write to be logged")
        assert watcher.log().count(written) == 1, watcher.log()[-3000:]
    finally:
        assert watcher.stop() == 0


def test_terminating_endpoint_is_drained(etcd, haproxy, backends, watcher):
    old, new = backends("old"), backends("new")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [old.endpoint]))
    store(etcd, ingress("shop", "web", "drain.example.com", "web"))
    wait_for(lambda: serves(haproxy, "drain.example.com", "old"), what="old server")
    slice_ = endpoint_slice("shop", "web", [old.endpoint, new.endpoint])
    slice_["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    store(etcd, slice_)
    wait_for(
        lambda: all(serves(haproxy, "drain.example.com", "new") for _ in range(8)),
        what="no new requests on the terminating server",
    )
    state = haproxy.master("@1 show servers state be_shop_web_http")
    weights = {line.split()[3]: line.split()[7] for line in state.splitlines()[2:] if line.strip()}
    assert weights["s1"] == "0", state  # drained: weight 0, existing requests finish


def test_new_ingresses_take_no_reload_and_a_new_kind_of_host_takes_one(
    etcd, haproxy, backends, watcher
):
    web, api = backends("web"), backends("api")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "first", "first.example.com", "web"))
    wait_for(lambda: serves(haproxy, "first.example.com", "web"), what="first route")
    time.sleep(0.5)  # let the first sync settle
    before = haproxy.processes()

    # A new host to the same Service, and a route to a new Service: the runtime API.
    store(etcd, ingress("shop", "second", "second.example.com", "web"))
    wait_for(lambda: serves(haproxy, "second.example.com", "web"), what="second route")
    store(etcd, service("shop", "api"))
    store(etcd, endpoint_slice("shop", "api", [api.endpoint]))
    store(etcd, ingress("shop", "api", "api.example.com", "api"))
    wait_for(lambda: serves(haproxy, "api.example.com", "api"), what="route to a new Service")
    time.sleep(0.5)
    assert haproxy.processes() == before

    # The first wildcard host adds a lookup to the frontend: exactly one reload.
    store(etcd, ingress("shop", "wild", "*.wild.example.com", "web"))
    wait_for(lambda: serves(haproxy, "a.wild.example.com", "web"), what="wildcard route")
    time.sleep(0.5)
    after = haproxy.processes()
    assert after.reloads == before.reloads + 1
    assert after.workers != before.workers
    assert serves(haproxy, "first.example.com", "web")
    assert serves(haproxy, "api.example.com", "api")


def test_deleted_route_gets_the_documented_404(etcd, haproxy, backends, watcher):
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    gone = ingress("shop", "gone", "gone.example.com", "web")
    store(etcd, gone)
    wait_for(lambda: serves(haproxy, "gone.example.com", "web"), what="route")
    etcd.delete(storage_key(gone))
    wait_for(lambda: http_get(haproxy.http_port, "gone.example.com")[0] == 404, what="404")
    assert "no route for this host and path" in http_get(haproxy.http_port, "gone.example.com")[1]


def test_a_bad_object_is_rejected_alone(etcd, haproxy, backends, watcher, tmp_path):
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "good", "good.example.com", "web"))
    hostile = ingress("shop", "hostile", "evil.example.com", "web")
    hostile["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/x\n    use_backend be_shop_web_http"
    store(etcd, hostile)
    etcd.put("/registry/ingress/shop/corrupt", b"k8s\x00\n\x1e\n\x14networking.k8s.io/v1\x12")
    wait_for(lambda: serves(haproxy, "good.example.com", "web"), what="the good route")
    status = wait_for(
        lambda: json.loads((tmp_path / "status.json").read_text()), what="status file"
    )
    rejected = {r["object"]: r["reason"] for r in status["catalog"]["rejected"]}
    assert "path" in rejected["Ingress shop/hostile"]
    assert "corrupt" in rejected["/registry/ingress/shop/corrupt"]
    assert http_get(haproxy.http_port, "evil.example.com")[0] == 404
    assert "use_backend be_shop_web_http\n" not in Path(haproxy.settings.config_file).read_text()


def test_etcd_outage_keeps_serving_and_recovers(etcd, haproxy, backends, watcher):
    web, other = backends("web"), backends("other")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "outage.example.com", "web"))
    wait_for(lambda: serves(haproxy, "outage.example.com", "web"), what="route")

    etcd.stop(signal.SIGKILL)
    wait_for(lambda: "etcd unavailable" in watcher.log(), what="the watcher to notice")
    for _ in range(5):  # the last good configuration keeps serving
        assert serves(haproxy, "outage.example.com", "web")
        time.sleep(0.1)
    assert watcher.process is not None and watcher.process.poll() is None

    etcd.start()
    store(etcd, endpoint_slice("shop", "web", [other.endpoint]))
    wait_for(lambda: serves(haproxy, "outage.example.com", "other"), timeout=20, what="convergence")


def _reconnect_delays(log: str) -> list[float]:
    return [float(d) for d in re.findall(r"reconnecting to etcd in ([\d.]+) s", log)]


def test_etcd_back_after_a_long_outage_resets_the_backoff_and_the_status(
    etcd, haproxy, backends, tmp_path
):
    web, other = backends("web"), backends("other")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "blip.example.com", "web"))
    config = watcher_config(
        tmp_path, etcd, haproxy, etcd={"backoff_initial": 0.2, "backoff_max": 3.0}
    )
    status_file = tmp_path / "status.json"
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    try:
        wait_for(lambda: serves(haproxy, "blip.example.com", "web"), what="route")
        # A long outage: the delays between attempts grow to the maximum.
        etcd.stop(signal.SIGKILL)
        wait_for(lambda: max(_reconnect_delays(process.log()), default=0) > 1.5, timeout=30)
        assert json.loads(status_file.read_text())["etcd_connected"] is False
        assert process.log().count("etcd unavailable, serving") == 1  # not a line per try
        etcd.start()
        wait_for(lambda: "etcd reachable again" in process.log(), timeout=30, what="reconnect")
        # Nothing changed in the cluster, and still the status says connected at once.
        wait_for(
            lambda: json.loads(status_file.read_text())["etcd_connected"] is True,
            what="the status to say connected",
        )
        assert json.loads(status_file.read_text())["last_error"] is None

        # A short blip now is retried at the first step again, not at the maximum.
        seen = len(_reconnect_delays(process.log()))
        etcd.stop(signal.SIGKILL)
        wait_for(lambda: len(_reconnect_delays(process.log())) > seen, what="a retry")
        assert _reconnect_delays(process.log())[seen] <= 0.2
        etcd.start()
        store(etcd, endpoint_slice("shop", "web", [other.endpoint]))
        wait_for(lambda: serves(haproxy, "blip.example.com", "other"), timeout=20)
    finally:
        assert process.stop() == 0
        print(process.log()[-3000:])


def test_compaction_past_the_watchers_revision_relists(etcd, haproxy, backends, tmp_path):
    web, moved = backends("web"), backends("moved")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    old = ingress("shop", "old", "old.example.com", "web")
    store(etcd, old)
    config = watcher_config(
        tmp_path, etcd, haproxy, etcd={"endpoints": [etcd.endpoint], "backoff_initial": 8.0}
    )
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    try:
        wait_for(lambda: serves(haproxy, "old.example.com", "web"), what="route")
        etcd.stop(signal.SIGKILL)
        wait_for(lambda: "etcd unavailable" in process.log(), what="the watcher to notice")
        # The watcher waits 4-8 s (half its first backoff step at least, for jitter)
        # before it reconnects: change and compact now, so its revision is gone.
        etcd.start()
        store(etcd, endpoint_slice("shop", "web", [moved.endpoint]))
        store(etcd, ingress("shop", "new", "new.example.com", "web"))
        etcd.delete(storage_key(old))
        revision = store(etcd, service("shop", "web"))
        etcd.compact(revision)
        wait_for(lambda: "compacted" in process.log(), timeout=20, what="compaction noticed")
        wait_for(lambda: serves(haproxy, "new.example.com", "moved"), timeout=20, what="re-list")
        assert http_get(haproxy.http_port, "old.example.com")[0] == 404
    finally:
        assert process.stop() == 0
        print(process.log()[-3000:])


def test_once_and_dry_run(etcd, haproxy, backends, tmp_path):
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "once.example.com", "web"))
    config = watcher_config(tmp_path, etcd, haproxy)
    before = Path(haproxy.settings.config_file).read_text()

    dry = WatcherProcess(config, tmp_path / "dry.log")
    dry.start("--dry-run")
    assert dry.process is not None and dry.process.wait(30) == 0
    assert Path(haproxy.settings.config_file).read_text() == before, "--dry-run changed nothing"
    assert "be_shop_web_http" in dry.log()  # the diff it printed

    once = WatcherProcess(config, tmp_path / "once.log")
    once.start("--once")
    assert once.process is not None and once.process.wait(30) == 0
    assert serves(haproxy, "once.example.com", "web")


def test_sighup_rereads_the_config(etcd, haproxy, backends, watcher, tmp_path):
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "hup.example.com", "web"))
    wait_for(lambda: serves(haproxy, "hup.example.com", "web"), what="route")
    # Serve another ingress class after SIGHUP: the route goes away.
    config = watcher_config(tmp_path, etcd, haproxy, catalog={"ingress_class": "other"})
    assert config == watcher.config_path
    assert watcher.process is not None
    watcher.process.send_signal(signal.SIGHUP)
    wait_for(lambda: http_get(haproxy.http_port, "hup.example.com")[0] == 404, what="reloaded")
    assert "configuration reloaded" in watcher.log()


def test_a_burst_of_changes_is_one_reload(etcd, haproxy, backends, tmp_path):
    """What coalescing promises: changes with no gap longer than the quiet period are
    one sync (one reload), and the burst is served once it ends.  (Wildcard hosts: the
    first one adds a lookup to the frontend, so the burst takes a reload.)"""
    # The quiet period is generous here so that the promise, not the machine's speed,
    # decides the count: 30 writes from one client are far less than 1 s apart.
    config = watcher_config(
        tmp_path, etcd, haproxy, coalesce={"quiet_period": 1.0, "max_wait": 30.0}
    )
    watcher = WatcherProcess(config, tmp_path / "watcher.log")
    watcher.start()
    try:
        web = backends("web")
        store(etcd, service("shop", "web"))
        store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
        store(etcd, ingress("shop", "first", "burst0.example.com", "web"))
        wait_for(lambda: serves(haproxy, "burst0.example.com", "web"), what="first route")
        before = haproxy.processes().reloads
        values = {}
        for index in range(1, 31):
            obj = ingress("shop", f"burst{index}", f"*.burst{index}.example.com", "web")
            values[storage_key(obj)] = obj

        # Thirty Ingresses written back to back from one client.
        async def burst() -> None:
            async with aetcd.Client("127.0.0.1", etcd.client_port) as client:
                for key, obj in values.items():
                    await client.put(key.encode(), encode_protobuf(obj))

        asyncio.run(burst())
        wait_for(lambda: serves(haproxy, "a.burst30.example.com", "web"), what="last route")
        assert all(serves(haproxy, f"a.burst{i}.example.com", "web") for i in range(1, 31))
        assert haproxy.processes().reloads - before == 1
    finally:
        assert watcher.stop() == 0


@pytest.mark.parametrize("backend_log", ["errors", "all"])
def test_what_backends_log_at_a_reload_and_when_servers_go(
    etcd, haproxy, backends, tmp_path, backend_log
):
    """HAProxy's log target gets no line per backend at a reload unless backend_log is
    "all"; a server taken out still shows.  (HAProxy 2.6 also prints each stopped
    proxy on its stderr, whatever the configuration: the "[WARNING]" copies.)"""
    web, other = backends("web"), backends("other")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint, other.endpoint]))
    store(etcd, ingress("shop", "first", "first.example.com", "web"))
    config = watcher_config(tmp_path, etcd, haproxy, haproxy={"backend_log": backend_log})
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    haproxy_log = haproxy.directory / "haproxy.log"
    try:
        wait_for(lambda: serves(haproxy, "first.example.com", "web"), what="first route")
        store(etcd, ingress("shop", "second", "*.second.example.com", "web"))  # a reload
        wait_for(
            lambda: re.search(r"\[WARNING\].*Proxy be_\S+ stopped", haproxy_log.read_text()),
            what="the old worker to stop its backends",
        )
        store(etcd, endpoint_slice("shop", "web", [web.endpoint]))  # one server out
        wait_for(
            lambda: re.search(r"(?m)^Server be_\S+ is going DOWN", haproxy_log.read_text()),
            what="the server taken out to be logged",
        )
        stopped = re.findall(r"(?m)^Proxy (be_\S+) stopped", haproxy_log.read_text())
        assert bool(stopped) == (backend_log == "all"), stopped
    finally:
        assert process.stop() == 0


def test_the_watcher_stops_on_sigterm_while_etcd_is_frozen(etcd, haproxy, backends, tmp_path):
    """etcd stopped dead (SIGSTOP: its connections open, nothing answered): SIGTERM still
    ends the watcher, cleanly and soon, and the file it leaves is the one it served --
    closing its etcd client and watches is bounded, never a wait on a stalled stream."""
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "frozen.example.com", "web"))
    process = WatcherProcess(watcher_config(tmp_path, etcd, haproxy), tmp_path / "watcher.log")
    process.start()
    try:
        wait_for(lambda: serves(haproxy, "frozen.example.com", "web"), what="route")
        assert etcd.process is not None
        etcd.process.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        started = time.monotonic()
        assert process.stop() == 0, process.log()[-3000:]
        print(f"stopped in {time.monotonic() - started:.2f} s")
        assert "stopped" in process.log().splitlines()[-1]
        assert serves(haproxy, "frozen.example.com", "web")
    finally:
        etcd.process.send_signal(signal.SIGCONT)
        process.stop()
