"""ingress-nginx Ingresses in the catalog (catalog.ingress_nginx_compat): which are ours,
regex paths and rewrites, the ssl-redirect default, canary Ingresses, what is ignored,
what wins, and what rejects."""

from __future__ import annotations

from typing import Any

import pytest
from builders import READY, endpoint_slice, ingress, service

from breakwater.catalog import Canary, Catalog, CatalogSettings, build_catalog
from breakwater.catalog.nginx import NGINX_PREFIX, SNIPPET_REASON, UNKNOWN_REASON
from breakwater.catalog.sources import literal_prefix
from breakwater.cluster.index import ClusterIndex

N = NGINX_PREFIX
COMPAT = CatalogSettings(ingress_nginx_compat=True)
OLD, NEW = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def services() -> list[dict[str, Any]]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        service("shop", "canary"),
        endpoint_slice("shop", "canary", [("10.0.0.2", READY)]),
        service("shop", "beta"),
        endpoint_slice("shop", "beta", [("10.0.0.3", READY)]),
    ]


def nginx_ingress(
    name: str,
    rules: list[tuple[str, str, str, str]],
    annotations: dict[str, str] | None = None,
    class_name: str = "nginx",
    **extra: Any,
) -> dict[str, Any]:
    """An Ingress of class ``class_name``; annotations by short name, prefixed."""
    full = {N + key: value for key, value in (annotations or {}).items()}
    obj = ingress("shop", name, rules, annotations=full, **extra)
    obj["spec"]["ingressClassName"] = class_name
    return obj


def main_ingress(**extra: Any) -> dict[str, Any]:
    return nginx_ingress("main", [("www.example.com", "/", "Prefix", "web")], **extra)


def canary_ingress(
    name: str = "main-canary",
    annotations: dict[str, str] | None = None,
    path: str = "/",
    backend: str = "canary",
    **extra: Any,
) -> dict[str, Any]:
    given = {"canary": "true", "canary-weight": "30", **(annotations or {})}
    return nginx_ingress(
        name, [("www.example.com", path, "Prefix", backend)], annotations=given, **extra
    )


def hosts(catalog: Catalog) -> set[str]:
    return {route.host for route in catalog.routes}


def rejected(catalog: Catalog) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


# --- which Ingresses are ours -------------------------------------------------------------


def test_an_nginx_ingress_is_ours_only_with_compat_on() -> None:
    objects = [*services(), main_ingress()]
    assert build_catalog(objects, COMPAT).routes[0].host == "www.example.com"
    off = build_catalog(objects, CatalogSettings())
    assert off.routes == [] and off.rejected == [] and off.ignored == []
    assert off.backends == {}


def test_the_legacy_class_annotation_names_nginx_too() -> None:
    legacy = main_ingress()
    del legacy["spec"]["ingressClassName"]
    legacy["metadata"]["annotations"]["kubernetes.io/ingress.class"] = "nginx"
    assert hosts(build_catalog([*services(), legacy], COMPAT)) == {"www.example.com"}
    assert hosts(build_catalog([*services(), legacy], CatalogSettings())) == set()


def test_the_classes_are_the_configured_ones() -> None:
    settings = CatalogSettings(
        ingress_nginx_compat=True, ingress_nginx_classes=("nginx-public", "nginx-internal")
    )
    objects = [
        *services(),
        nginx_ingress("a", [("a.example.com", "/", "Prefix", "web")], class_name="nginx-public"),
        nginx_ingress("b", [("b.example.com", "/", "Prefix", "web")], class_name="nginx-internal"),
        nginx_ingress("c", [("c.example.com", "/", "Prefix", "web")], class_name="nginx"),
        nginx_ingress("d", [("d.example.com", "/", "Prefix", "web")], class_name="traefik"),
    ]
    catalog = build_catalog(objects, settings)
    assert hosts(catalog) == {"a.example.com", "b.example.com"}
    assert catalog.rejected == []


def test_breakwater_s_own_class_still_works_with_compat_on() -> None:
    own = nginx_ingress(
        "own",
        [("own.example.com", "/", "Prefix", "web")],
        annotations={"proxy-body-size": "8m"},
        class_name="breakwater",
    )
    catalog = build_catalog([*services(), own, main_ingress()], COMPAT)
    assert hosts(catalog) == {"own.example.com", "www.example.com"}
    assert catalog.rejected == []
    own_route = next(r for r in catalog.routes if r.host == "own.example.com")
    # Its nginx annotations are not translated: it is not an ingress-nginx Ingress.
    assert catalog.backends[own_route.backend].options.features is None


# --- regex paths and rewrites ------------------------------------------------------------


def test_the_documented_rewrite_example() -> None:
    # https://kubernetes.github.io/ingress-nginx/examples/rewrite/
    rewrite = nginx_ingress(
        "rewrite",
        [("rewrite.bar.com", "/something(/|$)(.*)", "ImplementationSpecific", "web")],
        annotations={"use-regex": "true", "rewrite-target": "/$2"},
    )
    catalog = build_catalog([*services(), rewrite], COMPAT)
    assert catalog.rejected == []
    (route,) = catalog.routes
    assert (route.host, route.path, route.match) == ("rewrite.bar.com", "/something", "prefix")
    features = catalog.backends[route.backend].options.features
    assert features is not None
    assert features.rewrite == (("(?i)^/something(/|$)(.*)", "/\\2"),)
    assert route.backend.startswith("be_shop_web_http_f")


def test_rewrite_target_alone_makes_the_paths_regexes() -> None:
    rewrite = nginx_ingress(
        "rewrite",
        [("rewrite.bar.com", "/something(/|$)(.*)", "ImplementationSpecific", "web")],
        annotations={"rewrite-target": "/$2"},
    )
    catalog = build_catalog([*services(), rewrite], COMPAT)
    assert catalog.rejected == []
    assert [r.path for r in catalog.routes] == ["/something"]


def test_several_regex_paths_are_rewritten_longest_first() -> None:
    paths = ["/a(/|$)(.*)", "/abc/def(/|$)(.*)", "/ab(/|$)(.*)"]
    rewrite = nginx_ingress(
        "rewrite",
        [("r.example.com", path, "ImplementationSpecific", "web") for path in paths],
        annotations={"rewrite-target": "/$2"},
    )
    catalog = build_catalog([*services(), rewrite], COMPAT)
    assert catalog.rejected == []
    assert sorted(r.path for r in catalog.routes) == ["/a", "/ab", "/abc/def"]
    (backend,) = {r.backend for r in catalog.routes}
    features = catalog.backends[backend].options.features
    assert features is not None
    assert features.rewrite == (
        ("(?i)^/abc/def(/|$)(.*)", "/\\2"),
        ("(?i)^/ab(/|$)(.*)", "/\\2"),
        ("(?i)^/a(/|$)(.*)", "/\\2"),
    )


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/api/v[0-9]+/x", "/api"),
        ("/foo.bar", "/"),
        ("/.*", "/"),
        ("/something(/|$)(.*)", "/something"),
        ("/static/", "/static"),
        ("/static", "/static"),
        ("/", "/"),
        ("/a/b$", "/a/b"),
        ("/users/[0-9]+", "/users"),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix


def test_a_regex_path_routes_by_its_literal_prefix() -> None:
    regex = nginx_ingress(
        "regex",
        [("r.example.com", "/api/v[0-9]+/x", "ImplementationSpecific", "web")],
        annotations={"use-regex": "true"},
    )
    catalog = build_catalog([*services(), regex], COMPAT)
    assert catalog.rejected == []
    assert [(r.path, r.match) for r in catalog.routes] == [("/api", "prefix")]


@pytest.mark.parametrize("path", ["/(a+)+$", "/(a|aa)*$", "/(.*a){20}", "/.*.*.*x", "/(a"])
def test_a_regex_path_outside_the_safe_subset_rejects_the_ingress(path: str) -> None:
    regex = nginx_ingress(
        "regex",
        [("r.example.com", path, "ImplementationSpecific", "web")],
        annotations={"use-regex": "true"},
    )
    catalog = build_catalog([*services(), regex, main_ingress()], COMPAT)
    assert "Ingress shop/regex" in rejected(catalog)
    assert "path" in rejected(catalog)["Ingress shop/regex"]
    assert hosts(catalog) == {"www.example.com"}


# --- ssl-redirect ----------------------------------------------------------------------


def _two_hosts(annotations: dict[str, str], class_name: str = "nginx") -> dict[str, bool]:
    obj = nginx_ingress(
        "web",
        [("a.example.com", "/", "Prefix", "web"), ("b.example.com", "/", "Prefix", "web")],
        annotations=annotations,
        class_name=class_name,
        tls=[{"hosts": ["a.example.com"]}],
    )
    catalog = build_catalog([*services(), obj], COMPAT)
    assert catalog.rejected == []
    return {route.host: route.https_redirect for route in catalog.routes}


def test_ssl_redirect_defaults_to_the_hosts_with_tls() -> None:
    assert _two_hosts({}) == {"a.example.com": True, "b.example.com": False}


def test_ssl_redirect_true_is_the_default() -> None:
    # ingress-nginx: ssl-redirect redirects only hosts with a certificate;
    # force-ssl-redirect the others too.
    assert _two_hosts({"ssl-redirect": "true"}) == {"a.example.com": True, "b.example.com": False}


def test_force_ssl_redirect_false_keeps_the_default() -> None:
    # force-ssl-redirect: "false" only does not force; ssl-redirect still applies.
    assert _two_hosts({"force-ssl-redirect": "false"}) == {
        "a.example.com": True,
        "b.example.com": False,
    }


def test_ssl_redirect_false_redirects_nothing() -> None:
    assert _two_hosts({"ssl-redirect": "false"}) == {"a.example.com": False, "b.example.com": False}


def test_force_ssl_redirect_redirects_every_host() -> None:
    assert _two_hosts({"force-ssl-redirect": "true"}) == {
        "a.example.com": True,
        "b.example.com": True,
    }


def test_a_breakwater_ingress_gets_no_default_redirect() -> None:
    assert _two_hosts({}, class_name="breakwater") == {
        "a.example.com": False,
        "b.example.com": False,
    }


# --- canary Ingresses --------------------------------------------------------------------


def test_a_canary_ingress_joins_the_main_routes() -> None:
    canary = canary_ingress(annotations={"canary-by-header": "X-Canary"})
    catalog = build_catalog([*services(), main_ingress(), canary], COMPAT)
    assert catalog.rejected == []
    (route,) = catalog.routes
    assert route.source == "Ingress shop/main"
    assert route.backend == "be_shop_web_http"
    assert route.canary == Canary("be_shop_canary_http", 30, "x-canary", None, None)
    assert route.backends == ("be_shop_web_http", "be_shop_canary_http")
    assert catalog.backends["be_shop_canary_http"].servers[0].address == "10.0.0.2"


def test_a_canary_by_header_value_and_cookie() -> None:
    canary = canary_ingress(
        annotations={
            "canary-weight": "10",
            "canary-by-header": "X-Canary",
            "canary-by-header-value": "beta",
            "canary-by-cookie": "canary",
        }
    )
    catalog = build_catalog([*services(), main_ingress(), canary], COMPAT)
    assert catalog.rejected == []
    assert catalog.routes[0].canary == Canary(
        "be_shop_canary_http", 10, "x-canary", "beta", "canary"
    )


def test_a_canary_of_regex_paths_joins_their_routes() -> None:
    path = "/something(/|$)(.*)"
    main = nginx_ingress(
        "main",
        [("www.example.com", path, "ImplementationSpecific", "web")],
        annotations={"rewrite-target": "/$2"},
    )
    canary = canary_ingress(path=path)
    canary["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "ImplementationSpecific"
    catalog = build_catalog([*services(), main, canary], COMPAT)
    assert catalog.rejected == []
    (route,) = catalog.routes
    assert route.path == "/something"
    assert route.canary is not None and route.canary.backend == "be_shop_canary_http"


def test_a_canary_without_a_main_route_is_rejected_naming_the_path() -> None:
    canary = canary_ingress(path="/nope")
    catalog = build_catalog([*services(), main_ingress(), canary], COMPAT)
    assert rejected(catalog) == {
        "Ingress shop/main-canary": "canary of www.example.com/nope (prefix): no route to it"
    }
    assert catalog.routes[0].canary is None
    assert "be_shop_canary_http" not in catalog.backends


def test_a_second_canary_of_a_route_is_rejected() -> None:
    first = canary_ingress("first", created=OLD)
    second = canary_ingress("second", {"canary-weight": "50"}, backend="beta", created=NEW)
    catalog = build_catalog([*services(), main_ingress(), second, first], COMPAT)
    assert rejected(catalog) == {
        "Ingress shop/second": "www.example.com/ (prefix) already has a canary"
    }
    assert catalog.routes[0].canary == Canary("be_shop_canary_http", 30)


def test_a_canary_older_than_its_main_ingress_still_joins() -> None:
    canary = canary_ingress(created=OLD)
    main = main_ingress(created=NEW)
    catalog = build_catalog([*services(), canary, main], COMPAT)
    assert catalog.rejected == []
    assert catalog.routes[0].canary == Canary("be_shop_canary_http", 30)
    assert catalog.routes[0].source == "Ingress shop/main"


def test_a_canary_takes_no_route_of_its_own() -> None:
    canary = canary_ingress()
    catalog = build_catalog([*services(), canary, main_ingress()], COMPAT)
    assert [r.source for r in catalog.routes] == ["Ingress shop/main"]


def test_incremental_builds_with_canaries_equal_fresh_builds() -> None:
    """Adding, changing and removing a canary Ingress and its main Ingress, one change
    at a time: each catalog built from the one before equals a fresh build."""
    index = ClusterIndex()
    objects: dict[str, dict[str, Any]] = {}

    def put(obj: dict[str, Any]) -> None:
        old = objects.pop(obj["metadata"]["name"], None)
        if old is not None:
            index.discard(old)
        objects[obj["metadata"]["name"]] = obj
        index.add(obj)

    def remove(name: str) -> None:
        index.discard(objects.pop(name))

    for obj in services():
        put(obj)
    put(main_ingress(created=NEW))
    previous = build_catalog(index, COMPAT)
    index.settle()
    steps: list[tuple[str, Any]] = [
        ("add the canary", lambda: put(canary_ingress(created=NEW))),
        ("change the main", lambda: put(main_ingress(created=NEW, annotations={"limit-rps": "9"}))),
        ("change the canary", lambda: put(canary_ingress(annotations={"canary-weight": "60"}))),
        ("another route", lambda: put(nginx_ingress("x", [("x.example", "/", "Prefix", "web")]))),
        ("remove the main", lambda: remove("main")),
        ("the main back", lambda: put(main_ingress(created=NEW))),
        ("remove the canary", lambda: remove("main-canary")),
        ("an older canary", lambda: put(canary_ingress(created=OLD))),
    ]
    replayed = 0
    for step, change in steps:
        change()
        catalog = build_catalog(index, COMPAT, reuse=previous)
        index.settle()
        expected = build_catalog(list(objects.values()), COMPAT)
        assert catalog == expected, step
        key = ("Ingress", ("shop", "main-canary"))
        replayed += key in catalog.traces and previous.traces.get(key) is catalog.traces[key]
        www = [r for r in catalog.routes if r.host == "www.example.com"]
        if "main" in objects:
            assert [r.canary is not None for r in www] == ["main-canary" in objects], step
        else:
            assert www == [], step
            assert ("Ingress shop/main-canary" in rejected(catalog)) == (
                "main-canary" in objects
            ), step
        previous = catalog
    assert replayed >= 2  # the canary's claim was replayed, not only built afresh


# --- ignored annotations -------------------------------------------------------------------


def test_snippets_and_unknown_annotations_are_ignored_by_name_and_the_ingress_serves() -> None:
    main = main_ingress(
        annotations={
            "configuration-snippet": "more_set_headers 'X: pwned';",
            "server-snippet": "location /x { return 200; }",
            "no-such-annotation": "x",
            "proxy-body-size": "8m",
        }
    )
    catalog = build_catalog([*services(), main], COMPAT)
    assert catalog.rejected == []
    assert hosts(catalog) == {"www.example.com"}
    ignored = {(r.object, r.reason) for r in catalog.ignored}
    assert ignored == {
        (
            "Ingress shop/main",
            f"annotation {N}configuration-snippet ignored: {SNIPPET_REASON}",
        ),
        ("Ingress shop/main", f"annotation {N}server-snippet ignored: {SNIPPET_REASON}"),
        ("Ingress shop/main", f"annotation {N}no-such-annotation ignored: {UNKNOWN_REASON}"),
    }
    assert catalog.ignored == sorted(catalog.ignored, key=lambda r: (r.object, r.reason))
    as_dict = catalog.as_dict()
    assert {
        "object": "Ingress shop/main",
        "reason": f"annotation {N}no-such-annotation ignored: {UNKNOWN_REASON}",
    } in as_dict["ignored"]
    assert len(as_dict["ignored"]) == 3
    (route,) = catalog.routes
    features = catalog.backends[route.backend].options.features
    assert features is not None and features.max_body_size == 8 * 1024 * 1024


def test_a_breakwater_ingress_reports_nothing_ignored() -> None:
    own = main_ingress(class_name="breakwater", annotations={"configuration-snippet": "x"})
    catalog = build_catalog([*services(), own], COMPAT)
    assert catalog.ignored == [] and catalog.rejected == []


# --- breakwater.io/ annotations win --------------------------------------------------------


def test_breakwater_annotations_win_over_translated_ones() -> None:
    main = main_ingress(annotations={"proxy-body-size": "8m", "limit-rps": "5"})
    main["metadata"]["annotations"]["breakwater.io/max-body-size"] = "1m"
    main["metadata"]["annotations"]["breakwater.io/rate-limit-rps"] = "50"
    catalog = build_catalog([*services(), main], COMPAT)
    assert catalog.rejected == []
    (route,) = catalog.routes
    features = catalog.backends[route.backend].options.features
    assert features is not None
    assert (features.max_body_size, features.rate_limit_rps) == (1024 * 1024, 50)


def test_a_breakwater_annotation_wins_over_ssl_redirect_s_default() -> None:
    obj = main_ingress(tls=[{"hosts": ["www.example.com"]}])
    obj["metadata"]["annotations"]["breakwater.io/https-redirect"] = "false"
    catalog = build_catalog([*services(), obj], COMPAT)
    assert [r.https_redirect for r in catalog.routes] == [False]


# --- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("limit-rps", "-1"),
        ("whitelist-source-range", "10.0.0.0/33"),
        ("permanent-redirect", "javascript:alert(1)"),
        ("proxy-body-size", "12x"),
        ("rewrite-target", "javascript:alert(1)"),
    ],
)
def test_a_bad_nginx_value_rejects_the_ingress_naming_the_annotation(
    annotation: str, value: str
) -> None:
    bad = nginx_ingress(
        "bad", [("bad.example.com", "/", "Prefix", "web")], annotations={annotation: value}
    )
    catalog = build_catalog([*services(), bad, main_ingress()], COMPAT)
    assert list(rejected(catalog)) == ["Ingress shop/bad"]
    assert f"annotation {N}{annotation}" in rejected(catalog)["Ingress shop/bad"]
    assert hosts(catalog) == {"www.example.com"}
