"""Hostile objects, one test per defect class found from outside (issue: hostile objects).

Each test writes what a tenant could write and asserts what an operator would check:
the object is rejected alone, with a reason that names it, the others keep serving,
and nothing of it reaches a rendered file or a runtime command.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from builders import READY, endpoint_slice, ingress, node, route_configmap, service, tls_secret

import breakwater.catalog.builder as builder_module
from breakwater.catalog import (
    Backend,
    BackendOptions,
    Catalog,
    CatalogSettings,
    Route,
    Server,
    build_catalog,
)
from breakwater.catalog.live import LiveCatalog
from breakwater.cluster.source import Change
from breakwater.cluster.state import ClusterState
from breakwater.config import Config
from breakwater.lab import storage_key, storage_value
from breakwater.render.haproxy import RenderedConfig, render_haproxy
from breakwater.render.slots import assign_slots, runtime_commands
from breakwater.targets.haproxy_api import HAProxyError, check_command
from breakwater.targets.settings import HAProxySettings
from breakwater.targets.staging import inside, write_generation

MARKER = "pwned"


def rejected(catalog: Catalog) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


def rendered_text(catalog: Catalog) -> str:
    layout = assign_slots(catalog, {}, 4)
    rendered = render_haproxy(catalog, layout, HAProxySettings(config_dir="/etc/bw"))
    return "\n".join([rendered.config, *rendered.generation_files.values()])


def good_route() -> list[dict[str, Any]]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")]),
    ]


def assert_good_route_serves(catalog: Catalog) -> None:
    assert ("good.example.com", "be_shop_web_http") in {(r.host, r.backend) for r in catalog.routes}
    assert catalog.backends["be_shop_web_http"].servers == (Server("10.0.0.1", 8080, "ready"),)


# --- injection --------------------------------------------------------------------------


def test_service_port_name_cannot_inject_when_the_ingress_names_the_port_by_number() -> None:
    evil = service("shop", "evil", port_name=f"http\n    http-request return string {MARKER}")
    route = ingress("shop", "evil", [("evil.example.com", "/", "Prefix", "evil")])
    route["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"number": 80}
    catalog = build_catalog([*good_route(), evil, route])
    assert_good_route_serves(catalog)
    assert "service port name" in rejected(catalog)["Ingress shop/evil"]
    assert MARKER not in rendered_text(catalog)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda v: ingress("shop", "x", [(v, "/", "Prefix", "web")]), "hostname"),
        (lambda v: ingress("shop", "x", [("x.example.com", v, "Prefix", "web")]), "path"),
        (lambda v: route_configmap("shop", "web", {"hosts": "x.example.com", "service": v}), ""),
    ],
    ids=["host", "path", "service"],
)
def test_a_trailing_newline_is_not_part_of_any_accepted_value(build: Any, field: str) -> None:
    value = {"hostname": "evil.example.com\n", "path": "/evilpath\n", "": "evilsvc\n"}[field]
    bad = build(value)
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    kind = bad["kind"]
    name = bad["metadata"]["name"]
    assert f"{kind} shop/{name}" in rejected(catalog)
    assert value.strip() not in rendered_text(catalog)


def test_a_secret_name_with_a_newline_keeps_the_routes_and_writes_no_certificate() -> None:
    secret = tls_secret("shop", "www")
    secret["metadata"]["name"] = "www\n"
    route = ingress(
        "shop",
        "tls",
        [("www.example.com", "/", "Prefix", "web")],
        tls=[{"hosts": ["www.example.com"], "secretName": "www\n"}],
    )
    catalog = build_catalog([*good_route(), secret, route])
    assert catalog.certificates == {}
    assert "secret name" in rejected(catalog)["Ingress shop/tls"]


def test_a_namespace_that_walks_out_of_the_generation_directory_is_rejected() -> None:
    secret = tls_secret("../../../escaped", "www")
    route = ingress(
        "../../../escaped",
        "tls",
        [("www.example.com", "/", "Prefix", "web")],
        tls=[{"hosts": ["www.example.com"], "secretName": "www"}],
    )
    catalog = build_catalog([*good_route(), secret, route])
    assert catalog.certificates == {}
    assert "namespace" in rejected(catalog)["Ingress ../../../escaped/tls"]
    assert "escaped" not in rendered_text(catalog)


def test_ipv6_zone_cannot_become_a_second_runtime_command() -> None:
    slice_b = endpoint_slice("shop", "web", [("fe80::1%x;disable frontend bw_public", READY)])
    slice_b["metadata"]["name"] = "web-b"
    slice_b["addressType"] = "IPv6"
    catalog = build_catalog([*good_route(), slice_b])
    assert_good_route_serves(catalog)
    assert "scope" in rejected(catalog)["EndpointSlice shop/web-b"]
    layout = assign_slots(catalog, {}, 4)
    empty = {name: [None] * len(slots) for name, slots in layout.items()}
    for command in runtime_commands(empty, layout):
        check_command(command)
        assert "disable" not in command


@pytest.mark.parametrize(
    "line",
    [
        "set server be/s1 addr 10.0.0.1;disable frontend bw_public port 80",
        "set server be/s1 addr 10.0.0.1\ndisable frontend bw_public",
        "set server be/s1 addr 10.0.0.1\rport 80",
        "set weight be/s1 1\x00",
    ],
)
def test_the_runtime_session_refuses_a_second_command_inside_an_argument(line: str) -> None:
    with pytest.raises(HAProxyError, match="refused runtime command"):
        check_command(line)


def test_generation_files_are_written_inside_the_generation_directory_only(tmp_path) -> None:
    directory = tmp_path / "gen-0123456789abcdef"
    rendered = RenderedConfig(
        config="",
        generation_dir=str(directory),
        generation_files={"routes-exact.map": "", "certs/../../../escaped.pem": "KEY"},
    )
    with pytest.raises(OSError, match="outside"):
        write_generation(rendered)
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(OSError):
        inside(str(directory), "/etc/passwd")
    assert inside(str(directory), "certs/a.pem") == str(directory / "certs" / "a.pem")


def test_the_renderer_refuses_words_that_slipped_past_validation_and_names_the_object() -> None:
    # Built by hand, as a bug in validation would: the renderer is the last line.
    bad_backend = Backend(
        "be_x_y_http", "x", "y", "http", BackendOptions(timeout_server="1s\n  mode tcp"), ()
    )
    good_backend = Backend("be_shop_web_http", "shop", "web", "http", BackendOptions(), ())
    catalog = Catalog(
        routes=[
            Route("good.example.com", "/", "prefix", "be_shop_web_http", "Ingress shop/good"),
            Route("bad.example.com", "/", "prefix", "be_x_y_http", "Ingress x/bad"),
            Route("evil.example.com\nx", "/", "prefix", "be_shop_web_http", "Ingress x/evil"),
        ],
        backends={"be_x_y_http": bad_backend, "be_shop_web_http": good_backend},
    )
    layout = assign_slots(catalog, {}, 4)
    rendered = render_haproxy(catalog, layout, HAProxySettings(config_dir="/etc/bw"))
    refused = {r.object: r.reason for r in rendered.refused}
    assert set(refused) == {"Ingress x/bad", "Ingress x/evil"}
    assert all(reason.startswith("refused by the renderer") for reason in refused.values())
    assert "mode tcp" not in rendered.config
    assert "evil.example.com" not in rendered.generation_files["routes-exact.map"]
    assert (
        "good.example.com/"
        in rendered.generation_files["routes-prefix.map"]
        + (rendered.generation_files["routes-exact.map"])
    )


# --- values HAProxy would refuse --------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "reason"),
    [
        ("timeout-server", "9999999d", "HAProxy's limit"),
        ("timeout-connect", "25d", "HAProxy's limit"),
        ("timeout-connect", "0", "above zero"),
        ("health-check-interval", "0s", "above zero"),
        ("health-check-path", "/it's", "quotes"),
        ("health-check-path", "/a$HOME", "quotes"),
        ("cache-ttl", "9999999d", "longer than a year"),
    ],
)
def test_values_haproxy_or_varnish_would_refuse_are_rejected_before_a_reload(
    annotation: str, value: str, reason: str
) -> None:
    annotations = {f"breakwater.io/{annotation}": value}
    if annotation.startswith("cache-"):
        annotations["breakwater.io/cache"] = "true"
    bad = ingress(
        "shop", "bad", [("bad.example.com", "/", "Prefix", "web")], annotations=annotations
    )
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    assert reason in rejected(catalog)["Ingress shop/bad"]


def test_the_largest_duration_haproxy_takes_is_accepted() -> None:
    annotations = {"breakwater.io/timeout-server": "2147483647ms"}
    ok = ingress("shop", "ok", [("ok.example.com", "/", "Prefix", "web")], annotations=annotations)
    catalog = build_catalog([*good_route(), ok])
    assert catalog.rejected == []


# --- malformed structures: rejected alone, never raising out of the build ---------------


def malformed(kind: str) -> dict[str, Any]:
    if kind == "ingress-spec-list":
        bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "web")])
        bad["spec"] = [1, 2]
        return bad
    if kind == "configmap-labels-list":
        bad = route_configmap("shop", "web", {"hosts": "bad.example.com"})
        bad["metadata"]["labels"] = ["breakwater.io/edge"]
        return bad
    if kind == "configmap-data-list":
        bad = route_configmap("shop", "web", {"hosts": "bad.example.com"})
        bad["data"] = ["hosts", "bad.example.com"]
        return bad
    if kind == "ingress-rules-strings":
        bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "web")])
        bad["spec"]["rules"] = ["bad.example.com"]
        return bad
    if kind == "ingress-annotations-list":
        bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "web")])
        bad["metadata"]["annotations"] = ["breakwater.io/cache"]
        return bad
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "ingress-spec-list",
        "configmap-labels-list",
        "configmap-data-list",
        "ingress-rules-strings",
        "ingress-annotations-list",
    ],
)
def test_a_malformed_object_is_rejected_alone(kind: str) -> None:
    bad = malformed(kind)
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    name = f"{bad['kind']} shop/{bad['metadata']['name']}"
    assert name in rejected(catalog), catalog.rejected


def test_a_malformed_ingress_class_is_not_the_default_and_breaks_nothing() -> None:
    ingress_class = {
        "kind": "IngressClass",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {"name": "breakwater", "annotations": ["is-default-class"]},
        "spec": {"controller": "breakwater.io/ingress-controller"},
    }
    classless = ingress("shop", "classless", [("classless.example.com", "/", "Prefix", "web")])
    del classless["spec"]["ingressClassName"]
    catalog = build_catalog([*good_route(), ingress_class, classless])
    assert_good_route_serves(catalog)
    assert "classless.example.com" not in {r.host for r in catalog.routes}
    assert "annotations is not an object" in rejected(catalog)["IngressClass breakwater"]


def test_a_malformed_endpoint_slice_is_rejected_by_name_and_the_other_slices_serve() -> None:
    bad = endpoint_slice("shop", "web", [("10.0.0.9", READY)], suffix="b")
    bad["endpoints"] = [["10.0.0.9"]]
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    assert "malformed" in rejected(catalog)["EndpointSlice shop/web-b"]


def test_an_out_of_range_endpoint_port_is_a_reason() -> None:
    bad = endpoint_slice("shop", "web", [("10.0.0.9", READY)], port=70000, suffix="b")
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    assert "endpoint port" in rejected(catalog)["EndpointSlice shop/web-b"]


def test_one_malformed_node_is_rejected_alone_in_nodeport_mode() -> None:
    bad = node("bad", "10.1.0.9")
    bad["status"]["addresses"][0]["address"] = "10.1.0.9\n    server x 6.6.6.6:80"
    objects = [
        service("shop", "web", node_port=30080),
        ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")]),
        node("n1", "10.1.0.1"),
        bad,
    ]
    catalog = build_catalog(objects, CatalogSettings(mode="nodeport"))
    assert [s.address for s in catalog.backends["be_shop_web_http"].servers] == ["10.1.0.1"]
    assert "address" in rejected(catalog)["Node bad"]
    assert [r.host for r in catalog.routes] == ["good.example.com"]


# --- identity is the etcd key ------------------------------------------------------------


def put(state: ClusterState, key: str, obj: dict[str, Any] | bytes, revision: int) -> None:
    value = obj if isinstance(obj, bytes) else storage_value(obj)
    state.apply([Change(key, value, revision)])


def test_a_copy_under_another_key_does_not_replace_the_real_object() -> None:
    state = ClusterState("/registry/")
    for revision, obj in enumerate(good_route(), 1):
        put(state, storage_key(obj), obj, revision)
    copy = service("shop", "web")
    copy["spec"]["ports"] = []
    put(state, "/registry/services/specs/shop/web2", copy, 10)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert_good_route_serves(catalog)
    reason = rejected(catalog)["/registry/services/specs/shop/web2"]
    assert "metadata.name 'web' disagrees with its key" in reason
    assert state.rejected_keys == {"rejected": 1}


@pytest.mark.parametrize(
    "key",
    [
        "/registry/secrets/../../../escaped/www",
        "/registry/services/specs/shop/web/extra",
        "/registry/services/specs/shop/Web",
        "/registry/ingress/shop/x\n",
    ],
)
def test_a_key_kubernetes_could_not_have_written_is_rejected(key: str) -> None:
    state = ClusterState("/registry/")
    for revision, obj in enumerate(good_route(), 1):
        put(state, storage_key(obj), obj, revision)
    put(state, key, tls_secret("shop", "www"), 10)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert_good_route_serves(catalog)
    assert key in rejected(catalog)


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":' + b"[" * 5000,
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"shop"},'
        b'"data":{"a":' + b"9" * 5000 + b"}}",
        b"\xff\xfe\x00garbage",
        b"k8s\x00\x0a\x03bad",
    ],
    ids=["deep-list", "deep-json", "huge-int", "bytes", "protobuf"],
)
def test_a_value_that_cannot_be_read_is_that_keys_rejection_and_following_goes_on(
    value: bytes,
) -> None:
    state = ClusterState("/registry/")
    for revision, obj in enumerate(good_route(), 1):
        put(state, storage_key(obj), obj, revision)
    put(state, "/registry/ingress/shop/bad", value, 10)
    later = ingress("shop", "later", [("later.example.com", "/", "Prefix", "web")])
    put(state, storage_key(later), later, 11)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert_good_route_serves(catalog)
    assert "later.example.com" in {r.host for r in catalog.routes}
    assert "/registry/ingress/shop/bad" in rejected(catalog)
    assert state.revision == 11
    json.dumps(catalog.as_dict())  # the status file can always be written


# --- bounded work ------------------------------------------------------------------------


def test_hosts_times_paths_is_bounded_before_anything_is_built() -> None:
    hosts = " ".join(f"h{i}.example.com" for i in range(1000))
    paths = " ".join(f"/p{i}" for i in range(1000))
    bad = route_configmap("shop", "web", {"hosts": hosts, "paths": paths})
    catalog = build_catalog([*good_route(), bad])
    assert_good_route_serves(catalog)
    assert "max_routes_per_object" in rejected(catalog)["ConfigMap shop/web"]
    assert len(catalog.routes) == 1


def test_paths_per_ingress_are_bounded() -> None:
    big = ingress("shop", "big", [("big.example.com", "/", "Prefix", "web")])
    paths = big["spec"]["rules"][0]["http"]["paths"]
    paths[:] = [{**paths[0], "path": f"/p{i}"} for i in range(30_000)]
    catalog = build_catalog([*good_route(), big])
    assert_good_route_serves(catalog)
    assert "max_paths_per_object" in rejected(catalog)["Ingress shop/big"]


def test_endpoints_per_backend_are_bounded() -> None:
    endpoints = [(f"10.2.{i // 250}.{i % 250 + 1}", READY) for i in range(600)]
    objects = [
        service("shop", "big"),
        endpoint_slice("shop", "big", endpoints),
        ingress("shop", "big", [("big.example.com", "/", "Prefix", "big")]),
        *good_route(),
    ]
    catalog = build_catalog(objects, CatalogSettings(max_servers_per_backend=500))
    assert_good_route_serves(catalog)
    assert "max_servers_per_backend (500)" in rejected(catalog)["Ingress shop/big"]


def test_servers_are_computed_once_per_backend_not_once_per_path(monkeypatch) -> None:
    calls = []
    real = builder_module.backend_servers

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1:4])
        return real(*args, **kwargs)

    monkeypatch.setattr(builder_module, "backend_servers", counting)
    rules = [("many.example.com", f"/p{i}", "Prefix", "web") for i in range(500)]
    catalog = build_catalog([*good_route(), ingress("shop", "many", rules)])
    assert len(catalog.routes) == 501
    assert calls == [("shop", "web", "http")]
