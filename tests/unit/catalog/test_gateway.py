"""The Gateway API in the catalog: which objects are ours, how HTTPRoutes attach, the
spec's precedence between matches, weights, filters, ReferenceGrants, the status
conditions reported, and how a host and path served by both an Ingress and an
HTTPRoute is decided.  Requests through a real HAProxy: tests/integration/test_gateway_api.py."""

from __future__ import annotations

from typing import Any

import pytest
from builders import (
    READY,
    endpoint_slice,
    gateway,
    gateway_class,
    http_route,
    ingress,
    reference_grant,
    rule,
    service,
)

from breakwater.catalog import Catalog, CatalogSettings, Route, build_catalog
from breakwater.catalog.gateway import NO_ROUTE, STATUS_500, intersect


def services(*names: str, namespace: str = "web") -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for number, name in enumerate(names, 1):
        objects.append(service(namespace, name))
        objects.append(endpoint_slice(namespace, name, [(f"10.0.0.{number}", READY)]))
    return objects


BASE = [gateway_class(), gateway("infra", "gw"), *services("v1", "v2", "v3")]


def routes_of(catalog: Catalog) -> dict[tuple[str, str, str], Route]:
    return {(r.host, r.path, r.match): r for r in catalog.routes}


def parent_conditions(catalog: Catalog, route: str) -> dict[str, tuple[str, str]]:
    parents = catalog.gateway["httproutes"][route]["parents"]
    return {c["type"]: (c["status"], c["reason"]) for p in parents for c in p["conditions"]}


def test_a_plain_httproute_is_a_map_route_like_an_ingress_path() -> None:
    route = http_route("web", "r", [rule(("v1", 80), path="/shop")], ["example.com"])
    catalog = build_catalog([*BASE, route])
    found = routes_of(catalog)[("example.com", "/shop", "prefix")]
    assert (found.backend, found.chain, found.split) == ("be_web_v1_http", (), None)
    assert found.source == "HTTPRoute web/r"
    assert catalog.rejected == []
    assert parent_conditions(catalog, "web/r") == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    listener = catalog.gateway["gateways"]["infra/gw"]["listeners"]["http"]
    assert listener["attachedRoutes"] == 1
    assert {c["type"]: c["status"] for c in listener["conditions"]} == {
        "Accepted": "True",
        "ResolvedRefs": "True",
        "Programmed": "True",
    }


def test_only_gateways_of_a_class_with_our_controller_name_are_served() -> None:
    theirs = [
        gateway_class("other", "example.com/other"),
        gateway("infra", "gw", class_name="other"),
    ]
    route = http_route("web", "r", [rule(("v1", 80))], ["example.com"])
    assert build_catalog([*theirs, *services("v1"), route]).routes == []
    settings = CatalogSettings(gateway_controller_name="example.com/other")
    assert build_catalog([*theirs, *services("v1"), route], settings).routes != []
    off = CatalogSettings(gateway_api=False)
    assert build_catalog([*BASE, route], off).routes == []


def test_a_header_match_is_tried_before_the_routes_without_conditions() -> None:
    route = http_route(
        "web",
        "r",
        [
            rule(("v1", 80), path="/"),
            rule(("v2", 80), path="/", headers=[{"name": "Version", "value": "two"}]),
        ],
        ["example.com"],
    )
    found = routes_of(build_catalog([*BASE, route]))[("example.com", "/", "prefix")]
    assert found.backend == "be_web_v1_http"  # what is left when no condition holds
    [(conditions, alternative)] = found.chain
    assert conditions.headers == (("version", "exact", "two"),)
    assert alternative.backend == "be_web_v2_http"


def test_precedence_follows_the_spec_method_then_headers_then_query() -> None:
    route = http_route(
        "web",
        "r",
        [
            rule(("v1", 80), path="/", queryParams=[{"name": "a", "value": "1"}]),
            rule(("v2", 80), path="/", headers=[{"name": "a", "value": "1"}]),
            rule(("v3", 80), path="/", method="POST"),
        ],
        ["example.com"],
    )
    found = routes_of(build_catalog([*BASE, route]))[("example.com", "/", "prefix")]
    assert [alternative.backend for _c, alternative in found.chain] == [
        "be_web_v3_http",
        "be_web_v2_http",
        "be_web_v1_http",
    ]
    assert found.backend == NO_ROUTE  # no rule without a condition: 404


def test_a_longer_prefix_falls_back_to_a_shorter_one_when_its_conditions_fail() -> None:
    route = http_route(
        "web",
        "r",
        [
            rule(("v1", 80), path="/"),
            rule(("v2", 80), path="/api", headers=[{"name": "x", "value": "y"}]),
        ],
        ["example.com"],
    )
    found = routes_of(build_catalog([*BASE, route]))[("example.com", "/api", "prefix")]
    assert found.backend == "be_web_v1_http"
    assert [a.backend for _c, a in found.chain] == ["be_web_v2_http"]


def test_the_older_route_wins_a_match_both_make_and_the_newer_keeps_the_rest() -> None:
    older = http_route(
        "web", "old", [rule(("v1", 80), path="/a")], ["example.com"], created="2026-01-01T00:00:00Z"
    )
    newer = http_route(
        "web",
        "new",
        [rule(("v2", 80), path="/a"), rule(("v2", 80), path="/b")],
        ["example.com"],
        created="2026-02-01T00:00:00Z",
    )
    found = routes_of(build_catalog([*BASE, newer, older]))
    assert found[("example.com", "/a", "prefix")].backend == "be_web_v1_http"
    assert found[("example.com", "/b", "prefix")].backend == "be_web_v2_http"


def test_an_ingress_keeps_its_host_and_path_and_the_httproute_is_told() -> None:
    route = http_route("web", "r", [rule(("v2", 80), path="/shop")], ["example.com"])
    objects = [*BASE, ingress("web", "ing", [("example.com", "/shop", "Prefix", "v1")]), route]
    catalog = build_catalog(objects)
    assert routes_of(catalog)[("example.com", "/shop", "prefix")].backend == "be_web_v1_http"
    [ignored] = catalog.ignored
    assert ignored.object == "HTTPRoute web/r"
    assert "routed by Ingress web/ing" in ignored.reason


def test_weights_split_requests_and_weight_zero_backends_get_none() -> None:
    route = http_route(
        "web", "r", [rule(("v1", 80, 70), ("v2", 80, 30), ("v3", 80, 0))], ["example.com"]
    )
    found = routes_of(build_catalog([*BASE, route]))[("example.com", "/", "prefix")]
    assert found.split is not None
    assert found.split.backends == (("be_web_v1_http", 70), ("be_web_v2_http", 30))
    assert found.backend == "be_web_v2_http"  # the last share: what use_backend takes


def test_a_rule_whose_weights_are_all_zero_answers_500() -> None:
    route = http_route("web", "r", [rule(("v1", 80, 0))], ["example.com"])
    found = routes_of(build_catalog([*BASE, route]))[("example.com", "/", "prefix")]
    assert found.backend == STATUS_500


def test_a_backend_in_another_namespace_needs_a_reference_grant() -> None:
    route = http_route("app", "r", [rule(("v1", 80))], ["example.com"])
    catalog = build_catalog([*BASE, route])
    route_ref = {"name": "v1", "port": 80, "namespace": "web"}
    route["spec"]["rules"][0]["backendRefs"] = [route_ref]
    catalog = build_catalog([*BASE, route])
    assert routes_of(catalog)[("example.com", "/", "prefix")].backend == STATUS_500
    assert parent_conditions(catalog, "app/r")["ResolvedRefs"] == ("False", "RefNotPermitted")
    grant = reference_grant("web", "let-app-in", "app")
    catalog = build_catalog([*BASE, route, grant])
    assert routes_of(catalog)[("example.com", "/", "prefix")].backend == "be_web_v1_http"
    assert parent_conditions(catalog, "app/r")["ResolvedRefs"] == ("True", "ResolvedRefs")


def test_a_missing_service_answers_500_and_says_backend_not_found() -> None:
    route = http_route("web", "r", [rule(("nope", 80))], ["example.com"])
    catalog = build_catalog([*BASE, route])
    assert routes_of(catalog)[("example.com", "/", "prefix")].backend == STATUS_500
    assert parent_conditions(catalog, "web/r")["ResolvedRefs"] == ("False", "BackendNotFound")


@pytest.mark.parametrize(
    ("listener", "parent", "reason"),
    [
        ({"allowedRoutes": {"namespaces": {"from": "Same"}}}, {}, "NotAllowedByListeners"),
        ({}, {"sectionName": "nope"}, "NoMatchingParent"),
        ({"hostname": "other.example.com"}, {}, "NoMatchingListenerHostname"),
    ],
)
def test_a_route_a_listener_does_not_take_is_not_accepted_with_the_specs_reason(
    listener: dict[str, Any], parent: dict[str, Any], reason: str
) -> None:
    spec = {"name": "http", "port": 80, "protocol": "HTTP", **listener}
    spec.setdefault("allowedRoutes", {"namespaces": {"from": "All"}})
    objects = [gateway_class(), gateway("infra", "gw", [spec]), *services("v1")]
    parents = [{"name": "gw", "namespace": "infra", **parent}]
    route = http_route("web", "r", [rule(("v1", 80))], ["example.com"], parents)
    catalog = build_catalog([*objects, route])
    assert catalog.routes == []
    assert parent_conditions(catalog, "web/r")["Accepted"] == ("False", reason)


def test_a_namespace_selector_reads_the_namespaces_labels() -> None:
    listener = {
        "name": "http",
        "port": 80,
        "protocol": "HTTP",
        "allowedRoutes": {
            "namespaces": {"from": "Selector", "selector": {"matchLabels": {"edge": "yes"}}}
        },
    }
    namespace = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "web"}}
    objects = [gateway_class(), gateway("infra", "gw", [listener]), *services("v1"), namespace]
    route = http_route("web", "r", [rule(("v1", 80))], ["example.com"])
    assert build_catalog([*objects, route]).routes == []
    namespace["metadata"]["labels"] = {"edge": "yes"}
    assert build_catalog([*objects, route]).routes != []


@pytest.mark.parametrize(
    ("listener", "route", "expected"),
    [
        (None, "a.example.com", "a.example.com"),
        ("*.example.com", "a.example.com", "a.example.com"),
        ("*.example.com", "a.b.example.com", "a.b.example.com"),
        ("*.example.com", "example.com", None),
        ("a.example.com", "*.example.com", "a.example.com"),
        ("*.example.com", "*.a.example.com", "*.a.example.com"),
        ("*.a.example.com", "*.example.com", "*.a.example.com"),
        ("a.example.com", "b.example.com", None),
    ],
)
def test_listener_and_route_hostnames_intersect_as_the_spec_says(
    listener: str | None, route: str, expected: str | None
) -> None:
    assert intersect(listener, route) == expected


def test_a_gateway_wildcard_matches_names_of_any_depth_under_it() -> None:
    route = http_route("web", "r", [rule(("v1", 80))], ["*.example.com"])
    found = routes_of(build_catalog([*BASE, route]))
    # "**." is the catalog's Gateway API wildcard: the frontend looks it up for a host
    # with any number of labels before the domain (an Ingress's "*." takes one).
    assert ("**.example.com", "/", "prefix") in found


def test_filters_make_a_section_of_their_own_and_plain_rules_share_the_services() -> None:
    modifier = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "X-A", "value": "1"}], "remove": ["X-B"]},
    }
    filtered = rule(("v1", 80), path="/f")
    filtered["filters"] = [modifier]
    route = http_route("web", "r", [rule(("v1", 80), path="/p"), filtered], ["example.com"])
    catalog = build_catalog([*BASE, route])
    found = routes_of(catalog)
    plain, featured = found[("example.com", "/p", "prefix")], found[("example.com", "/f", "prefix")]
    assert plain.backend == "be_web_v1_http"
    assert featured.backend.startswith("be_web_v1_http_f")
    features = catalog.backends[featured.backend].options.features
    assert features is not None
    assert features.request_headers == (("set", "x-a", "1"), ("remove", "x-b", ""))


def test_a_redirect_rule_has_no_servers_and_keeps_what_it_does_not_set() -> None:
    redirect = {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}]}
    redirect["filters"] = [
        {
            "type": "RequestRedirect",
            "requestRedirect": {"scheme": "https", "statusCode": 301},
        }
    ]
    route = http_route("web", "r", [redirect], ["example.com"])
    catalog = build_catalog([*BASE, route])
    backend = catalog.backends[routes_of(catalog)[("example.com", "/old", "prefix")].backend]
    assert backend.servers == ()
    assert backend.options.features is not None
    target = backend.options.features.redirect
    assert target is not None
    assert (target.scheme, target.code, target.hostname, target.path) == ("https", 301, None, None)


def test_filters_on_a_backend_ref_apply_to_its_share_after_the_rules() -> None:
    made = rule(("v1", 80, 1), ("v2", 80, 1))
    made["filters"] = [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "X-Rule", "value": "r"}]},
        }
    ]
    made["backendRefs"][1]["filters"] = [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"add": [{"name": "X-Ref", "value": "v2"}]},
        }
    ]
    catalog = build_catalog([*BASE, http_route("web", "r", [made], ["example.com"])])
    split = routes_of(catalog)[("example.com", "/", "prefix")].split
    assert split is not None
    (first, _), (second, _) = split.backends
    one = catalog.backends[first].options.features
    two = catalog.backends[second].options.features
    assert one is not None and two is not None
    assert one.request_headers == (("set", "x-rule", "r"),)
    assert two.request_headers == (("set", "x-rule", "r"), ("add", "x-ref", "v2"))


def test_timeouts_and_retry_are_the_rules_sections_own() -> None:
    made = rule(("v1", 80))
    made["timeouts"] = {"request": "1m30s", "backendRequest": "500ms"}
    made["retry"] = {"attempts": 2, "codes": [503, 500], "backoff": "100ms"}
    catalog = build_catalog([*BASE, http_route("web", "r", [made], ["example.com"])])
    backend = catalog.backends[routes_of(catalog)[("example.com", "/", "prefix")].backend]
    features = backend.options.features
    assert features is not None
    assert (features.timeout, features.retries) == ("500ms", 2)
    assert features.retry_on == ("conn-failure", "empty-response", "response-timeout", "500", "503")
    assert [i.reason for i in catalog.ignored] == ["retry.backoff ignored: retries are at once"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("timeouts", {"request": "1d"}, "not a duration"),
        ("timeouts", {"request": "25h"}, "longer than a day"),
        ("retry", {"attempts": 2, "codes": [429]}, "HAProxy retries only"),
        ("retry", {"attempts": 99}, "retry.attempts"),
    ],
)
def test_timeouts_and_retries_haproxy_cannot_do_reject_the_route_with_why(
    field: str, value: dict[str, Any], reason: str
) -> None:
    made = rule(("v1", 80))
    made[field] = value
    catalog = build_catalog([*BASE, http_route("web", "r", [made], ["example.com"])])
    assert catalog.routes == []
    assert reason in {r.object: r.reason for r in catalog.rejected}["HTTPRoute web/r"]


def test_a_request_a_listener_hostname_matches_never_falls_to_a_wider_listeners_routes() -> None:
    listeners = [
        {"name": "any", "port": 80, "protocol": "HTTP"},
        {"name": "wild", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
    ]
    for listener in listeners:
        listener["allowedRoutes"] = {"namespaces": {"from": "All"}}
    objects = [gateway_class(), gateway("infra", "gw", listeners), *services("v1", "v2")]
    wide = http_route("web", "wide", [rule(("v1", 80), path="/wide")], parents=[_parent("any")])
    narrow = http_route(
        "web", "narrow", [rule(("v2", 80), path="/narrow")], parents=[_parent("wild")]
    )
    found = routes_of(build_catalog([*objects, wide, narrow]))
    # a.example.com is the wildcard listener's: /wide is not served there (404), though
    # the listener without a hostname serves /wide for every other host.
    assert found[("*", "/wide", "prefix")].backend == "be_web_v1_http"
    assert found[("**.example.com", "/narrow", "prefix")].backend == "be_web_v2_http"
    assert found[("**.example.com", "/", "prefix")].backend == NO_ROUTE


def _parent(section: str) -> dict[str, Any]:
    return {"name": "gw", "namespace": "infra", "sectionName": section}
