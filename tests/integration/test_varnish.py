"""The Varnish tier with real HAProxy, Varnish, etcd, backends and the watcher."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import (
    Edge,
    WatcherProcess,
    endpoint_slice,
    free_port,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)

from breakwater.targets.varnish import VarnishTarget
from breakwater.targets.varnish_cli import VarnishCLI, parse_vcl_list, read_secret


def get(edge: Edge, host: str, path: str = "/", headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", edge.haproxy.http_port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture
def cached_edge(tmp_path: Path, etcd, edge: Edge, backends):
    """A cacheable route (ConfigMap policy) and a plain one, served through the watcher."""
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(
        etcd,
        {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"breakwater.io/edge": "true"},
            },
            "data": {
                "hosts": "cache.example.com",
                "cache": "true",
                "cache-ttl": "300",
                "cache-strip-cookies": "true",
                "cache-bypass-paths": "/account",
            },
        },
    )
    store(etcd, ingress("shop", "plain", "plain.example.com", "web"))
    process = WatcherProcess(watcher_config(tmp_path, etcd, edge.haproxy), tmp_path / "w.log")
    process.start()
    wait_for(lambda: get(edge, "plain.example.com")[0] == 200, what="plain route")
    wait_for(lambda: get(edge, "cache.example.com", "/warmup")[1].get("x-cache"), what="varnish")
    yield edge, web
    assert process.stop() == 0
    print(process.log()[-3000:])


def test_miss_then_hit(cached_edge) -> None:
    edge, web = cached_edge
    first = get(edge, "cache.example.com", "/page")
    second = get(edge, "cache.example.com", "/page")
    assert (first[0], first[1]["x-cache"]) == (200, "MISS")
    assert (second[0], second[1]["x-cache"]) == (200, "HIT")
    assert second[2] == first[2]
    assert web.requests["/page"] == 1


def test_a_clients_health_path_reaches_the_service(cached_edge) -> None:
    """/.breakwater/health is the service's path; Varnish's check has its own listener."""
    edge, web = cached_edge
    status, headers, body = get(edge, "cache.example.com", "/.breakwater/health")
    assert status == 200 and headers.get("x-cache") == "MISS"  # through Varnish, not synth
    assert body == b"web /.breakwater/health\n"
    assert web.requests["/.breakwater/health"] == 1
    # HAProxy's check reaches Varnish on the health listener: Varnish is up (cacheable
    # routes go through it), and that listener answers nothing but the check.
    assert get(edge, "cache.example.com", "/page-health")[1].get("x-cache") == "MISS"
    host, _, port = edge.varnish.settings.health.rpartition(":")
    for path, expected in (("/.breakwater/health", 200), ("/", 404), ("/page", 404)):
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", path, headers={"Host": "cache.example.com"})
            assert connection.getresponse().status == expected, path
        finally:
            connection.close()
    assert web.requests["/page"] == 0  # the health listener sent nothing on


def test_non_cacheable_routes_never_touch_varnish(cached_edge) -> None:
    edge, web = cached_edge
    before = edge.varnish.stat("MAIN.client_req")
    for _ in range(3):
        status, headers, _ = get(edge, "plain.example.com", "/x")
        assert status == 200 and "x-cache" not in headers and "x-varnish" not in headers
    for _ in range(2):  # a bypass path of the cacheable route
        status, headers, _ = get(edge, "cache.example.com", "/account/orders")
        assert status == 200 and "x-varnish" not in headers
    assert edge.varnish.stat("MAIN.client_req") == before
    assert web.requests["/x"] == 3 and web.requests["/account/orders"] == 2


FORGED = {
    "X-Breakwater-TTL": "0",
    "X-Breakwater-Grace": "0",
    "X-Breakwater-Cookies": "keep",
    "X-Breakwater-Client": "6.6.6.6",
    "X-Breakwater-Host": "plain.example.com",
    "X-Breakwater-Url": "/",
    "X-Forwarded-For": "6.6.6.6",
    "X-Cache": "MISS",
    "Cookie": "session=forged",
}


def test_forged_internal_headers_change_nothing(cached_edge) -> None:
    edge, web = cached_edge
    statuses = [get(edge, "cache.example.com", "/forged", FORGED)[1]["x-cache"] for _ in range(3)]
    assert statuses == ["MISS", "HIT", "HIT"]  # TTL=0 forged: still cached
    assert web.requests["/forged"] == 1
    seen = web.headers["/forged"]
    assert not [name for name in seen if name.startswith("x-breakwater-")]
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the real client, not the forged one
    assert "cookie" not in seen  # the route strips cookies; a forged "keep" is ignored
    get(edge, "plain.example.com", "/forged-plain", FORGED)
    plain = web.headers["/forged-plain"]
    assert not [name for name in plain if name.startswith("x-breakwater-")]
    assert plain["x-forwarded-for"] == "127.0.0.1"


def test_internal_frontend_is_not_reachable_over_tcp(cached_edge) -> None:
    edge, _ = cached_edge
    worker = edge.haproxy.worker_pid()
    listening = subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    ours = sorted(line.split()[3] for line in listening if f"pid={worker}," in line)
    settings = edge.haproxy.settings
    # The public binds, the monitor and the metrics (no HTTPS: no certificate yet);
    # nothing else.
    assert ours == sorted([*settings.http_binds, *settings.monitor_binds, *settings.metrics_binds])
    config = Path(edge.haproxy.settings.config_file).read_text()
    # The section: up to the next line that starts a section (not indented).
    internal = re.split(r"\n(?=\S)", config.split("frontend bw_internal", 1)[1])[0]
    binds = [line.split()[1] for line in internal.splitlines() if line.strip().startswith("bind ")]
    assert binds == [f"unix@{edge.varnish.settings.return_socket}"]


def test_set_cookie_is_stripped_and_the_object_cached(cached_edge) -> None:
    edge, web = cached_edge
    first = get(edge, "cache.example.com", "/set-cookie")
    second = get(edge, "cache.example.com", "/set-cookie")
    assert "set-cookie" not in first[1]
    assert second[1]["x-cache"] == "HIT" and web.requests["/set-cookie"] == 1


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "breakwater.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("command", ["ban", "purge"])
def test_ban_and_purge_empty_exactly_the_matching_objects(cached_edge, command: str) -> None:
    edge, web = cached_edge
    paths = ["/a/1", "/a/2", "/b/1"]
    for path in paths:
        get(edge, "cache.example.com", path)
        assert get(edge, "cache.example.com", path)[1]["x-cache"] == "HIT"
    dead = f"127.0.0.1:{free_port()}"
    result = run_cli(
        command,
        "--host",
        "cache.example.com",
        "--path",
        "^/a/",
        "--node",
        edge.varnish.settings.admin,
        "--node",
        dead,
        "--secret",
        edge.varnish.settings.secret_file,
    )
    assert result.returncode == 1, result.stderr  # one node did not answer
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert lines[edge.varnish.settings.admin].startswith("ok")
    assert lines[dead].startswith("FAILED")
    if command == "purge":  # the ban lurker removes the objects in the background
        wait_for(lambda: edge.varnish.stat("MAIN.bans_lurker_obj_killed") >= 2, what="lurker")
    assert [get(edge, "cache.example.com", p)[1]["x-cache"] for p in paths] == [
        "MISS",
        "MISS",
        "HIT",
    ]
    assert [web.requests[p] for p in paths] == [2, 2, 1]


def vcl_names(edge: Edge) -> list:
    async def go():
        secret = read_secret(edge.varnish.settings.secret_file)
        async with VarnishCLI(edge.varnish.settings.admin, secret) as cli:
            return parse_vcl_list(await cli.command("vcl.list"))

    return asyncio.run(go())


def test_bad_vcl_is_rejected_and_the_active_one_keeps_serving(cached_edge, tmp_path) -> None:
    edge, _web = cached_edge
    get(edge, "cache.example.com", "/kept")
    active = [vcl.name for vcl in vcl_names(edge) if vcl.active]
    template = tmp_path / "bad.vcl.j2"
    template.write_text("vcl 4.1;\nsub vcl_recv { set req.http.x = ; }\n")
    settings = dataclasses.replace(edge.varnish.settings, template=str(template))
    result = asyncio.run(VarnishTarget(settings).apply())
    assert result.action == "failed" and "varnishd -C" in result.detail
    assert [vcl.name for vcl in vcl_names(edge) if vcl.active] == active
    assert get(edge, "cache.example.com", "/kept")[1]["x-cache"] == "HIT"


def test_old_vcls_never_pile_up(cached_edge) -> None:
    edge, _ = cached_edge
    target = VarnishTarget(edge.varnish.settings)
    base = Path(edge.varnish.settings.vcl_file).read_text()
    for index in range(50):
        result = asyncio.run(target.apply(vcl=base + f"\n# reload {index}\n"))
        assert result.action == "reload", result.detail
    loaded = vcl_names(edge)
    assert len(loaded) <= edge.varnish.settings.keep_vcls
    assert get(edge, "cache.example.com", "/after-reloads")[0] == 200


def test_varnish_down_cacheable_routes_go_straight_to_the_service(cached_edge) -> None:
    edge, _web = cached_edge
    edge.varnish.stop()

    def served_directly() -> bool:
        status, headers, body = get(edge, "cache.example.com", "/direct")
        return status == 200 and "x-cache" not in headers and body.startswith(b"web ")

    wait_for(served_directly, what="fallback to the service")
    assert all(served_directly() for _ in range(5))


def test_breakwater_status_names_the_active_vcl(cached_edge, tmp_path) -> None:
    edge, _ = cached_edge
    settings = edge.varnish.settings
    listing = subprocess.run(
        ["varnishadm", "-T", settings.admin, "-S", settings.secret_file, "vcl.list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    active = next(line.split()[-1] for line in listing.splitlines() if line.startswith("active"))
    command = [sys.executable, "-m", "breakwater.cli", "status"]
    command += ["--config", str(tmp_path / "watcher.yml")]
    report = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True).stdout)
    assert report["varnish"] == {"active_vcl": active}
    human = subprocess.run(command, capture_output=True, text=True)
    assert human.returncode == 0, human.stdout
    assert f"varnish: active VCL {active}" in human.stdout
