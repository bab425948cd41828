"""The catalog: routes, servers, TLS, conflicts, and hostile input rejected alone."""

from __future__ import annotations

import pytest
from builders import (
    READY,
    endpoint_slice,
    ingress,
    node,
    route_configmap,
    service,
    tls_secret,
)

from breakwater.catalog import CachePolicy, CatalogSettings, Server, build_catalog
from breakwater.render.haproxy import render_haproxy, route_maps
from breakwater.render.slots import assign_slots
from breakwater.targets.settings import HAProxySettings


def web_cluster() -> list[dict]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY), ("10.0.0.2", READY)]),
    ]


def rejected(catalog) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


def test_ingress_route_and_servers() -> None:
    catalog = build_catalog(
        [*web_cluster(), ingress("shop", "web", [("www.example.com", "/", "Prefix", "web")])]
    )
    assert [(r.host, r.path, r.match, r.backend) for r in catalog.routes] == [
        ("www.example.com", "/", "prefix", "be_shop_web_http")
    ]
    backend = catalog.backends["be_shop_web_http"]
    assert backend.servers == (Server("10.0.0.1", 8080, "ready"), Server("10.0.0.2", 8080, "ready"))
    assert catalog.rejected == []


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ({"ready": True, "serving": True, "terminating": False}, "ready"),
        ({}, "ready"),  # nil conditions mean ready
        ({"ready": False, "serving": True, "terminating": True}, "drain"),
        ({"ready": False, "serving": False, "terminating": True}, None),
        ({"ready": False, "serving": False, "terminating": False}, None),
    ],
)
def test_endpoint_conditions(conditions: dict, state: str | None) -> None:
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.9", conditions)]),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    servers = build_catalog(objects).backends["be_shop_web_http"].servers
    assert [s.state for s in servers] == ([state] if state else [])


def test_endpoints_are_the_fallback_without_slices() -> None:
    endpoints = {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [
            {
                "addresses": [{"ip": "10.1.0.1"}],
                "notReadyAddresses": [{"ip": "10.1.0.2"}],
                "ports": [{"name": "http", "port": 9000}],
            }
        ],
    }
    objects = [
        service("shop", "web"),
        endpoints,
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    assert build_catalog(objects).backends["be_shop_web_http"].servers == (
        Server("10.1.0.1", 9000, "ready"),
    )


def test_nodeport_mode_targets_ready_nodes() -> None:
    objects = [
        service("shop", "web", node_port=30080),
        node("n1", "192.168.1.1"),
        node("n2", "192.168.1.2", ready=False),
        node("n3", "192.168.1.3", unschedulable=True),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    catalog = build_catalog(objects, CatalogSettings(mode="nodeport"))
    assert catalog.backends["be_shop_web_http"].servers == (
        Server("192.168.1.1", 30080, "ready"),
        Server("192.168.1.3", 30080, "drain"),
    )


def test_nodeport_mode_rejects_a_clusterip_service() -> None:
    objects = [
        service("shop", "web"),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    catalog = build_catalog(objects, CatalogSettings(mode="nodeport"))
    assert "nodePort" in rejected(catalog)["Ingress shop/web"]


def test_other_ingress_classes_are_ignored() -> None:
    other = ingress("shop", "other", [("a.example.com", "/", "Prefix", "web")])
    other["spec"]["ingressClassName"] = "nginx"
    assert build_catalog([*web_cluster(), other]).routes == []


def test_path_types() -> None:
    rules = [
        ("a.example.com", "/exact", "Exact", "web"),
        ("a.example.com", "/api/", "Prefix", "web"),
        ("a.example.com", "/impl", "ImplementationSpecific", "web"),
    ]
    routes = build_catalog([*web_cluster(), ingress("shop", "web", rules)]).routes
    assert {(r.path, r.match) for r in routes} == {
        ("/exact", "exact"),
        ("/api", "prefix"),
        ("/impl", "prefix"),
    }
    exact_map, prefix_map = route_maps(routes)
    assert "a.example.com/exact be_shop_web_http;-;-;-;-\n" in exact_map
    assert "a.example.com/api be_shop_web_http;-;-;-;-\n" in exact_map  # "/api" itself
    assert "a.example.com/api/ be_shop_web_http;-;-;-;-\n" in prefix_map  # but not "/apiary"
    assert "a.example.com/exact/" not in prefix_map


def test_conflicting_route_goes_to_the_older_object() -> None:
    older = ingress(
        "shop", "older", [("a.example.com", "/", "Prefix", "web")], created="2025-01-01T00:00:00Z"
    )
    newer = ingress(
        "shop", "newer", [("a.example.com", "/", "Prefix", "web")], created="2026-06-01T00:00:00Z"
    )
    catalog = build_catalog([*web_cluster(), newer, older])
    assert [r.source for r in catalog.routes] == ["Ingress shop/older"]
    assert "already routed by Ingress shop/older" in rejected(catalog)["Ingress shop/newer"]


def test_configmap_routes_and_options() -> None:
    configmap = route_configmap(
        "shop",
        "web",
        {
            "hosts": "shop.example.com, www.shop.example.com",
            "paths": "/ /static",
            "exact-paths": "/healthz",
            "balance": "leastconn",
            "health-check-path": "/ready",
            "timeout-server": "45s",
            "https-redirect": "true",
            "cache": "yes",
        },
    )
    catalog = build_catalog([*web_cluster(), configmap])
    assert len(catalog.routes) == 6
    assert all(r.https_redirect and r.cache for r in catalog.routes)
    options = catalog.backends["be_shop_web_http"].options
    assert (options.balance, options.health_check_path, options.timeout_server) == (
        "leastconn",
        "/ready",
        "45s",
    )


def test_configmap_without_the_label_is_ignored() -> None:
    configmap = route_configmap("shop", "web", {"hosts": "shop.example.com"})
    configmap["metadata"]["labels"] = {}
    assert build_catalog([*web_cluster(), configmap]).routes == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"hosts": "a.example.com", "colour": "blue"}, "unknown key 'colour'"),
        ({}, "'hosts' is required"),
        ({"hosts": "a.example.com", "balance": "roundrobin\n    server x 1.2.3.4:80"}, "balance"),
        ({"hosts": "a.example.com", "timeout-server": "5s # comment"}, "timeout-server"),
        ({"hosts": "a.example.com", "cache": "maybe"}, "cache"),
        ({"hosts": "a.example.com", "port": "http\nfoo"}, "port"),
        ({"hosts": "a.example.com", "service": "Web Service"}, "service name"),
        ({"hosts": "a.example.com", "health-check-path": "/x HTTP/1.1\\r\\nHost: evil"}, "path"),
    ],
)
def test_bad_configmap_is_rejected_with_its_reason(data: dict, reason: str) -> None:
    catalog = build_catalog([*web_cluster(), route_configmap("shop", "web", data)])
    assert reason in rejected(catalog)["ConfigMap shop/web"]
    assert catalog.routes == []


HOSTILE_HOSTS = [
    "a.example.com\n    use_backend evil",
    "a.example.com evil",
    "a.example.com#",
    'a.example.com"',
    "a.example.com'",
    "a.example.com\\",
    "a.example.com\x00",
    "a.example.com\x1b[31m",
    "a.example.com\r",
    ("a" * 64) + ".example.com",
    ".".join(["abcdefgh"] * 40),
    "*.*.example.com",
    "exa_mple.com",
]
HOSTILE_PATHS = [
    "/x\n    use_backend evil",
    "/x y",
    "/x#frag",
    '/x"',
    "/x\\y",
    "/x\x00",
    "/x\t",
    "/x?q=1",
    "/" + "a" * 1024,
    "relative",
    "/%zz",
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS, ids=repr)
def test_hostile_host_is_rejected_and_others_keep_working(host: str) -> None:
    good = ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")])
    bad = ingress("shop", "bad", [(host, "/", "Prefix", "web")])
    catalog = build_catalog([*web_cluster(), good, bad])
    assert [r.host for r in catalog.routes] == ["good.example.com"]
    assert "hostname" in rejected(catalog)["Ingress shop/bad"]
    assert_no_injection(catalog, host)


@pytest.mark.parametrize("path", HOSTILE_PATHS, ids=repr)
def test_hostile_path_is_rejected_and_others_keep_working(path: str) -> None:
    good = ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")])
    bad = ingress("shop", "bad", [("bad.example.com", path, "Prefix", "web")])
    catalog = build_catalog([*web_cluster(), good, bad])
    assert [r.host for r in catalog.routes] == ["good.example.com"]
    assert "path" in rejected(catalog)["Ingress shop/bad"]
    assert_no_injection(catalog, path)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1\n    server x 6.6.6.6:80",
        "10.0.0.300",
        "evil.example.com",
        "10.0.0.1 backup",
        "fe80::1%x;disable frontend bw_public",
        "fe80::1%eth0",
        "2001:db8::1",  # IPv6 in an IPv4 slice
        "127.0.0.1",  # loopback: Kubernetes refuses it for endpoints
        "169.254.169.254",  # link-local: the cloud's metadata service
        "0.0.0.0",
    ],
)
def test_hostile_endpoint_slice_is_rejected_by_name_and_the_others_serve(address: str) -> None:
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)], suffix="a"),
        endpoint_slice("shop", "web", [("10.0.0.2", READY), (address, READY)], suffix="b"),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    catalog = build_catalog(objects)
    assert catalog.backends["be_shop_web_http"].servers == (Server("10.0.0.1", 8080, "ready"),)
    assert "address" in rejected(catalog)["EndpointSlice shop/web-b"]
    assert [r.host for r in catalog.routes] == ["a.example.com"]
    assert_no_injection(catalog, address if address != "127.0.0.1" else "127.0.0.1:8080")


def test_special_addresses_can_be_allowed_for_single_machine_setups() -> None:
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("127.0.0.11", READY)]),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    settings = CatalogSettings(allow_special_addresses=True)
    catalog = build_catalog(objects, settings)
    assert catalog.backends["be_shop_web_http"].servers == (Server("127.0.0.11", 8080, "ready"),)
    assert catalog.rejected == []


@pytest.mark.parametrize("annotation", ["breakwater.io/balance", "breakwater.io/timeout-connect"])
def test_hostile_annotation_is_rejected(annotation: str) -> None:
    bad = ingress(
        "shop",
        "bad",
        [("bad.example.com", "/", "Prefix", "web")],
        annotations={annotation: "1s\n    mode tcp"},
    )
    catalog = build_catalog([*web_cluster(), bad])
    assert catalog.routes == []
    assert "Ingress shop/bad" in rejected(catalog)


def assert_no_injection(catalog, hostile: str) -> None:
    layout = assign_slots(catalog, {}, 4)
    rendered = render_haproxy(catalog, layout, HAProxySettings(config_dir="/etc/bw"))
    texts = [rendered.config, *rendered.generation_files.values()]
    assert not any(hostile in text for text in texts)
    for text in rendered.generation_files.values():
        for line in text.splitlines():
            assert len(line.split()) <= 2 and line.isprintable()


def test_tls_secret_becomes_a_certificate() -> None:
    objects = [
        *web_cluster(),
        tls_secret("shop", "www-tls"),
        ingress(
            "shop",
            "web",
            [("www.example.com", "/", "Prefix", "web")],
            tls=[{"hosts": ["www.example.com"], "secretName": "www-tls"}],
        ),
    ]
    catalog = build_catalog(objects)
    assert list(catalog.certificates) and catalog.rejected == []
    certificate = next(iter(catalog.certificates.values()))
    assert "BEGIN CERTIFICATE" in certificate.pem and "PRIVATE KEY" in certificate.pem


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        ([], "does not exist"),
        ([tls_secret("shop", "www-tls", cert="www", key="other")], "does not match the cert"),
    ],
)
def test_missing_or_invalid_tls_secret_keeps_the_route(secrets: list, reason: str) -> None:
    objects = [
        *web_cluster(),
        *secrets,
        ingress(
            "shop",
            "web",
            [("www.example.com", "/", "Prefix", "web")],
            tls=[{"hosts": ["www.example.com"], "secretName": "www-tls"}],
        ),
    ]
    catalog = build_catalog(objects)
    assert [r.host for r in catalog.routes] == ["www.example.com"]  # served over HTTP
    assert catalog.certificates == {}
    assert reason in rejected(catalog)["Ingress shop/web"]


def test_default_backend() -> None:
    objects = [*web_cluster(), ingress("shop", "web", [], default="web")]
    assert build_catalog(objects).default_backend == "be_shop_web_http"


def test_missing_service_is_a_reason() -> None:
    catalog = build_catalog([ingress("shop", "web", [("a.example.com", "/", "Prefix", "ghost")])])
    assert "service shop/ghost does not exist" in rejected(catalog)["Ingress shop/web"]


def test_cache_policy_and_bypass_paths() -> None:
    configmap = route_configmap(
        "shop",
        "web",
        {
            "hosts": "shop.example.com",
            "paths": "/",
            "cache": "true",
            "cache-ttl": "5m",
            "cache-grace": "30",
            "cache-strip-cookies": "true",
            "cache-bypass-paths": "/account /cart/",
        },
    )
    catalog = build_catalog([*web_cluster(), configmap])
    routes = {r.path: r for r in catalog.routes}
    assert set(routes) == {"/", "/account", "/cart"}
    assert routes["/"].cache == CachePolicy(ttl=300, grace=30, strip_cookies=True)
    assert routes["/account"].cache is None and routes["/cart"].cache is None
    _, prefix_map = route_maps(catalog.routes)
    assert "shop.example.com/ be_shop_web_http;c;300;30;strip\n" in prefix_map
    assert "shop.example.com/account/ be_shop_web_http;-;-;-;-\n" in prefix_map


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"cache-ttl": "60"}, "cache-ttl is set but cache is not true"),
        ({"cache": "true", "cache-ttl": "1 hour"}, "cache-ttl"),
        ({"cache": "true", "cache-grace": "-1"}, "cache-grace"),
        ({"cache": "true", "paths": "/shop", "cache-bypass-paths": "/other"}, "not under"),
    ],
)
def test_bad_cache_settings_are_rejected(data: dict, reason: str) -> None:
    configmap = route_configmap("shop", "web", {"hosts": "a.example.com", **data})
    catalog = build_catalog([*web_cluster(), configmap])
    assert reason in rejected(catalog)["ConfigMap shop/web"]


def test_cache_annotations_on_an_ingress() -> None:
    annotations = {"breakwater.io/cache": "true", "breakwater.io/cache-ttl": "1h"}
    bad = ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")], annotations=annotations)
    (route,) = build_catalog([*web_cluster(), bad]).routes
    assert route.cache == CachePolicy(ttl=3600)


def plain_route(name: str, **spec: object) -> dict:
    return {
        "kind": "BreakwaterRoute",
        "apiVersion": "breakwater.io/v1",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_plain_route_outside_kubernetes() -> None:
    route = plain_route(
        "billing",
        hosts=["billing.example.com"],
        paths=["/", "/api/"],
        servers=[
            {"address": "10.9.0.1", "port": 8080},
            {"address": "10.9.0.2", "port": 8080, "state": "drain"},
        ],
        balance="leastconn",
        cache=True,
        **{"cache-ttl": "1m", "https-redirect": True},
    )
    catalog = build_catalog([route])
    assert {(r.host, r.path) for r in catalog.routes} == {
        ("billing.example.com", "/"),
        ("billing.example.com", "/api"),
    }
    backend = catalog.backends["be_route_billing"]
    assert backend.options.balance == "leastconn"
    assert backend.servers == (Server("10.9.0.1", 8080, "ready"), Server("10.9.0.2", 8080, "drain"))
    assert all(r.cache == CachePolicy(ttl=60) and r.https_redirect for r in catalog.routes)


def test_kubernetes_keeps_a_host_a_plain_route_also_wants() -> None:
    k8s = ingress(
        "shop",
        "web",
        [("shared.example.com", "/", "Prefix", "web")],
        created="2027-01-01T00:00:00Z",
    )
    plain = plain_route(
        "shared", hosts=["shared.example.com"], servers=[{"address": "10.9.0.1", "port": 80}]
    )
    catalog = build_catalog([*web_cluster(), plain, k8s])
    assert [r.source for r in catalog.routes] == ["Ingress shop/web"]
    assert "already routed by Ingress shop/web" in rejected(catalog)["BreakwaterRoute shared"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"hosts": ["a.example.com"]}, "'servers' is required"),
        (
            {
                "hosts": ["a.example.com"],
                "servers": [{"address": "10.0.0.1", "port": 80, "weight": 3}],
            },
            "each server",
        ),
        (
            {"hosts": ["a.example.com"], "servers": [{"address": "10.0.0.1\\n", "port": 80}]},
            "address",
        ),
        ({"hosts": "a.example.com", "servers": []}, "list of strings"),
        (
            {"hosts": ["a.example.com"], "paths": ["/a/../admin"], "servers": []},
            "paths '/a/../admin' must not contain '/../'",
        ),
        (
            {"hosts": ["10.0.0.1"], "servers": []},
            "hostname '10.0.0.1' is an IP address",
        ),
        ({"hosts": ["a.example.com"], "servers": [], "colour": "blue"}, "unknown key 'colour'"),
        (
            {"hosts": ["a.example.com"], "servers": [], "tls": {"certificate": "x", "key": "y"}},
            "tls",
        ),
    ],
)
def test_bad_plain_route_is_rejected(spec: dict, reason: str) -> None:
    catalog = build_catalog([*web_cluster(), plain_route("bad", **spec)])
    assert reason in rejected(catalog)["BreakwaterRoute bad"]


def test_plain_route_list_items_are_single_values() -> None:
    catalog = build_catalog([plain_route("bad", hosts=["a.example.com b.example.com"], servers=[])])
    assert "is not one value" in rejected(catalog)["BreakwaterRoute bad"]
