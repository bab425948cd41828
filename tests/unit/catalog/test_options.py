"""The option table (catalog/options.py): every option is accepted where it applies and
rejected where it does not, unknown keys are named, each validator on good and bad values."""

from __future__ import annotations

from typing import Any

import pytest
from builders import READY, TLS, endpoint_slice, ingress, route_configmap, service, tls_secret

from breakwater.catalog import BackendOptions, CachePolicy, Server, build_catalog
from breakwater.catalog.model import Rejected
from breakwater.catalog.options import (
    ANNOTATION,
    ANNOTATION_PREFIX,
    BACKEND_OPTION_KEYS,
    CONFIGMAP,
    CONFIGMAP_KEYS,
    INGRESS_ANNOTATIONS,
    OPTION,
    OPTIONS,
    PLACES,
    PLAIN_ROUTE,
    ROUTE_KEYS,
    STRUCTURED,
    Place,
    RouteOptions,
    options_for,
    parse_backend_options,
    parse_route_options,
    plain_route_strings,
)
from breakwater.validate import InvalidValue

CERTIFICATE = (TLS / "www.crt").read_text()
KEY = (TLS / "www.key").read_text()

# key -> (a good value in text form, what it validates to)
GOOD: dict[str, tuple[Any, Any]] = {
    "service": ("web", "web"),
    "port": ("80", 80),
    "hosts": (
        "a.example.com, B.example.com\n*.example.com",
        ("a.example.com", "b.example.com", "*.example.com"),
    ),
    "paths": ("/ /api/", ("/", "/api")),
    "exact-paths": ("/healthz,/x/", ("/healthz", "/x/")),
    "servers": (
        [
            {"address": "10.0.0.2", "port": 80},
            {"address": "10.0.0.1", "port": 80, "state": "drain"},
        ],
        (Server("10.0.0.1", 80, "drain"), Server("10.0.0.2", 80, "ready")),
    ),
    "tls-secret": ("www-tls", "www-tls"),
    "tls": (
        {"certificate": CERTIFICATE, "key": KEY},
        CERTIFICATE.strip() + "\n" + KEY.strip() + "\n",
    ),
    "https-redirect": ("yes", True),
    "cache": ("off", False),
    "cache-ttl": ("5m", 300),
    "cache-grace": ("30", 30),
    "cache-strip-cookies": ("true", True),
    "cache-bypass-paths": ("/account /cart/", ("/account", "/cart")),
    "balance": ("leastconn", "leastconn"),
    "health-check-path": ("/healthz", "/healthz"),
    "health-check-interval": ("500ms", "500ms"),
    "timeout-connect": ("5s", "5s"),
    "timeout-server": ("30s", "30s"),
}

# key -> (a bad value, a part of the reason)
BAD: dict[str, tuple[Any, str]] = {
    "service": ("Web Service", "service name"),
    "port": ("http\nfoo", "port"),
    "hosts": ("a.example.com exa_mple.com", "hostname 'exa_mple.com'"),
    "paths": ("/ relative", "path 'relative'"),
    "exact-paths": ("/x?q=1", "path '/x?q=1'"),
    "servers": ([{"address": "10.0.0.1", "port": 80, "weight": 2}], "each server"),
    "tls-secret": ("Bad_Name", "secret name"),
    "tls": ({"certificate": "x", "key": "y"}, "tls: "),
    "https-redirect": ("maybe", "https-redirect"),
    "cache": ("perhaps", "cache"),
    "cache-ttl": ("1 hour", "cache-ttl"),
    "cache-grace": ("-1", "cache-grace"),
    "cache-strip-cookies": ("nah", "cache-strip-cookies"),
    "cache-bypass-paths": ("account", "path 'account'"),
    "balance": ("roundrobin\n    server x 1.2.3.4:80", "balance"),
    "health-check-path": ("/a$b", "health-check-path"),
    "health-check-interval": ("0", "health-check-interval"),
    "timeout-connect": ("5s # comment", "timeout-connect"),
    "timeout-server": ("25d", "timeout-server"),
}

# A good value in a plain route's JSON form, where it is not the text form.
GOOD_JSON: dict[str, Any] = {
    "hosts": ["a.example.com", "b.example.com"],
    "paths": ["/", "/api/"],
    "exact-paths": ["/healthz"],
    "cache-bypass-paths": ["/account"],
    "https-redirect": True,
    "cache": False,
    "cache-strip-cookies": True,
}


# The vocabulary as it was before the table (the names, where each applies, JSON types).
_LISTS = ("hosts", "paths", "exact-paths", "cache-bypass-paths")
_ROUTE_AND_BACKEND = (
    "https-redirect",
    "cache",
    "cache-ttl",
    "cache-grace",
    "cache-strip-cookies",
    "cache-bypass-paths",
    "balance",
    "health-check-path",
    "health-check-interval",
    "timeout-connect",
    "timeout-server",
)


def test_the_vocabulary() -> None:
    configmap = {"service", "port", "hosts", "paths", "exact-paths", "tls-secret"}
    plain = {"hosts", "paths", "exact-paths", "servers", "tls"}
    assert set(options_for(CONFIGMAP)) == configmap | set(_ROUTE_AND_BACKEND)
    assert set(options_for(PLAIN_ROUTE)) == plain | set(_ROUTE_AND_BACKEND)
    assert set(options_for(ANNOTATION)) == set(_ROUTE_AND_BACKEND)
    assert {k for k, o in OPTION.items() if o.json_type == "list"} == set(_LISTS)
    assert {k for k, o in OPTION.items() if o.json_type in STRUCTURED} == {"servers", "tls"}


def test_every_option_has_examples_and_a_place() -> None:
    assert set(GOOD) == set(BAD) == set(OPTION)
    assert len(OPTION) == len(OPTIONS)
    for option in OPTIONS:
        assert option.places and option.places <= set(PLACES), option.key
        assert option.description and option.description == option.description.strip()
        if option.requires:
            assert OPTION[option.requires].json_type == "bool"


@pytest.mark.parametrize("key", OPTION)
def test_validator_accepts_a_good_value(key: str) -> None:
    text, value = GOOD[key]
    assert OPTION[key].value(text) == value


@pytest.mark.parametrize("key", OPTION)
def test_validator_refuses_a_bad_value(key: str) -> None:
    bad, reason = BAD[key]
    with pytest.raises((InvalidValue, Rejected)) as caught:
        OPTION[key].value(bad)
    assert reason in str(caught.value)


def test_derived_names_follow_the_table() -> None:
    assert list(CONFIGMAP_KEYS) == [o.key for o in OPTIONS if CONFIGMAP in o.places]
    assert list(ROUTE_KEYS) == [o.key for o in OPTIONS if PLAIN_ROUTE in o.places]
    assert list(INGRESS_ANNOTATIONS) == [o.key for o in OPTIONS if ANNOTATION in o.places]
    assert (
        CONFIGMAP_KEYS["balance"] == INGRESS_ANNOTATIONS["balance"] == OPTION["balance"].description
    )
    assert BACKEND_OPTION_KEYS == (
        "balance",
        "health-check-path",
        "health-check-interval",
        "timeout-connect",
        "timeout-server",
    )
    # Only plain routes list their servers and carry a certificate inline.
    assert {"servers", "tls"} <= set(ROUTE_KEYS) and "servers" not in CONFIGMAP_KEYS
    assert {"hosts", "service", "tls-secret"}.isdisjoint(INGRESS_ANNOTATIONS)


# --- each option where it applies, and where it does not -----------------------------


def cluster() -> list[dict[str, Any]]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        tls_secret("shop", "www-tls"),
    ]


def with_requirements(key: str, values: dict[str, Any], true: Any) -> dict[str, Any]:
    required = OPTION[key].requires if key in OPTION else None
    return {**values, required: true} if required else values


def reasons(catalog: Any) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


def configmap_with(key: str, value: Any) -> dict[str, Any]:
    data = with_requirements(key, {"hosts": "a.example.com", key: value}, "true")
    return route_configmap("shop", "web", data)


def plain_route_with(key: str, value: Any) -> dict[str, Any]:
    spec = {"hosts": ["a.example.com"], "servers": [{"address": "10.9.0.1", "port": 80}]}
    return {
        "kind": "BreakwaterRoute",
        "apiVersion": "breakwater.io/v1",
        "metadata": {"name": "billing"},
        "spec": with_requirements(key, {**spec, key: value}, True),
    }


def ingress_with(key: str, value: Any) -> dict[str, Any]:
    annotations = with_requirements(key, {key: value}, "true")
    return ingress(
        "shop",
        "web",
        [("a.example.com", "/", "Prefix", "web")],
        annotations={ANNOTATION_PREFIX + k: v for k, v in annotations.items()},
    )


def good_value(place: Place, key: str) -> Any:
    if place == PLAIN_ROUTE:
        return GOOD_JSON.get(key, GOOD[key][0])
    text = GOOD[key][0]
    return text if isinstance(text, str) else "x"  # servers and tls have no text form


SOURCES = {
    CONFIGMAP: (configmap_with, "ConfigMap shop/web", "unknown key '{key}'"),
    PLAIN_ROUTE: (plain_route_with, "BreakwaterRoute billing", "unknown key '{key}'"),
    ANNOTATION: (
        ingress_with,
        "Ingress shop/web",
        f"unknown annotation {ANNOTATION_PREFIX}{{key}}",
    ),
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("key", OPTION)
def test_an_option_is_accepted_exactly_where_it_applies(place: Place, key: str) -> None:
    make, owner, unknown = SOURCES[place]
    catalog = build_catalog([*cluster(), make(key, good_value(place, key))])
    if place in OPTION[key].places:
        assert reasons(catalog) == {}
        assert catalog.routes
    else:
        assert reasons(catalog) == {owner: unknown.format(key=key)}
        assert catalog.routes == []


@pytest.mark.parametrize(
    ("place", "key"),
    [
        (p, o.key)
        for o in OPTIONS
        for p in PLACES
        if p in o.places and o.json_type not in STRUCTURED
    ],
)
def test_a_bad_value_rejects_the_object_with_its_reason(place: Place, key: str) -> None:
    make, owner, _unknown = SOURCES[place]
    bad, reason = BAD[key]
    value = bad.split() if place == PLAIN_ROUTE and OPTION[key].json_type == "list" else bad
    catalog = build_catalog([*cluster(), make(key, value)])
    assert reason in reasons(catalog)[owner]
    assert catalog.routes == []


@pytest.mark.parametrize("place", PLACES)
def test_an_unknown_key_is_named(place: Place) -> None:
    make, owner, unknown = SOURCES[place]
    catalog = build_catalog([*cluster(), make("colour", "blue")])
    assert reasons(catalog) == {owner: unknown.format(key="colour")}


def test_other_annotations_are_not_ours() -> None:
    objects = [*cluster(), ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")])]
    objects[-1]["metadata"]["annotations"] = {"example.com/colour": "blue", "breakwater.io": "x"}
    assert reasons(build_catalog(objects)) == {}


@pytest.mark.parametrize("key", [o.key for o in OPTIONS if o.requires])
@pytest.mark.parametrize("cache", [None, "false"])
def test_a_cache_option_needs_cache(key: str, cache: str | None) -> None:
    data = {"hosts": "a.example.com", key: GOOD[key][0]}
    if cache is not None:
        data["cache"] = cache
    catalog = build_catalog([*cluster(), route_configmap("shop", "web", data)])
    assert reasons(catalog) == {"ConfigMap shop/web": f"{key} is set but cache is not true"}
    # Checked before the value itself.
    with pytest.raises(Rejected, match=f"^{key} is set but cache is not true$"):
        parse_route_options({key: BAD[key][0]})


# --- the parsers the sources share ------------------------------------------------------


def test_parse_backend_options() -> None:
    values = {key: GOOD[key][0] for key in BACKEND_OPTION_KEYS}
    assert parse_backend_options(values) == BackendOptions(
        "leastconn", "/healthz", "500ms", "5s", "30s"
    )
    assert parse_backend_options({"hosts": "ignored"}) == BackendOptions()


def test_parse_route_options() -> None:
    values = {o.key: GOOD[o.key][0] for o in options_for(ANNOTATION).values()}
    assert parse_route_options({**values, "cache": "true"}) == RouteOptions(
        True, CachePolicy(ttl=300, grace=30, strip_cookies=True), ("/account", "/cart")
    )
    assert parse_route_options({}) == RouteOptions(False, None, ())
    assert parse_route_options({"cache": "true"}) == RouteOptions(False, CachePolicy(), ())


def test_the_first_bad_value_in_table_order_is_the_reason() -> None:
    with pytest.raises(InvalidValue, match="https-redirect"):
        parse_route_options({"cache": "perhaps", "https-redirect": "maybe"})
    with pytest.raises(InvalidValue, match="balance"):
        parse_backend_options({"timeout-server": "x", "balance": "x"})


def test_plain_route_strings() -> None:
    spec = {
        "hosts": ["a.example.com", "b.example.com"],
        "servers": [{"address": "10.0.0.1", "port": 80}],
        "tls": {"certificate": "x", "key": "y"},
        "cache": True,
        "https-redirect": "yes",
        "timeout-connect": 5000,
    }
    assert plain_route_strings(spec) == {
        "hosts": "a.example.com b.example.com",
        "cache": "true",
        "https-redirect": "yes",
        "timeout-connect": "5000",
    }


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"port": 80}, "unknown key 'port'"),
        ({"hosts": "a.example.com"}, "hosts must be a list of strings"),
        ({"paths": ["/a", 1]}, "paths must be a list of strings"),
        ({"exact-paths": ["/a /b"]}, "exact-paths: '/a /b' is not one value"),
        ({"cache-bypass-paths": [""]}, "cache-bypass-paths: '' is not one value"),
        ({"balance": ["leastconn"]}, "balance must be a string, a number or a boolean"),
        ({"cache": None}, "cache must be a string, a number or a boolean"),
    ],
)
def test_plain_route_strings_refuses(spec: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidValue, match=f"^{reason}$"):
        plain_route_strings(spec)


@pytest.mark.parametrize("key", ["paths", "exact-paths", "cache-bypass-paths"])
@pytest.mark.parametrize(
    "value", ["/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a/..", "/a/."]
)
def test_path_options_follow_kubernetes_rules_for_exact_and_prefix_paths(
    key: str, value: str
) -> None:
    # They are matched as an Ingress's Prefix and Exact paths are: the same rules, so no
    # object routes what an Ingress could not (validateHTTPIngressPath).
    with pytest.raises(InvalidValue, match=f"^{key} '.*' must not"):
        OPTION[key].value(value)
