"""The option table (catalog/options.py): every option is accepted where it applies and
rejected where it does not, unknown keys are named, each validator on good and bad values."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from builders import (
    READY,
    TLS,
    endpoint_slice,
    ingress,
    meta,
    route_configmap,
    service,
    tls_secret,
)

from breakwater.catalog import BackendOptions, CachePolicy, Server, StickyCookie, build_catalog
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
CA = (TLS / "other.crt").read_text()

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
    "timeout-tunnel": ("1h", "1h"),
    "timeout-queue": ("10s", "10s"),
    "retries": ("3", 3),
    "retry-on": ("conn-failure 503", ("conn-failure", "503")),
    "backend-protocol": ("HTTPS", "https"),
    "backend-ca": ("secret/backend-ca", ("Secret", "backend-ca")),
    "backend-ca-pem": (CA, CA.strip() + "\n"),
    "backend-sni": ("api.internal", "api.internal"),
    "backend-proxy-protocol": ("v2", "v2"),
    "sticky-cookie": ("BWID", "BWID"),
    "sticky-cookie-ttl": ("1h", "1h"),
    "sticky-cookie-secure": ("true", True),
    "sticky-cookie-httponly": ("false", False),
    "rate-limit-rps": ("10", 10),
    "rate-limit-connections": ("5", 5),
    "max-body-size": ("10m", 10 * 1024 * 1024),
    "allow-sources": ("10.0.0.0/8, 2001:db8::/32", ("10.0.0.0/8", "2001:db8::/32")),
    "deny-sources": ("192.0.2.7", ("192.0.2.7/32",)),
    "hsts": ("true", True),
    "hsts-max-age": ("1d", 86400),
    "hsts-include-subdomains": ("true", True),
    "hsts-preload": ("no", False),
    "redirect-to": ("https://a.example/x?y=1", "https://a.example/x?y=1"),
    "redirect-code": ("308", 308),
    "app-root": ("/app", "/app"),
    "rewrite-target": ("/new/", "/new/"),
    "rewrite-regex": ("^/api(/|$)(.*)", "^/api(/|$)(.*)"),
    "error-pages": ("errors", "errors"),
    "cors": ("true", True),
    "cors-allow-origin": ("https://a.example *", ("https://a.example", "*")),
    "cors-allow-methods": ("GET, POST", ("GET", "POST")),
    "cors-allow-headers": ("X-A Content-Type", ("X-A", "Content-Type")),
    "cors-expose-headers": ("X-Total", ("X-Total",)),
    "cors-allow-credentials": ("false", False),
    "cors-max-age": ("1h", 3600),
    "canary-service": ("canary", "canary"),
    "canary-port": ("80", 80),
    "canary-weight": ("20", 20),
    "canary-header": ("X-Canary", "x-canary"),
    "canary-header-value": ("yes please", "yes please"),
    "canary-cookie": ("canary", "canary"),
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
    "timeout-tunnel": ("1 h", "timeout-tunnel"),
    "timeout-queue": ("-1s", "timeout-queue"),
    "retries": ("11", "retries '11' is not from 0 to 10"),
    "retry-on": ("conn-failure 999", "retry-on '999'"),
    "backend-protocol": ("ajp", "backend-protocol 'ajp'"),
    "backend-ca": ("ca", "is not secret/<name> or configmap/<name>"),
    "backend-ca-pem": ("not a certificate", "PEM certificates"),
    "backend-sni": ("a b", "hostname"),
    "backend-proxy-protocol": ("v3", "backend-proxy-protocol 'v3'"),
    "sticky-cookie": ("a;b", "is not a cookie name"),
    "sticky-cookie-ttl": ("forever", "sticky-cookie-ttl"),
    "sticky-cookie-secure": ("sure", "sticky-cookie-secure"),
    "sticky-cookie-httponly": ("2", "sticky-cookie-httponly"),
    "rate-limit-rps": ("-5", "rate-limit-rps '-5' is not from 1"),
    "rate-limit-connections": ("0", "rate-limit-connections '0' is not from 1"),
    "max-body-size": ("12x", "is not a size"),
    "allow-sources": ("10.0.0.1/8", "allow-sources '10.0.0.1/8' is not a network"),
    "deny-sources": ("10.0.0.0/33", "deny-sources '10.0.0.0/33' is not a network"),
    "hsts": ("maybe", "hsts"),
    "hsts-max-age": ("2y", "hsts-max-age"),
    "hsts-include-subdomains": ("sure", "hsts-include-subdomains"),
    "hsts-preload": ("sure", "hsts-preload"),
    "redirect-to": ("javascript:alert(1)", "is not an absolute http or https URL"),
    "redirect-code": ("200", "redirect-code"),
    "app-root": ("app", "path 'app'"),
    "rewrite-target": ("/a b", "rewrite-target"),
    "rewrite-regex": ("(a+)+$", "nests a repeat in a repeat"),
    "error-pages": ("Bad_Name", "error-pages"),
    "cors": ("perhaps", "cors"),
    "cors-allow-origin": ("https://a.example/path", "is not * or an origin"),
    "cors-allow-methods": ("GE(T", "HTTP token"),
    "cors-allow-headers": ("X-\x01", "HTTP token"),
    "cors-expose-headers": ("X:Y", "HTTP token"),
    "cors-allow-credentials": ("sure", "cors-allow-credentials"),
    "cors-max-age": ("forever", "cors-max-age"),
    "canary-service": ("Canary Svc", "service name"),
    "canary-port": ("http\nfoo", "port"),
    "canary-weight": ("101", "canary-weight '101' is not from 0 to 100"),
    "canary-header": ("X-Can\x00ary", "is not a header name"),
    "canary-header-value": ("a'b", "is not a header value"),
    "canary-cookie": ("a b", "is not a cookie name"),
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
    "retry-on": ["conn-failure", "503"],
    "allow-sources": ["10.0.0.0/8"],
    "deny-sources": ["192.0.2.7"],
    "cors-allow-origin": ["https://a.example"],
    "cors-allow-methods": ["GET"],
    "cors-allow-headers": ["X-A"],
    "cors-expose-headers": ["X-Total"],
    "retries": 3,
    "hsts": True,
}


# The vocabulary (the names, where each applies, JSON types), written out: a change to
# it is a change users see.
_LISTS = (
    "hosts",
    "paths",
    "exact-paths",
    "cache-bypass-paths",
    "retry-on",
    "allow-sources",
    "deny-sources",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
)
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
    "timeout-tunnel",
    "timeout-queue",
    "retries",
    "retry-on",
    "backend-protocol",
    "backend-sni",
    "backend-proxy-protocol",
    "sticky-cookie",
    "sticky-cookie-ttl",
    "sticky-cookie-secure",
    "sticky-cookie-httponly",
    "rate-limit-rps",
    "rate-limit-connections",
    "max-body-size",
    "allow-sources",
    "deny-sources",
    "hsts",
    "hsts-max-age",
    "hsts-include-subdomains",
    "hsts-preload",
    "redirect-to",
    "redirect-code",
    "app-root",
    "rewrite-target",
    "rewrite-regex",
    "cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
)
# What names another object of the namespace: not for plain routes, which have none.
_NAMESPACED = (
    "backend-ca",
    "error-pages",
    "canary-service",
    "canary-port",
    "canary-weight",
    "canary-header",
    "canary-header-value",
    "canary-cookie",
)


def test_the_vocabulary() -> None:
    configmap = {"service", "port", "hosts", "paths", "exact-paths", "tls-secret"}
    plain = {"hosts", "paths", "exact-paths", "servers", "tls", "backend-ca-pem"}
    everywhere = set(_ROUTE_AND_BACKEND)
    assert set(options_for(CONFIGMAP)) == configmap | everywhere | set(_NAMESPACED)
    assert set(options_for(PLAIN_ROUTE)) == plain | everywhere
    assert set(options_for(ANNOTATION)) == everywhere | set(_NAMESPACED)
    assert {k for k, o in OPTION.items() if o.json_type == "list"} == set(_LISTS)
    assert {k for k, o in OPTION.items() if o.json_type in STRUCTURED} == {"servers", "tls"}


def test_every_option_has_examples_and_a_place() -> None:
    assert set(GOOD) == set(BAD) == set(OPTION)
    assert len(OPTION) == len(OPTIONS)
    for option in OPTIONS:
        assert option.places and option.places <= set(PLACES), option.key
        assert option.description and option.description == option.description.strip()
        if option.requires:
            assert option.places <= OPTION[option.requires].places | {PLAIN_ROUTE}, option.key


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
    assert BACKEND_OPTION_KEYS[:5] == (
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
        service("shop", "canary"),
        endpoint_slice("shop", "canary", [("10.0.0.2", READY)]),
        tls_secret("shop", "www-tls"),
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": meta("shop", "backend-ca"),
            "type": "Opaque",
            "data": {"ca.crt": base64.b64encode(CA.encode()).decode()},
        },
        {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": meta("shop", "errors"),
            "data": {"503": "<h1>Back soon</h1>"},
        },
    ]


# What an option needs set beside it, in the text form (the chain followed).
_REQUIRED = {"backend-protocol": "https"}


def with_requirements(key: str, values: dict[str, Any], true: Any, place: Place) -> dict[str, Any]:
    # Only where the option applies: elsewhere, the object names it as unknown.
    required = OPTION[key].requires if key in OPTION and place in OPTION[key].places else None
    while required:
        if OPTION[required].json_type == "bool":
            values = {**values, required: true}
        else:
            values = {**values, required: _REQUIRED.get(required, GOOD[required][0])}
        required = OPTION[required].requires
    return values


def reasons(catalog: Any) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


def configmap_with(key: str, value: Any) -> dict[str, Any]:
    data = with_requirements(key, {"hosts": "a.example.com", key: value}, "true", CONFIGMAP)
    return route_configmap("shop", "web", data)


def plain_route_with(key: str, value: Any) -> dict[str, Any]:
    spec = {"hosts": ["a.example.com"], "servers": [{"address": "10.9.0.1", "port": 80}]}
    return {
        "kind": "BreakwaterRoute",
        "apiVersion": "breakwater.io/v1",
        "metadata": {"name": "billing"},
        "spec": with_requirements(key, {**spec, key: value}, True, PLAIN_ROUTE),
    }


def ingress_with(key: str, value: Any) -> dict[str, Any]:
    annotations = with_requirements(key, {key: value}, "true", ANNOTATION)
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


@pytest.mark.parametrize("key", [o.key for o in OPTIONS if o.requires and CONFIGMAP in o.places])
@pytest.mark.parametrize("unset", [True, False])
def test_an_option_needs_the_one_it_requires(key: str, unset: bool) -> None:
    required = OPTION[key].requires
    assert required is not None
    data = {"hosts": "a.example.com", key: GOOD[key][0]}
    if not unset:
        if OPTION[required].json_type != "bool":
            return  # set at all is enough
        data[required] = "false"
    state = "true" if OPTION[required].json_type == "bool" else "set"
    reason = f"{key} is set but {required} is not {state}"
    catalog = build_catalog([*cluster(), route_configmap("shop", "web", data)])
    assert reasons(catalog) == {"ConfigMap shop/web": reason}
    # Checked before the value itself.
    parse = parse_backend_options if key in BACKEND_OPTION_KEYS else parse_route_options
    with pytest.raises(Rejected, match=f"^{re.escape(reason)}$"):
        parse({key: BAD[key][0]})


# --- the parsers the sources share ------------------------------------------------------


def test_parse_backend_options() -> None:
    values = {key: GOOD[key][0] for key in BACKEND_OPTION_KEYS if key != "backend-ca-pem"}
    options = parse_backend_options(values, lambda ref: f"PEM of {ref[0]} {ref[1]}")
    assert options == BackendOptions(
        "leastconn",
        "/healthz",
        "500ms",
        "5s",
        "30s",
        timeout_tunnel="1h",
        timeout_queue="10s",
        retries=3,
        retry_on=("conn-failure", "503"),
        protocol="https",
        ca_pem="PEM of Secret backend-ca",
        sni="api.internal",
        proxy_protocol="v2",
        sticky=StickyCookie("BWID", "1h", secure=True, httponly=False),
    )
    assert parse_backend_options({"hosts": "ignored"}) == BackendOptions()
    with pytest.raises(Rejected, match="backend-ca names an object"):
        parse_backend_options({"backend-protocol": "https", "backend-ca": "secret/x"})
    with pytest.raises(Rejected, match="backend-sni is set but backend-protocol is not https"):
        parse_backend_options({"backend-protocol": "h2", "backend-sni": "a.example"})


def test_parse_route_options() -> None:
    values = {
        o.key: GOOD[o.key][0] for o in options_for(ANNOTATION).values() if o.target == "route"
    }
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


@pytest.mark.parametrize(
    ("reference", "extra", "reason"),
    [
        ("configmap/bundle", {"ca.crt": CA}, None),
        ("configmap/missing", None, "configmap shop/missing does not exist"),
        ("configmap/bundle", {"other": CA}, "configmap shop/bundle has no key ca.crt"),
        ("configmap/bundle", {"ca.crt": KEY}, "holds something other than PEM certificates"),
        ("secret/nope", None, "secret shop/nope does not exist"),
    ],
)
def test_backend_ca_from_a_configmap_or_a_secret(
    reference: str, extra: dict[str, str] | None, reason: str | None
) -> None:
    objects = cluster()
    if extra is not None:
        objects.append(
            {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": meta("shop", "bundle"),
                "data": extra,
            }
        )
    data = {"hosts": "a.example.com", "backend-protocol": "https", "backend-ca": reference}
    catalog = build_catalog([*objects, route_configmap("shop", "web", data)])
    if reason is None:
        assert reasons(catalog) == {}
        assert catalog.backends["be_shop_web_http"].options.ca_pem == CA.strip() + "\n"
    else:
        assert reason in reasons(catalog)["ConfigMap shop/web"]
        assert catalog.routes == []
