"""Gateway API routes rendered: plain HTTPRoutes are map entries and nothing else,
conditions and weights are frontend rules only for the routes that use them, filters
are backend rules; hostile HTTPRoutes are rejected alone and nothing of them is
written; what is written always passes ``haproxy -c``."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from builders import READY, endpoint_slice, gateway, gateway_class, http_route, rule, service
from test_features import check_settings, haproxy_check, render, section

from breakwater.catalog import build_catalog

MARKER = "pwned"

BASE = [
    gateway_class(),
    gateway("infra", "gw"),
    service("web", "v1"),
    endpoint_slice("web", "v1", [("10.0.0.1", READY)]),
    service("web", "v2"),
    endpoint_slice("web", "v2", [("10.0.0.2", READY)]),
]
GOOD = http_route("web", "good", [rule(("v1", 80), path="/")], ["good.example.com"])


def with_filter(kind: str, body: dict[str, Any], path: str = "/f") -> dict[str, Any]:
    made = rule(("v1", 80), path=path)
    key = {"URLRewrite": "urlRewrite"}.get(kind, kind[0].lower() + kind[1:])
    made["filters"] = [{"type": kind, key: body}]
    if kind == "RequestRedirect":
        del made["backendRefs"]
    return made


EVERY_FEATURE = http_route(
    "web",
    "every",
    [
        rule(("v1", 80), path="/exact", path_type="Exact"),
        rule(("v1", 80), path="/h", headers=[{"name": "X-V", "value": "a b%c"}]),
        rule(
            ("v2", 80),
            path="/h",
            headers=[{"name": "X-R", "type": "RegularExpression", "value": "^v[0-9]+$"}],
        ),
        rule(("v1", 80), path="/q", queryParams=[{"name": "a", "value": "1"}], method="PATCH"),
        rule(("v1", 80), path="/re/[a-z]+/x", path_type="RegularExpression"),
        rule(("v1", 80, 3), ("v2", 80, 1), path="/w"),
        with_filter(
            "RequestHeaderModifier",
            {"set": [{"name": "X-S", "value": "%s"}], "add": [{"name": "X-A", "value": "a"}]},
        ),
        with_filter("ResponseHeaderModifier", {"remove": ["Server"]}, "/resp"),
        with_filter(
            "URLRewrite",
            {
                "hostname": "in.example",
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
            },
            "/rw",
        ),
        with_filter(
            "URLRewrite",
            {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/full"}},
            "/rwf",
        ),
        with_filter(
            "RequestRedirect",
            {
                "hostname": "to.example",
                "port": 8443,
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/n.ew"},
            },
            "/redir.x",
        ),
        with_filter("RequestRedirect", {"scheme": "https", "statusCode": 301}, "/secure"),
    ],
    ["every.example.com", "*.wild.example.com"],
)


def test_every_feature_renders_a_config_haproxy_accepts(tmp_path: Path) -> None:
    catalog = build_catalog([*BASE, GOOD, EVERY_FEATURE])
    assert catalog.rejected == []
    rendered = render(catalog, check_settings(tmp_path))
    result = haproxy_check(rendered, tmp_path)
    assert result.returncode == 0, result.stderr
    public = section(rendered.config, "frontend bw_public")
    # Conditions and weights are the frontend bw_gateway's: bw_public sends it only
    # the requests of routes that have them (one test of the map value), nothing else.
    assert " str(" not in public and "rand(" not in public
    assert "use_backend 'bw_gateway_%[var(txn.bw_route),field(6,;)," in public
    frontend = "\n".join(
        section(rendered.config, f"frontend {name}") for name in gateway_frontends(rendered.config)
    )
    assert "{ req.fhdr(x-v) -m str -- 'a b%c' }" in frontend
    assert "{ method PATCH }" in frontend
    assert "{ path -m reg -- '^(?:/re/[a-z]+/x)$' }" in frontend
    assert "{ rand(4) -m int lt 3 }" in frontend  # v1's 3 of 4


def gateway_frontends(config: str) -> list[str]:
    return re.findall(r"^frontend (bw_gateway_[0-9a-f])$", config, re.MULTILINE)


def test_each_gateway_frontend_holds_only_the_chains_of_its_shard(tmp_path: Path) -> None:
    """A conditioned request meets the rules of the chains whose key shares its key's
    second character only: 40 routes with a header match each spread over frontends
    bw_gateway_<digit>, each with a backend to its socket, every key's frontend there."""
    routes = [
        http_route(
            "web",
            f"t{number}",
            [rule(("v1", 80), headers=[{"name": "x-tenant", "value": f"t{number}"}])],
            [f"t{number}.example.com"],
        )
        for number in range(40)
    ]
    rendered = render(build_catalog([*BASE, *routes]), check_settings(tmp_path))
    assert haproxy_check(rendered, tmp_path).returncode == 0
    keys = set(
        re.findall(r";(c[0-9a-f]{10})$", rendered.generation_files["routes-prefix.map"], re.M)
    )
    assert len(keys) == 40
    shards = gateway_frontends(rendered.config)
    assert 4 < len(shards) <= 16 and shards == sorted(set(shards))
    for name in shards:
        digit = name[-1]
        rules = section(rendered.config, f"frontend {name}")
        tested = set(re.findall(r"-m end ;(c[0-9a-f]{10}) ", rules))
        assert tested == {key for key in keys if key[1] == digit}, name
        backend = section(rendered.config, f"backend {name}")
        assert f"gw{digit}.sock send-proxy-v2" in backend
        assert f"gw{digit}.sock mode" in rules
    assert {key[1] for key in keys} == {name[-1] for name in shards}


def test_plain_httproutes_add_no_rule_to_the_frontend(tmp_path: Path) -> None:
    plain = render(build_catalog([*BASE, GOOD]), check_settings(tmp_path))
    without = render(build_catalog(BASE), check_settings(tmp_path))
    frontend = section(plain.config, "frontend bw_public")
    assert "set-var(txn.bw_route) str(" not in frontend
    assert "rand(" not in frontend
    assert (
        "good.example.com/ be_web_v1_http;-;-;-;-\n" in plain.generation_files["routes-prefix.map"]
    )
    # The same frontend as with no route at all, but the map lookups.
    strip = [line for line in frontend.splitlines() if "map_" not in line and "bw_" not in line]
    empty = section(without.config, "frontend bw_public").splitlines()
    assert [line for line in strip if line not in empty] == []


HOSTILE: list[tuple[str, Any, str]] = [
    (
        "regex that backtracks",
        rule(("v1", 80), path="/(a+)+$", path_type="RegularExpression"),
        "nests a repeat",
    ),
    (
        "regex HAProxy cannot compile",
        rule(("v1", 80), path="/(", path_type="RegularExpression"),
        "does not compile",
    ),
    (
        "header value with a newline",
        rule(("v1", 80), headers=[{"name": "x", "value": f"a\nhttp-request deny {MARKER}"}]),
        "header value",
    ),
    (
        "header name with a space",
        rule(("v1", 80), headers=[{"name": f"x {MARKER}", "value": "a"}]),
        "header name",
    ),
    (
        "header value with a quote",
        rule(("v1", 80), headers=[{"name": "x", "value": f"a' {MARKER} '"}]),
        "header value",
    ),
    (
        "query regex with a lookahead",
        rule(
            ("v1", 80),
            queryParams=[{"name": "q", "type": "RegularExpression", "value": f"(?={MARKER})"}],
        ),
        "look-around",
    ),
    (
        "redirect to another scheme",
        with_filter("RequestRedirect", {"scheme": "javascript"}),
        "http or https",
    ),
    (
        "redirect hostname with a path",
        with_filter("RequestRedirect", {"hostname": f"a.com/{MARKER}"}),
        "not a valid DNS name",
    ),
    (
        "rewrite path with a space",
        with_filter(
            "URLRewrite", {"path": {"type": "ReplaceFullPath", "replaceFullPath": f"/a {MARKER}"}}
        ),
        "path",
    ),
    (
        "added header with a control character",
        with_filter("RequestHeaderModifier", {"add": [{"name": "x", "value": f"\x01{MARKER}"}]}),
        "header value",
    ),
    ("unknown filter", with_filter("ExtensionRef", {"name": MARKER}), "not supported"),
    ("method that is not one", rule(("v1", 80), method=f"GET {MARKER}"), "HTTP method"),
    (
        "status code that is not a redirect",
        with_filter("RequestRedirect", {"statusCode": 200}),
        "not a redirect",
    ),
]


@pytest.mark.parametrize(("what", "bad_rule", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_httproute_is_rejected_alone_and_writes_nothing(
    what: str, bad_rule: Any, reason: str, tmp_path: Path
) -> None:
    bad = http_route("web", "bad", [copy.deepcopy(bad_rule)], ["bad.example.com"])
    catalog = build_catalog([*BASE, GOOD, bad])
    rejections = {r.object: r.reason for r in catalog.rejected}
    assert reason in rejections["HTTPRoute web/bad"], what
    assert {r.host for r in catalog.routes} == {"good.example.com"}
    status = catalog.gateway["httproutes"]["web/bad"]["conditions"]
    assert status[0]["type"] == "Accepted" and status[0]["status"] == "False"
    rendered = render(catalog, check_settings(tmp_path))
    text = "\n".join([rendered.config, *rendered.generation_files.values()])
    assert MARKER not in text
    assert "bad.example.com" not in text
    result = haproxy_check(rendered, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_gateway_wildcard_host_is_looked_up_for_names_of_any_depth(tmp_path: Path) -> None:
    route = http_route("web", "w", [rule(("v1", 80))], ["*.wild.example.com"])
    rendered = render(build_catalog([*BASE, route]), check_settings(tmp_path))
    frontend = section(rendered.config, "frontend bw_public")
    assert 'regsub("^.+[.]([^.]+[.][^.]+[.][^.]+)$","**.\\1")' in frontend
    assert "**.wild.example.com/ be_web_v1_http" in rendered.generation_files["routes-prefix.map"]
