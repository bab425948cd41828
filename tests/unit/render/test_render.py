"""Slots, runtime commands and the structure that decides between runtime and reload."""

from __future__ import annotations

from dataclasses import replace

from breakwater.catalog import Backend, BackendOptions, Catalog, Route, Server
from breakwater.render.haproxy import render_haproxy
from breakwater.render.slots import assign_slots, runtime_commands, structure_of
from breakwater.targets.settings import HAProxySettings

SETTINGS = HAProxySettings(config_dir="/etc/bw")


def catalog_with(*servers: Server, name: str = "be_ns_web_http") -> Catalog:
    backend = Backend(name, "ns", "web", "http", BackendOptions(), tuple(servers))
    route = Route("a.example.com", "/", "prefix", name, "Ingress ns/web")
    return Catalog(routes=[route], backends={name: backend})


A, B, C = (Server(f"10.0.0.{i}", 80, "ready") for i in (1, 2, 3))


def test_servers_keep_their_slots() -> None:
    first = assign_slots(catalog_with(A, B, C), {}, 4)
    assert first["be_ns_web_http"] == [A, B, C, None]
    second = assign_slots(catalog_with(C, A), first, 4)
    assert second["be_ns_web_http"] == [A, None, C, None]
    third = assign_slots(catalog_with(C, A, Server("10.0.0.4", 80, "ready")), second, 4)
    assert third["be_ns_web_http"][1] == Server("10.0.0.4", 80, "ready")


def test_backend_grows_to_the_next_power_of_two() -> None:
    servers = [Server(f"10.0.1.{i}", 80, "ready") for i in range(5)]
    layout = assign_slots(catalog_with(*servers), {}, 4)
    assert len(layout["be_ns_web_http"]) == 8


def test_runtime_commands_for_add_remove_drain() -> None:
    old = {"be": [A, B, None, None]}
    new = {"be": [A, Server("10.0.0.2", 80, "drain"), C, None]}
    assert runtime_commands(old, new) == [
        "set weight be/s2 0",
        "set server be/s3 addr 10.0.0.3 port 80",
        "set weight be/s3 1",
        "set server be/s3 state ready",
    ]
    assert runtime_commands(new, {"be": [A, None, C, None]}) == [
        "set server be/s2 state maint",
        "set server be/s2 addr 127.0.0.1 port 1",
    ]


def test_servers_and_routes_are_not_structural_but_options_are() -> None:
    def structure(catalog: Catalog, previous: dict) -> tuple:
        layout = assign_slots(catalog, previous, 4)
        return structure_of(render_haproxy(catalog, layout, SETTINGS).config, layout), layout

    base, layout = structure(catalog_with(A), {})
    scaled, _ = structure(catalog_with(A, B), layout)
    assert scaled == base
    # A new route changes the maps (a new generation directory) and the comment that
    # counts routes: neither needs a reload.
    more_routes = catalog_with(A)
    more_routes.routes.append(Route("b.example.com", "/", "prefix", "be_ns_web_http", "x"))
    rerouted, _ = structure(more_routes, layout)
    assert rerouted == base
    slower = catalog_with(A)
    backend = slower.backends["be_ns_web_http"]
    options = replace(backend.options, timeout_server="5m")
    slower.backends["be_ns_web_http"] = replace(backend, options=options)
    assert structure(slower, layout)[0] != base


def test_rendered_servers_follow_the_layout() -> None:
    catalog = catalog_with(A, Server("10.0.0.2", 80, "drain"))
    config = render_haproxy(catalog, assign_slots(catalog, {}, 4), SETTINGS).config
    assert "    server s1 10.0.0.1:80\n" in config
    assert "    server s2 10.0.0.2:80 weight 0\n" in config
    assert "    server s3 127.0.0.1:1 disabled\n" in config


def test_generation_directory_is_content_addressed() -> None:
    one = render_haproxy(catalog_with(A), {"be_ns_web_http": [A]}, SETTINGS)
    two = render_haproxy(catalog_with(B), {"be_ns_web_http": [B]}, SETTINGS)
    assert one.generation_dir == two.generation_dir  # same maps, other servers
    other = catalog_with(A)
    other.routes[0] = Route("z.example.com", "/", "prefix", "be_ns_web_http", "x")
    assert (
        render_haproxy(other, {"be_ns_web_http": [A]}, SETTINGS).generation_dir
        != one.generation_dir
    )


def test_vcl_does_not_grow_with_routes() -> None:
    from breakwater.render.vcl import render_vcl
    from breakwater.targets.settings import VarnishSettings

    settings = VarnishSettings(enabled=True, return_socket="/run/haproxy/return.sock")
    vcl = render_vcl(settings)
    assert "vcl 4.1;" in vcl and '.path = "/run/haproxy/return.sock";' in vcl
    # The VCL takes no catalog at all: its size is the same at 10 or 10,000 routes.
    assert "sub vcl_recv" in vcl and vcl.count("if (") < 15


def test_haproxy_sends_cacheable_routes_to_varnish() -> None:
    from breakwater.targets.settings import VarnishSettings

    varnish = VarnishSettings(enabled=True, server="127.0.0.1:6081", return_socket="/run/r.sock")
    catalog = catalog_with(A)
    config = render_haproxy(catalog, assign_slots(catalog, {}, 4), SETTINGS, varnish=varnish).config
    assert "use_backend bw_varnish if bw_cacheable bw_varnish_up" in config
    assert "bind unix@/run/r.sock mode 660 group varnish" in config
    assert config.count("http-request del-header x-breakwater- -m beg") == 2
    assert (
        "bw_varnish" not in render_haproxy(catalog, assign_slots(catalog, {}, 4), SETTINGS).config
    )


def test_layout_survives_a_round_trip_through_the_file() -> None:
    catalog = catalog_with(C, A, Server("10.0.0.2", 80, "drain"))
    layout = assign_slots(catalog, {"be_ns_web_http": [None, C, None, A]}, 4)
    config = render_haproxy(catalog, layout, SETTINGS).config
    from breakwater.render.slots import layout_from_config

    assert layout_from_config(config) == layout
    again = render_haproxy(catalog, assign_slots(catalog, layout_from_config(config), 4), SETTINGS)
    assert again.config == config


def test_backends_log_what_backend_log_says_and_frontends_log_requests() -> None:
    def sections(backend_log: str) -> tuple[str, str]:
        settings = HAProxySettings(config_dir="/etc/bw", backend_log=backend_log)
        catalog = catalog_with(Server("10.0.0.1", 8080, "ready"))
        config = render_haproxy(catalog, assign_slots(catalog, {}, 4), settings).config
        # The defaults section in force for each: the last one above it.
        first, _, rest = config.partition("\nfrontend bw_public")
        backends, _, _ = rest.rpartition("\nbackend be_ns_web_http")
        return first.rpartition("\ndefaults")[2], backends.rpartition("\ndefaults")[2]

    for backend_log in ("all", "errors", "none"):
        frontend_defaults, _ = sections(backend_log)
        assert "\n    log global\n" in frontend_defaults  # request logs, always
    assert "\n    log global\n" in sections("all")[1]
    assert "\n    log stdout format raw local0 err\n" in sections("errors")[1]
    assert "\n    log " not in sections("none")[1]
