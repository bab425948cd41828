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


# --- Kubernetes' own validation, field by field (issue #13, item 4) ----------------------
#
# Each hole found from outside, and each one the audit against Kubernetes' validation
# found, goes through the catalog: the object is rejected alone, by name, with a reason
# naming the field, and the good route keeps serving.


def bad_ingress(host: Any = "bad.example.com", **path: Any) -> dict[str, Any]:
    """An Ingress shop/bad with one rule and one path; ``path`` replaces the path's fields
    (None deletes one)."""
    bad = ingress("shop", "bad", [(host, "/", "Prefix", "web")])
    http_path = bad["spec"]["rules"][0]["http"]["paths"][0]
    for name, value in path.items():
        if value is None:
            del http_path[name]
        else:
            http_path[name] = value
    return bad


def second_slice(
    addresses: list[str], address_type: str = "IPv4", port: Any = 8080
) -> dict[str, Any]:
    """Another EndpointSlice of shop/web (web-b) beside the good one."""
    # A copy of READY each: a test changes the conditions of its slice only.
    extra = endpoint_slice("shop", "web", [(a, dict(READY)) for a in addresses], suffix="b")
    extra["addressType"] = address_type
    extra["ports"][0]["port"] = port
    return extra


def endpoints(subsets: list[dict[str, Any]], name: str = "web") -> dict[str, Any]:
    return {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "subsets": subsets,
    }


def assert_rejected(catalog: Catalog, what: str, reason: str) -> None:
    assert_good_route_serves(catalog)
    assert what in rejected(catalog), catalog.rejected
    assert reason in rejected(catalog)[what]


# The three holes named in the issue.


@pytest.mark.parametrize("host", ["1.2.3.4", "10.0.0.255", "010.0.0.1", "0000000001.2.3.4"])
def test_an_ingress_rule_host_that_is_an_ip_address_is_rejected(host: str) -> None:
    # Kubernetes refuses it (validateIngressRules: "must be a DNS name, not an IP
    # address"), reading the address as ParseIPSloppy does: 010.0.0.1 is one.
    catalog = build_catalog([*good_route(), bad_ingress(host)])
    assert_rejected(catalog, "Ingress shop/bad", f"hostname {host!r} is an IP address")
    assert host not in {r.host for r in catalog.routes}


def test_a_configmap_host_that_is_an_ip_address_is_rejected() -> None:
    bad = route_configmap("shop", "web", {"hosts": "ok.example.com 10.1.2.3"})
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "ConfigMap shop/web", "'10.1.2.3' is an IP address")


@pytest.mark.parametrize("host", ["*.1.2.3", "*.1.2.3.4", "1.2.3.256", "1.2.3"])
def test_digits_and_dots_kubernetes_takes_for_a_dns_name_are_routed(host: str) -> None:
    catalog = build_catalog([*good_route(), bad_ingress(host)])
    assert catalog.rejected == []
    assert host in {r.host for r in catalog.routes}


@pytest.mark.parametrize(
    ("address_type", "address", "reason"),
    [
        ("IPv4", "2001:db8::9", "'2001:db8::9' is IPv6, in an IPv4 slice"),
        ("IPv6", "10.0.0.9", "'10.0.0.9' is IPv4, in an IPv6 slice"),
        ("IPv6", "::ffff:10.0.0.9", "is an IPv4-mapped IPv6 address"),
        ("IPv4", "::ffff:10.0.0.9", "is an IPv4-mapped IPv6 address"),
        ("IPv4", "010.0.0.9", "'010.0.0.9' is not an IP address"),
    ],
)
def test_an_address_of_the_wrong_family_for_the_slice_is_rejected(
    address_type: str, address: str, reason: str
) -> None:
    # One bad address rejects its slice (never a server: an IPv6 address in an IPv4
    # slice sent clients to 503s); the Service's good slice keeps serving.
    good = "10.0.0.8" if address_type == "IPv4" else "2001:db8::8"
    catalog = build_catalog([*good_route(), second_slice([good, address], address_type)])
    assert_rejected(catalog, "EndpointSlice shop/web-b", reason)
    assert address not in rendered_text(catalog)


def test_an_ipv6_slice_of_ipv6_addresses_serves() -> None:
    catalog = build_catalog([*good_route(), second_slice(["2001:DB8::9"], "IPv6")])
    assert catalog.rejected == []
    servers = catalog.backends["be_shop_web_http"].servers
    assert Server("2001:db8::9", 8080, "ready") in servers


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        (0, "endpoint port 0 is not a port number"),
        (65536, "endpoint port 65536 is not a port number"),
        (-1, "endpoint port -1 is not a port number"),
        ("8080", "endpoint port '8080' is not a port number"),
        (True, "endpoint port True is not a port number"),
        (8080.0, "endpoint port 8080.0 is not a port number"),
        (2**40, "is not a port number"),
    ],
)
def test_an_out_of_range_endpoint_slice_port_is_rejected_with_its_reason(
    port: Any, reason: str
) -> None:
    catalog = build_catalog([*good_route(), second_slice(["10.0.0.9"], port=port)])
    assert_rejected(catalog, "EndpointSlice shop/web-b", reason)


def test_an_endpoint_slice_port_without_a_number_is_a_reason_not_a_silent_drop() -> None:
    bad = second_slice(["10.0.0.9"])
    del bad["ports"][0]["port"]
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "EndpointSlice shop/web-b", "endpoint port 'http' has no port number")


def test_a_slice_port_the_edge_does_not_use_is_not_checked_for_range() -> None:
    # Kubernetes leaves EndpointSlice port numbers unchecked (validatePorts); the edge
    # checks the one it writes, and leaves the others alone.
    extra = second_slice(["10.0.0.9"])
    extra["ports"].append({"name": "metrics", "port": 70000, "protocol": "TCP"})
    catalog = build_catalog([*good_route(), extra])
    assert catalog.rejected == []
    assert Server("10.0.0.9", 8080, "ready") in catalog.backends["be_shop_web_http"].servers


@pytest.mark.parametrize("port", [0, 65536, "8080", None])
def test_an_out_of_range_endpoints_port_is_rejected_with_its_reason(port: Any) -> None:
    # Endpoints (no EndpointSlice for the Service): validateEndpointPort checks every port.
    subset = {
        "addresses": [{"ip": "10.0.0.1"}],
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "other", "port": port, "protocol": "TCP"},
        ],
    }
    objects = [
        service("shop", "web"),
        endpoints([subset]),
        ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")]),
    ]
    catalog = build_catalog(objects)
    assert "endpoint port" in rejected(catalog)["Endpoints shop/web"]
    assert catalog.backends["be_shop_web_http"].servers == ()


def test_endpoints_serve_their_tcp_port() -> None:
    subset = {
        "addresses": [{"ip": "10.0.0.1"}],
        "ports": [
            {"name": "http", "port": 5353, "protocol": "UDP"},
            {"name": "http", "port": 8080, "protocol": "TCP"},
        ],
    }
    objects = [*good_route()[::2], endpoints([subset])]
    catalog = build_catalog(objects)
    assert_good_route_serves(catalog)


# What the audit found: an Ingress.


@pytest.mark.parametrize(
    ("path", "path_type", "reason"),
    [
        ("/a//b", "Prefix", "must not contain '//'"),
        ("/a/./b", "Exact", "must not contain '/./'"),
        ("/a/../admin", "Prefix", "must not contain '/../'"),
        ("/a%2fadmin", "Prefix", "must not contain '%2f'"),
        ("/a%2Fadmin", "Exact", "must not contain '%2F'"),
        ("/a/..", "Prefix", "must not end with '/..'"),
        ("/a/.", "Exact", "must not end with '/.'"),
        ("", "Prefix", "must start with '/'"),
        (None, "Exact", "path is required for pathType Exact"),
        (7, "Prefix", "path 7 is not a string"),
    ],
)
def test_an_exact_or_prefix_path_kubernetes_refuses_is_rejected(
    path: Any, path_type: str, reason: str
) -> None:
    catalog = build_catalog([*good_route(), bad_ingress(path=path, pathType=path_type)])
    assert_rejected(catalog, "Ingress shop/bad", reason)


@pytest.mark.parametrize(("path", "routed"), [("/a//b", "/a//b"), (None, "/"), ("", "/")])
def test_an_implementation_specific_path_follows_kubernetes_looser_rule(
    path: Any, routed: str
) -> None:
    ok = bad_ingress(pathType="ImplementationSpecific", path=path)  # None: no path
    catalog = build_catalog([*good_route(), ok])
    assert catalog.rejected == []
    assert ("bad.example.com", routed) in {(r.host, r.path) for r in catalog.routes}


def test_an_ingress_path_without_a_path_type_is_rejected() -> None:
    catalog = build_catalog([*good_route(), bad_ingress(pathType=None)])
    assert_rejected(catalog, "Ingress shop/bad", "pathType is required")


@pytest.mark.parametrize("host", ["Bad.example.com", "*.Example.com"])
def test_an_ingress_host_in_upper_case_is_rejected(host: str) -> None:
    catalog = build_catalog([*good_route(), bad_ingress(host)])
    assert_rejected(catalog, "Ingress shop/bad", "must be lower case")


@pytest.mark.parametrize("host", [0, False, [], {}])
def test_an_ingress_host_that_is_not_a_string_is_never_every_host(host: Any) -> None:
    catalog = build_catalog([*good_route(), bad_ingress(host)])
    assert_rejected(catalog, "Ingress shop/bad", "is not a string")
    assert "*" not in {r.host for r in catalog.routes}


@pytest.mark.parametrize("host", [None, ""])
def test_an_ingress_rule_without_a_host_is_every_host(host: Any) -> None:
    catalog = build_catalog([*good_route(), bad_ingress(host)])
    assert catalog.rejected == []
    assert "*" in {r.host for r in catalog.routes}


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ({"name": "http", "number": 80}, "sets both a name and a number"),
        ({"name": "80"}, "port.name '80' is not a valid port name"),
        ({"name": "very-long-port-name"}, "is not a valid port name"),
        ({"number": "80"}, "port.number '80' is not a port number"),
        ({"number": 65536}, "port.number 65536 is not a port number"),
        ({}, "needs a name or a number"),
    ],
)
def test_an_ingress_backend_port_kubernetes_refuses_is_rejected(port: Any, reason: str) -> None:
    bad = bad_ingress()
    bad["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = port
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", reason)


def test_an_ingress_backend_with_a_service_and_a_resource_is_rejected() -> None:
    bad = bad_ingress()
    backend = bad["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["resource"] = {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "sets both a service and a resource")


@pytest.mark.parametrize("value", [5, True, ["1s"], None])
def test_an_annotation_value_that_is_not_a_string_is_rejected(value: Any) -> None:
    bad = bad_ingress()
    bad["metadata"]["annotations"] = {"breakwater.io/timeout-server": value}
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "breakwater.io/timeout-server")
    assert "is not a string" in rejected(catalog)["Ingress shop/bad"]


def test_a_rule_with_an_empty_list_of_paths_is_rejected() -> None:
    bad = bad_ingress()
    bad["spec"]["rules"].append({"host": "other.example.com", "http": {"paths": []}})
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "http.paths is empty")


def test_a_rule_with_a_host_only_is_accepted_and_routes_nothing() -> None:
    ok = bad_ingress()
    ok["spec"]["rules"].append({"host": "other.example.com"})
    catalog = build_catalog([*good_route(), ok])
    assert catalog.rejected == []
    assert "other.example.com" not in {r.host for r in catalog.routes}


def test_an_ingress_with_neither_rules_nor_a_default_backend_is_rejected() -> None:
    bad = bad_ingress()
    bad["spec"]["rules"] = []
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "neither rules nor defaultBackend")


def test_an_empty_default_backend_is_rejected_not_ignored() -> None:
    bad = bad_ingress()
    bad["spec"]["defaultBackend"] = {}
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "backend names no service")


@pytest.mark.parametrize("host", ["10.0.0.1", "*.example.com", "a" * 64 + ".example.com"])
def test_tls_hosts_kubernetes_accepts_keep_the_ingress(host: str) -> None:
    # validateIngressTLS: a DNS-1123 subdomain (or a wildcard), no IP address check.
    ok = bad_ingress()
    ok["spec"]["tls"] = [{"hosts": [host]}]
    catalog = build_catalog([*good_route(), ok])
    assert catalog.rejected == []
    assert "bad.example.com" in {r.host for r in catalog.routes}


@pytest.mark.parametrize("host", ["WWW.example.com", "a b", "*.*.example.com", 5])
def test_tls_hosts_kubernetes_refuses_are_rejected(host: Any) -> None:
    bad = bad_ingress()
    bad["spec"]["tls"] = [{"hosts": [host]}]
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "Ingress shop/bad", "tls host")


def test_an_object_name_with_a_label_longer_than_63_is_a_kubernetes_name() -> None:
    name = "a" * 64 + ".b"
    ok = ingress("shop", name, [("long.example.com", "/", "Prefix", "web")])
    catalog = build_catalog([*good_route(), ok])
    assert catalog.rejected == []
    assert "long.example.com" in {r.host for r in catalog.routes}


# What the audit found: a Service, its EndpointSlices and Endpoints, a Node.


def test_a_udp_service_port_is_a_reason_not_a_backend_without_servers() -> None:
    dns = service("shop", "dns")
    dns["spec"]["ports"][0].update(protocol="UDP")
    bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "dns")])
    catalog = build_catalog([*good_route(), dns, bad])
    assert_rejected(catalog, "Ingress shop/bad", "service port 'http' is UDP; HAProxy proxies TCP")


def test_of_a_tcp_and_a_udp_port_of_one_number_the_tcp_one_is_routed() -> None:
    web = service("shop", "web")
    web["spec"]["ports"].insert(0, {"name": "dns", "port": 80, "protocol": "UDP"})
    by_number = ingress("shop", "num", [("num.example.com", "/", "Prefix", "web")])
    by_number["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"number": 80}
    objects = [web, *good_route()[1:], by_number]
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    assert {r.backend for r in catalog.routes} == {"be_shop_web_http"}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("protocol", "HTTP", "service port protocol 'HTTP' is not TCP, UDP or SCTP"),
        ("port", 0, "service port 0 is not a port number"),
        ("port", "80", "service port '80' is not a port number"),
    ],
)
def test_a_service_port_kubernetes_refuses_is_rejected(field: str, value: Any, reason: str) -> None:
    bad_service = service("shop", "other")
    bad_service["spec"]["ports"][0][field] = value
    bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "other")])
    catalog = build_catalog([*good_route(), bad_service, bad])
    assert_rejected(catalog, "Ingress shop/bad", reason)


def test_a_service_of_an_unknown_type_is_rejected() -> None:
    odd = service("shop", "other")
    odd["spec"]["type"] = "Magic"
    bad = ingress("shop", "bad", [("bad.example.com", "/", "Prefix", "other")])
    catalog = build_catalog([*good_route(), odd, bad])
    assert_rejected(catalog, "Ingress shop/bad", "unknown type 'Magic'")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s["ports"].append(dict(s["ports"][0])), "port name 'http' is listed twice"),
        (lambda s: s["ports"][0].update(protocol="HTTP"), "protocol 'HTTP' is not TCP, UDP"),
        (lambda s: s["ports"][0].update(name="Http"), "port name 'Http' is not a valid RFC"),
        (
            lambda s: s["endpoints"][0]["conditions"].update(ready="false"),
            "endpoint condition ready 'false' is not a boolean",
        ),
        (
            lambda s: s["endpoints"][0]["conditions"].update(terminating=1),
            "endpoint condition terminating 1 is not a boolean",
        ),
        (lambda s: s["endpoints"][0].update(addresses="10.0.0.9"), "addresses is not a list"),
        (lambda s: s.update(addressType="IP"), "addressType 'IP' is not IPv4, IPv6 or FQDN"),
    ],
)
def test_an_endpoint_slice_kubernetes_refuses_is_rejected(change: Any, reason: str) -> None:
    bad = second_slice(["10.0.0.9"])
    change(bad)
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "EndpointSlice shop/web-b", reason)


def test_a_null_condition_is_read_as_unset() -> None:
    extra = second_slice(["10.0.0.9"])
    extra["endpoints"][0]["conditions"] = {"ready": None, "serving": None, "terminating": None}
    catalog = build_catalog([*good_route(), extra])
    assert catalog.rejected == []
    assert Server("10.0.0.9", 8080, "ready") in catalog.backends["be_shop_web_http"].servers


@pytest.mark.parametrize("address", ["ff12::1", "ff02::2", "fe80::9", "::1"])
def test_an_ipv6_endpoint_kubernetes_refuses_as_special_is_rejected(address: str) -> None:
    catalog = build_catalog([*good_route(), second_slice([address], "IPv6")])
    assert_rejected(catalog, "EndpointSlice shop/web-b", "loopback, link-local")


def test_a_node_whose_unschedulable_is_not_a_boolean_is_rejected_alone() -> None:
    bad = node("bad", "10.1.0.9")
    bad["spec"]["unschedulable"] = "false"
    objects = [
        service("shop", "web", node_port=30080),
        ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")]),
        node("n1", "10.1.0.1"),
        bad,
    ]
    catalog = build_catalog(objects, CatalogSettings(mode="nodeport"))
    assert [s.address for s in catalog.backends["be_shop_web_http"].servers] == ["10.1.0.1"]
    assert "spec.unschedulable 'false' is not a boolean" in rejected(catalog)["Node bad"]


# What the audit found: a route ConfigMap, a plain route.


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("paths", "/ok /a//b", "paths '/a//b' must not contain '//'"),
        ("exact-paths", "/a/..", "exact-paths '/a/..' must not end with '/..'"),
        ("paths", "/a%2Fb", "must not contain '%2F'"),
    ],
)
def test_a_configmap_path_an_ingress_could_not_have_is_rejected(
    key: str, value: str, reason: str
) -> None:
    bad = route_configmap("shop", "web", {"hosts": "cm.example.com", key: value})
    catalog = build_catalog([*good_route(), bad])
    assert_rejected(catalog, "ConfigMap shop/web", reason)


def test_a_cache_bypass_path_an_ingress_could_not_have_is_rejected() -> None:
    data = {"hosts": "cm.example.com", "cache": "true", "cache-bypass-paths": "/a/./b"}
    catalog = build_catalog([*good_route(), route_configmap("shop", "web", data)])
    assert_rejected(catalog, "ConfigMap shop/web", "cache-bypass-paths '/a/./b' must not contain")


def test_a_configmap_defaults_to_a_service_port_whose_name_is_a_long_label() -> None:
    # A Service port name is an RFC 1123 label (up to 63 characters); the default port
    # is taken by number, so a name longer than an IANA port name is no reason.
    web = service("shop", "web", port_name="http-with-a-long-name")
    configmap = route_configmap("shop", "web", {"hosts": "cm.example.com"})
    catalog = build_catalog([web, endpoint_slice("shop", "web", []), configmap])
    assert catalog.rejected == []
    assert {r.backend for r in catalog.routes} == {"be_shop_web_http-with-a-long-name"}


def test_a_configmap_for_a_missing_service_says_so() -> None:
    configmap = route_configmap("shop", "ghost", {"hosts": "cm.example.com"})
    catalog = build_catalog([*good_route(), configmap])
    assert_rejected(catalog, "ConfigMap shop/ghost", "service shop/ghost does not exist")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"hosts": ["a.example.com"], "servers": [], "cache-ttl": NaN}', "NaN"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"servers": [{"address": "10.0.0.1", "port": 1' + b"0" * 5000 + b"}]}", "digits"),
        (b'{"hosts": ["a.example.com"]}\xff', "not UTF-8"),
    ],
    ids=["nan", "deep", "huge-int", "bytes"],
)
def test_a_plain_route_that_is_not_strict_json_is_its_keys_reason(
    value: bytes, reason: str
) -> None:
    state = ClusterState("/registry/", routes_prefix="/breakwater/routes/")
    for revision, obj in enumerate(good_route(), 1):
        put(state, storage_key(obj), obj, revision)
    put(state, "/breakwater/routes/bad", value, 10)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert_good_route_serves(catalog)
    assert reason in rejected(catalog)["/breakwater/routes/bad"]


def test_a_tls_secret_with_the_longest_names_kubernetes_allows_is_served() -> None:
    """A 63-character namespace and a 253-character Secret name are valid; the file
    name of its certificate is cut, kept distinct by a hash, and the renderer takes it."""
    namespace = "n" * 63
    names = [
        "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 60 + suffix for suffix in "xy"
    ]
    objects = [
        service(namespace, "web"),
        endpoint_slice(namespace, "web", [("10.0.0.1", READY)]),
    ]
    for index, name in enumerate(names):
        assert len(name) == 253
        objects.append(tls_secret(namespace, name))
        objects.append(
            ingress(
                namespace,
                f"tls-{index}",
                [(f"www{index}.example.com", "/", "Prefix", "web")],
                tls=[{"hosts": [f"www{index}.example.com"], "secretName": name}],
            )
        )
    catalog = build_catalog(objects)
    assert rejected(catalog) == {}
    files = list(catalog.certificates)
    assert len(files) == 2 and len(set(files)) == 2  # two Secrets, two files
    assert all(len(name) <= 251 for name in files)
    assert "refused by the renderer" not in rendered_text(catalog)


# --- traffic features (docs/traffic.md): values written into rules ---------------------
#
# Every option that puts text into haproxy.cfg, with what a tenant could write: a new
# line with a rule of its own, quotes that end an argument, '#' that starts a comment,
# '$VAR' that HAProxy expands outside single quotes, '%[' that starts a sample in a
# log-format, '}' that ends an ACL, NUL, and a value far too long.  The object is
# rejected by the catalog with a reason naming the option (or what its value is: a
# path, a hostname), the good route serves, and the marker is nowhere in what is
# rendered.  What an option takes by design ('$' in a path, '#' in a regex) is written
# inside single quotes, and HAProxy takes the file.

HOSTILE = {
    "newline": f"\n    http-request return string {MARKER}",
    "quote": f"'{MARKER}",
    "double-quote": f'"{MARKER}',
    "hash": f"#{MARKER}",
    "variable": f"${MARKER}",
    "sample": f"%[env({MARKER})]",
    "brace": f"}} {MARKER}",
    "nul": f"\x00{MARKER}",
    "long": MARKER + "a" * 5000,
}

# (a good value, the options it needs); the hostile text is put after it and inside it.
TEXT_OPTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "allow-sources": ("10.0.0.0/8", {}),
    "deny-sources": ("10.0.0.0/8", {}),
    "rewrite-regex": ("^/a(.*)", {"rewrite-target": "/b\\1"}),
    "rewrite-target": ("/b", {}),
    "redirect-to": ("https://x.example/a", {}),
    "app-root": ("/app", {}),
    "hsts-max-age": ("10", {"hsts": "true"}),
    "canary-header": ("x-canary", {"canary-service": "web"}),
    "canary-header-value": ("v", {"canary-service": "web", "canary-header": "x-canary"}),
    "canary-cookie": ("canary", {"canary-service": "web"}),
    "sticky-cookie": ("BWID", {}),
    "retry-on": ("503", {}),
    "cors-allow-origin": ("https://a.example", {"cors": "true"}),
    "cors-allow-methods": ("GET", {"cors": "true"}),
    "cors-allow-headers": ("X-Token", {"cors": "true"}),
    "cors-expose-headers": ("X-Token", {"cors": "true"}),
    "backend-sni": ("a.example", {"backend-protocol": "https"}),
    "error-pages": ("errors", {}),
}

# What an option takes by design, written where it is harmless (inside single quotes,
# where HAProxy reads no comment, variable, sample or brace): checked apart, below.
ALLOWED: dict[str, set[str]] = {
    "rewrite-regex": {"hash", "variable", "sample", "brace"},  # regex syntax
    "rewrite-target": {"variable"},  # '$' is a path character (RFC 3986)
    "redirect-to": {"variable"},
    "app-root": {"variable"},
    "canary-header-value": {"double-quote", "hash", "variable", "sample", "brace"},
    # A list: a new line separates items; '#' and '$' are HTTP token characters.
    "cors-allow-methods": {"newline"},
    "cors-allow-headers": {"newline"},
    "cors-expose-headers": {"newline"},
}


def traffic_route(key: str, value: str, **extra: str) -> dict[str, Any]:
    data = {"hosts": "bad.example.com", key: value, **TEXT_OPTIONS[key][1], **extra}
    return route_configmap("shop", "web", data)


def hostile_values(key: str, kind: str) -> list[str]:
    good = TEXT_OPTIONS[key][0]
    return [good + HOSTILE[kind], good[:1] + HOSTILE[kind] + good[1:]]


REFUSED_CASES = [
    (key, kind) for key in TEXT_OPTIONS for kind in HOSTILE if kind not in ALLOWED.get(key, set())
]
ALLOWED_CASES = [(key, kind) for key, kinds in ALLOWED.items() for kind in sorted(kinds)]


def error_pages() -> dict[str, Any]:
    """The ConfigMap shop/errors that ``error-pages: errors`` names."""
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "errors", "namespace": "shop"},
        "data": {"503": "<h1>down</h1>"},
    }


# The reason names the option, or what its value is (as for hosts and paths).
NAMED_AS = {"app-root": "path", "backend-sni": "hostname"}


@pytest.mark.parametrize(("key", "kind"), REFUSED_CASES)
def test_hostile_text_in_a_traffic_option_is_rejected_with_a_reason(key: str, kind: str) -> None:
    for value in hostile_values(key, kind):
        catalog = build_catalog([*good_route(), error_pages(), traffic_route(key, value)])
        assert_rejected(catalog, "ConfigMap shop/web", NAMED_AS.get(key, key))
        assert "bad.example.com" not in {r.host for r in catalog.routes}
        assert MARKER not in rendered_text(catalog)


def _outside_quotes(config: str) -> str:
    """The text of ``config`` outside single-quoted arguments."""
    import re

    return re.sub(r"'[^'\n]*'", "''", config)


@pytest.mark.parametrize(("key", "kind"), ALLOWED_CASES)
def test_text_an_option_takes_by_design_is_written_inside_single_quotes(
    key: str, kind: str
) -> None:
    for value in hostile_values(key, kind)[:1]:  # after a good value: still one
        catalog = build_catalog([*good_route(), traffic_route(key, value)])
        assert rejected(catalog) == {}, value
        layout = assign_slots(catalog, {}, 4)
        rendered = render_haproxy(catalog, layout, HAProxySettings(config_dir="/etc/bw"))
        assert rendered.refused == ()
        assert MARKER in rendered.config
        assert MARKER not in _outside_quotes(rendered.config), value


def _haproxy() -> str | None:
    import shutil

    return shutil.which("haproxy")


def haproxy_accepts(catalog: Catalog, directory: Any) -> tuple[bool, str]:
    """Render ``catalog`` into ``directory`` (the file and its generation directory)
    and run `haproxy -c` on it."""
    import subprocess

    settings = HAProxySettings(
        config_dir=str(directory),
        stats_socket=str(directory / "admin.sock"),
        http_binds=("127.0.0.1:18080",),
        https_binds=("127.0.0.1:18443",),
    )
    rendered = render_haproxy(catalog, assign_slots(catalog, {}, 4), settings)
    assert rendered.refused == ()
    write_generation(rendered)
    (directory / "haproxy.cfg").write_text(rendered.config)
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(directory / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(_haproxy() is None, reason="needs haproxy")
@pytest.mark.parametrize(("key", "kind"), ALLOWED_CASES)
def test_text_an_option_takes_by_design_is_a_config_haproxy_accepts(
    key: str, kind: str, tmp_path: Any
) -> None:
    value = hostile_values(key, kind)[0]
    catalog = build_catalog([*good_route(), traffic_route(key, value)])
    accepted, output = haproxy_accepts(catalog, tmp_path)
    assert accepted, output


@pytest.mark.skipif(_haproxy() is None, reason="needs haproxy")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("canary-header-value", "}"),
        ("canary-header-value", "{"),
        ("canary-header-value", "a } || { always_true"),
        ("canary-header-value", "%"),
        # A pattern starting with '-' is read as an ACL flag ('-f' names a file).
        ("canary-header-value", "-m"),
        ("canary-header-value", "-f"),
        ("canary-header-value", "-m reg .*"),
        ("rewrite-regex", "}"),
        ("rewrite-regex", "^/a%"),
        ("cors-allow-methods", "GET%"),
        ("cors-allow-headers", "X-%"),
        ("cors-expose-headers", "X-%"),
        ("cors-allow-methods", "GET%H"),
        ("cors-allow-headers", "X-%ci"),
        ("app-root", "/a%25"),
        ("rewrite-target", "/a%25"),
        ("redirect-to", "https://x.example/%25%"),
    ],
)
def test_a_value_the_catalog_accepts_never_makes_haproxy_refuse_the_config(
    key: str, value: str, tmp_path: Any
) -> None:
    """A value that passes validation but that HAProxy refuses fails every reload, for
    every object; one read as a log-format ('%H', '%ci') says what it was not told."""
    catalog = build_catalog([*good_route(), traffic_route(key, value)])
    if "ConfigMap shop/web" in rejected(catalog):
        assert key in rejected(catalog)["ConfigMap shop/web"]
        return
    accepted, output = haproxy_accepts(catalog, tmp_path)
    assert accepted, output
    config = (tmp_path / "haproxy.cfg").read_text()
    if "%" in value and key.startswith("cors-"):
        # hdr and set-header values are log-formats: a '%' of the value is doubled.
        assert value.replace("%", "%%") in config


def test_error_page_bodies_are_files_and_never_reach_haproxy_cfg() -> None:
    bodies = {
        "503": f"<h1>down</h1>\n    http-request return string {MARKER}\n",
        "502": f"<p>'quoted' \"double\" # $HOME %[env({MARKER})] }}</p>",
        "504": f"\x00{MARKER}\r\n\t",
    }
    pages = {**error_pages(), "data": bodies}
    catalog = build_catalog([*good_route(), pages, traffic_route("error-pages", "errors")])
    assert rejected(catalog) == {}
    layout = assign_slots(catalog, {}, 4)
    rendered = render_haproxy(catalog, layout, HAProxySettings(config_dir="/etc/bw"))
    assert rendered.refused == ()
    assert MARKER not in rendered.config
    assert sorted(t for t in rendered.generation_files.values() if MARKER in t) == sorted(
        b for b in bodies.values() if MARKER in b
    )


@pytest.mark.skipif(_haproxy() is None, reason="needs haproxy")
def test_haproxy_takes_error_pages_of_any_text(tmp_path: Any) -> None:
    bodies = {
        "503": f"<h1>down</h1>\n    http-request return string {MARKER}\n",
        "418": f"<p>'quoted' \"double\" # $HOME %[env({MARKER})] }}</p>",
        "504": f"\x00{MARKER}\r\n\t",
    }
    pages = {**error_pages(), "data": bodies}
    catalog = build_catalog([*good_route(), pages, traffic_route("error-pages", "errors")])
    assert rejected(catalog) == {}
    accepted, output = haproxy_accepts(catalog, tmp_path)
    assert accepted, output


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (f"503\n    http-request return string {MARKER}", "x", "is not a status"),
        ("200", "x", "is not a status from 400 to 599"),
        ("5O3", "x", "is not a status"),
        ("503", "x" * (13 * 1024), "larger than 12 KiB"),
    ],
)
def test_an_error_page_configmap_that_is_not_pages_is_a_reason(
    status: str, body: str, reason: str
) -> None:
    pages = {**error_pages(), "data": {status: body}}
    catalog = build_catalog([*good_route(), pages, traffic_route("error-pages", "errors")])
    assert_rejected(catalog, "ConfigMap shop/web", reason)
    assert MARKER not in rendered_text(catalog)


CATASTROPHIC = ["(a+)+$", "(a|aa)*$", "(.*a){20}", ".*.*.*x", "^/(a*)*b", "^/(x+x+)+y"]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_regex_that_backtracks_catastrophically_is_refused(pattern: str) -> None:
    catalog = build_catalog([*good_route(), traffic_route("rewrite-regex", pattern)])
    assert_rejected(catalog, "ConfigMap shop/web", "rewrite-regex")


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_an_ingress_nginx_regex_path_that_backtracks_catastrophically_is_refused(
    pattern: str,
) -> None:
    bad = ingress(
        "shop",
        "bad",
        [("bad.example.com", "/" + pattern.lstrip("^/"), "ImplementationSpecific", "web")],
        annotations={"nginx.ingress.kubernetes.io/use-regex": "true"},
    )
    bad["spec"]["ingressClassName"] = "nginx"
    catalog = build_catalog([*good_route(), bad], CatalogSettings(ingress_nginx_compat=True))
    assert_rejected(catalog, "Ingress shop/bad", "path")


@pytest.mark.parametrize("pattern", ["^/api(/|$)(.*)", "^/v[0-9]+/(.*)$", "^/(a|b)/x", "^/a{1,3}"])
def test_a_regex_of_the_safe_subset_is_taken(pattern: str) -> None:
    catalog = build_catalog([*good_route(), traffic_route("rewrite-regex", pattern)])
    assert rejected(catalog) == {}
