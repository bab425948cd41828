"""What HAProxyTarget decides, in a temporary directory with no HAProxy running.

The checker is a real process (``/bin/true`` or ``/bin/false``) standing in for
``haproxy -c``; with no master socket, a reload plan ends with the file written.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from breakwater.catalog import Backend, BackendOptions, Catalog, Route, Server
from breakwater.targets.haproxy import HAProxyTarget
from breakwater.targets.settings import HAProxySettings

BACKEND = "be_shop_web_http"
A, B = Server("10.0.0.1", 8080, "ready"), Server("10.0.0.2", 8080, "ready")


def catalog_of(*servers: Server, hosts: tuple[str, ...] = ("www.example.com",)) -> Catalog:
    backend = Backend(BACKEND, "shop", "web", "http", BackendOptions(), servers)
    routes = [Route(host, "/", "prefix", BACKEND, f"Ingress shop/{host}") for host in hosts]
    return Catalog(routes=routes, backends={BACKEND: backend})


def target_in(tmp_path: Path, checker: str = "/bin/true", dry_run: bool = False) -> HAProxyTarget:
    settings = HAProxySettings(
        config_dir=str(tmp_path / "breakwater"),
        config_file=str(tmp_path / "haproxy.cfg"),
        stats_socket=str(tmp_path / "admin.sock"),
        master_socket=str(tmp_path / "master.sock"),
    )
    return HAProxyTarget(settings, haproxy_binary=checker, dry_run=dry_run)


def applied(tmp_path: Path, catalog: Catalog, checker: str = "/bin/true") -> HAProxyTarget:
    target = target_in(tmp_path, checker)
    result = asyncio.run(target.apply(catalog))
    assert (result.action, result.detail) == (
        "written",
        "HAProxy is not running; it will start with this file",
    )
    return target


def test_the_same_catalog_plans_nothing(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    assert asyncio.run(target.plan(catalog_of(A))).action == "none"


def test_a_new_server_plans_the_runtime_commands_and_writes_nothing(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    before = (tmp_path / "haproxy.cfg").read_text()
    plan = asyncio.run(target.plan(catalog_of(A, B)))
    assert plan.action == "runtime"
    assert plan.commands == [
        f"set server {BACKEND}/s2 addr 10.0.0.2 port 8080",
        f"set weight {BACKEND}/s2 1",
        f"set server {BACKEND}/s2 state ready",
    ]
    # Servers alone: nothing rendered on the event path, the file is written after.
    assert plan.rendered is None
    assert (tmp_path / "haproxy.cfg").read_text() == before
    assert target.layout[BACKEND][1] is None  # HAProxy is not told until activate


def test_servers_only_plans_those_backends_and_leaves_the_file_stale(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    plan = asyncio.run(target.plan(catalog_of(B), servers_only=[BACKEND]))
    assert plan.action == "runtime"
    assert plan.rendered is None  # nothing rendered: the file is written later
    # A replaced by B: B takes a slot that was free, and A's is freed -- never
    # readdressed at once (HAProxy would reuse its idle connections to A).
    assert plan.commands == [
        f"set server {BACKEND}/s1 state maint",
        f"set server {BACKEND}/s1 addr 127.0.0.1 port 1",
        f"set server {BACKEND}/s2 addr 10.0.0.2 port 8080",
        f"set weight {BACKEND}/s2 1",
        f"set server {BACKEND}/s2 state ready",
    ]
    assert plan.layout == {BACKEND: [None, B, None, None]}


def test_a_new_route_plans_a_route_map_change_and_writes_nothing(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    before = (tmp_path / "haproxy.cfg").read_text()
    plan = asyncio.run(target.plan(catalog_of(A, hosts=("www.example.com", "api.example.com"))))
    assert plan.action == "runtime"
    assert plan.commands == []  # no server moves
    assert plan.routes is not None
    assert plan.routes.maps == {
        "routes-prefix.map": f"api.example.com/ {BACKEND};-;-;-;-\n"
        f"www.example.com/ {BACKEND};-;-;-;-\n"
    }
    assert (tmp_path / "haproxy.cfg").read_text() == before


def test_a_route_to_a_new_service_takes_a_spare_section(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    catalog = catalog_of(A)
    other = Backend("be_shop_api_http", "shop", "api", "http", BackendOptions(), (B,))
    catalog.backends[other.name] = other
    catalog.routes.append(Route("api.example.com", "/", "prefix", other.name, "Ingress shop/api"))
    plan = asyncio.run(target.plan(catalog))
    assert plan.action == "runtime"
    assert plan.commands == [
        "set server bw_spare_1/s1 addr 10.0.0.2 port 8080",
        "set weight bw_spare_1/s1 1",
        "set server bw_spare_1/s1 state ready",
    ]
    assert plan.routes is not None
    assert "api.example.com/ bw_spare_1;-;-;-;-\n" in plan.routes.maps["routes-prefix.map"]
    assert plan.rendered is None  # routes alone: the file is written after (flush)
    assert plan.shape is not None and plan.shape.serving == {"bw_spare_1": "be_shop_api_http"}
    # The next reload gives it its own name.
    renamed = asyncio.run(target.plan(catalog, fresh=True))
    assert renamed.action == "reload" and renamed.cause == "rename"
    assert renamed.rendered is not None
    assert "backend be_shop_api_http\n" in renamed.rendered.config


def test_an_option_change_plans_a_reload_that_can_restore_the_file(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    before = (tmp_path / "haproxy.cfg").read_text()
    catalog = catalog_of(A)
    backend = catalog.backends[BACKEND]
    slow = Backend(BACKEND, "shop", "web", "http", BackendOptions(timeout_server="5m"), (A,))
    catalog.backends[BACKEND] = slow
    assert backend != slow
    plan = asyncio.run(target.plan(catalog))
    assert plan.action == "reload"
    assert plan.previous == before
    assert (tmp_path / "haproxy.cfg").read_text() == before


def test_a_backend_that_outgrows_its_slots_grows_through_the_runtime_api(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    servers = [Server(f"10.0.1.{i}", 8080, "ready") for i in range(5)]
    for servers_only in ([BACKEND], None):
        plan = asyncio.run(target.plan(catalog_of(*servers), servers_only=servers_only))
        assert plan.action == "runtime"
        # Slots 1-4 readdressed in place, then 5-8 added: one server, three free.
        added = plan.commands[plan.commands.index(f"add server {BACKEND}/s5 10.0.1.4:8080") :]
        assert added == [
            f"add server {BACKEND}/s5 10.0.1.4:8080",
            f"set server {BACKEND}/s5 state ready",
            f"add server {BACKEND}/s6 127.0.0.1:1 disabled",
            f"add server {BACKEND}/s7 127.0.0.1:1 disabled",
            f"add server {BACKEND}/s8 127.0.0.1:1 disabled",
        ]
        assert plan.structure is not None and dict(plan.structure[1])[BACKEND] == 8
    assert (
        plan.rendered is not None and "    server s8 127.0.0.1:1 disabled\n" in plan.rendered.config
    )


def test_added_servers_get_the_backends_health_check_and_static_rr_takes_a_reload(
    tmp_path,
) -> None:
    def catalog(options: BackendOptions, count: int) -> Catalog:
        servers = tuple(Server(f"10.0.1.{i}", 8080, "ready") for i in range(count))
        backend = Backend(BACKEND, "shop", "web", "http", options, servers)
        route = Route("www.example.com", "/", "prefix", BACKEND, "Ingress shop/www")
        return Catalog(routes=[route], backends={BACKEND: backend})

    checked = BackendOptions(health_check_path="/healthz", health_check_interval="3s")
    target = applied(tmp_path / "checked", catalog(checked, 4))
    plan = asyncio.run(target.plan(catalog(checked, 5), servers_only=[BACKEND]))
    assert plan.commands[:3] == [
        f"add server {BACKEND}/s5 10.0.1.4:8080 check inter 3s",
        f"enable health {BACKEND}/s5",
        f"set server {BACKEND}/s5 state ready",
    ]
    static = BackendOptions(balance="static-rr")
    target = applied(tmp_path / "static", catalog(static, 4))
    assert asyncio.run(target.plan(catalog(static, 5), servers_only=[BACKEND])).action == "reload"


def test_a_dry_run_plans_a_diff_and_applying_it_writes_nothing(tmp_path) -> None:
    applied(tmp_path, catalog_of(A))
    before = (tmp_path / "haproxy.cfg").read_text()
    dry = target_in(tmp_path, dry_run=True)
    plan = asyncio.run(dry.plan(catalog_of(A, B)))
    assert plan.action == "dry-run"
    assert "+    server s2 10.0.0.2:8080" in plan.diff
    result = asyncio.run(dry.apply(catalog_of(A, B)))
    assert (result.action, result.diff) == ("dry-run", plan.diff)
    assert (tmp_path / "haproxy.cfg").read_text() == before


def test_a_runtime_change_without_a_runtime_api_is_reloaded_instead(tmp_path) -> None:
    target = applied(tmp_path, catalog_of(A))
    result = asyncio.run(target.apply(catalog_of(A, B)))
    assert result.action == "written"  # the reload path, with no HAProxy to reload
    assert "10.0.0.2:8080" in (tmp_path / "haproxy.cfg").read_text()
    assert asyncio.run(target.plan(catalog_of(A, B))).action == "none"


def test_a_refused_check_keeps_the_last_good_file(tmp_path) -> None:
    applied(tmp_path, catalog_of(A))
    before = (tmp_path / "haproxy.cfg").read_text()
    target = target_in(tmp_path, checker="/bin/false")
    result = asyncio.run(target.apply(catalog_of(A, hosts=("www.example.com", "api.example.com"))))
    assert result.action == "failed"
    assert result.detail.startswith("kept the last good configuration: /bin/false -c -f ")
    assert (tmp_path / "haproxy.cfg").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["breakwater", "haproxy.cfg"]  # nothing staged left
