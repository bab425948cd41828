"""Traffic features (docs/traffic.md) as rendered: every option through `haproxy -c`,
plain routes untouched, the sections of objects with features, each feature's lines,
canary rules, the conflicts of backend options, and what is structural."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
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

from breakwater.catalog import Catalog, RouteFeatures, build_catalog
from breakwater.catalog.options import OPTION
from breakwater.render.features import HTTP_ERROR_STATUSES, ca_file, page_file
from breakwater.render.haproxy import RenderedConfig, render_shaped
from breakwater.render.maps import route_maps
from breakwater.render.shape import place, shape_from_config
from breakwater.render.slots import structure_of
from breakwater.targets.settings import HAProxySettings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "traffic.md"
TESTS = Path(__file__).resolve().parents[2]
CA = (TLS / "www.crt").read_text()
SETTINGS = HAProxySettings(config_dir="/etc/bw")
KNOWN_WARNING = "log format ignored for frontend 'bw_metrics'"
needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


# --- helpers --------------------------------------------------------------------------


def ca_secret(namespace: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": meta(namespace, name),
        "type": "Opaque",
        "data": {"ca.crt": base64.b64encode(CA.encode()).decode()},
    }


def configmap(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """A ConfigMap that makes no route (no label): CA bundles, error pages."""
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": meta(namespace, name),
        "data": data,
    }


def backend_service(name: str, *ips: str) -> list[dict[str, Any]]:
    return [service("shop", name), endpoint_slice("shop", name, [(ip, READY) for ip in ips])]


def plain_route(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "BreakwaterRoute",
        "apiVersion": "breakwater.io/v1",
        "metadata": {"name": name},
        "spec": spec,
    }


def render(catalog: Catalog, settings: HAProxySettings = SETTINGS) -> RenderedConfig:
    return render_shaped(catalog, None, {}, settings)[0]


def section(config: str, header: str) -> str:
    """A section of haproxy.cfg, ``backend be_x`` or ``frontend bw_public``, to its end."""
    start = config.index(f"\n{header}\n") + 1
    end = config.find("\n\n", start)
    return config[start : end if end >= 0 else len(config)]


def lines_of(config: str, header: str) -> list[str]:
    return [line.strip() for line in section(config, header).splitlines()[1:]]


def featured(catalog: Catalog) -> list[str]:
    """The names of the sections of objects with features."""
    return [name for name, b in catalog.backends.items() if b.options.features is not None]


def haproxy_check(rendered: RenderedConfig, directory: Path) -> subprocess.CompletedProcess[str]:
    """Write the file and its generation directory under ``directory``; `haproxy -c`."""
    generation = Path(rendered.generation_dir)
    assert generation.is_relative_to(directory)
    for name, text in rendered.generation_files.items():
        path = generation / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    config = directory / "haproxy.cfg"
    config.write_text(rendered.config)
    return subprocess.run(
        ["haproxy", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_settings(directory: Path, **extra: Any) -> HAProxySettings:
    return HAProxySettings(
        config_dir=str(directory),
        stats_socket=str(directory / "admin.sock"),
        http_binds=("127.0.0.1:18080",),
        https_binds=("127.0.0.1:18443",),
        **extra,
    )


def assert_haproxy_accepts(rendered: RenderedConfig, directory: Path) -> None:
    checked = haproxy_check(rendered, directory)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    warnings = [line for line in output.splitlines() if "[WARNING]" in line]
    assert all(KNOWN_WARNING in line for line in warnings), warnings


# --- every option through haproxy -c ----------------------------------------------------


def _documented_keys() -> set[str]:
    """The option keys of docs/traffic.md's two option tables (backend, route)."""
    keys: set[str] = set()
    text = DOCS.read_text()
    tables = text.split("## Frontend settings")[0]
    for line in tables.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys.update(re.findall(r"`([a-z0-9-]+)`", first))
    return keys


def every_option_objects() -> list[dict[str, Any]]:
    """Objects that together use every option of docs/traffic.md (and CORS): one per
    combination the options allow (redirect-to with no rewrite, a protocol per Service)."""
    web = route_configmap(
        "shop",
        "web",
        {
            "hosts": "www.example.com",
            "paths": "/ /old",
            "tls-secret": "www",
            "https-redirect": "true",
            "balance": "leastconn",
            "health-check-path": "/healthz",
            "health-check-interval": "3s",
            "timeout-connect": "3s",
            "timeout-server": "40s",
            "timeout-tunnel": "1h",
            "timeout-queue": "10s",
            "retries": "2",
            "retry-on": "conn-failure 503",
            "sticky-cookie": "BWID",
            "sticky-cookie-ttl": "1h",
            "sticky-cookie-secure": "true",
            "sticky-cookie-httponly": "false",
            "rate-limit-rps": "10",
            "rate-limit-connections": "5",
            "max-body-size": "1m",
            "allow-sources": "10.0.0.0/8 ::1/128 127.0.0.0/8",
            "deny-sources": "10.9.0.0/16",
            "hsts": "true",
            "hsts-max-age": "30d",
            "hsts-include-subdomains": "true",
            "hsts-preload": "true",
            "app-root": "/app",
            "rewrite-target": "/new/",
            "error-pages": "errors",
            "cors": "true",
            "cors-allow-origin": "https://a.example https://b.example:8443",
            "cors-allow-methods": "GET POST",
            "cors-allow-headers": "X-Token Content-Type",
            "cors-expose-headers": "X-Request-Id",
            "cors-allow-credentials": "true",
            "cors-max-age": "1h",
            "canary-service": "canary",
            "canary-port": "http",
            "canary-weight": "20",
            "canary-header": "X-Canary",
            "canary-cookie": "canary",
        },
    )
    api = route_configmap(
        "shop",
        "api",
        {
            "hosts": "api.example.com",
            "backend-protocol": "https",
            "backend-ca": "secret/ca",
            "backend-sni": "api.internal",
            "backend-proxy-protocol": "v2",
            "redirect-to": "https://x.example/a%20b?q=1",
            "redirect-code": "308",
        },
    )
    grpcs = route_configmap(
        "shop",
        "grpcs",
        {
            "hosts": "grpcs.example.com",
            "backend-protocol": "grpcs",
            "backend-ca": "configmap/ca-bundle",
            "health-check-path": "/grpc.health.v1.Health/Check",
            "rewrite-target": "/v2/\\2",
            "rewrite-regex": "^/api(/|$)(.*)",
        },
    )
    h2 = route_configmap(
        "shop",
        "h2",
        {
            "hosts": "h2.example.com",
            "backend-protocol": "h2",
            "backend-proxy-protocol": "v1",
            "health-check-path": "/healthz",
        },
    )
    grpc = route_configmap(
        "shop",
        "grpc",
        {
            "hosts": "grpc.example.com",
            "backend-protocol": "grpc",
            "canary-service": "canary",
            "canary-header": "x-grpc-canary",
            "canary-header-value": "yes please",
        },
    )
    tls = ingress(
        "shop",
        "tls",
        [("tls.example.com", "/", "Prefix", "tls")],
        annotations={
            "breakwater.io/backend-protocol": "https",
            "breakwater.io/rate-limit-rps": "50",
            "breakwater.io/redirect-to": "http://other.example/",
        },
    )
    plain = plain_route(
        "plain",
        {
            "hosts": ["plain.example.com"],
            "servers": [{"address": "10.1.0.1", "port": 8443}],
            "backend-protocol": "https",
            "backend-ca-pem": CA,
            "backend-sni": "plain.internal",
            "max-body-size": "64k",
        },
    )
    return [
        *backend_service("web", "10.0.0.1", "10.0.0.2"),
        *backend_service("canary", "10.0.0.3"),
        *backend_service("api", "10.0.0.4"),
        *backend_service("grpcs", "10.0.0.5"),
        *backend_service("h2", "10.0.0.6"),
        *backend_service("grpc", "10.0.0.7"),
        *backend_service("tls", "10.0.0.8"),
        tls_secret("shop", "www"),
        ca_secret("shop", "ca"),
        configmap("shop", "ca-bundle", {"ca.crt": CA}),
        configmap(
            "shop",
            "errors",
            {
                "503": "<h1>down 100% 'sorry' \"again\"</h1>\n%[env(HOME)] # $HOME\n",
                "418": "<p>teapot</p>",
                "502": "<p>bad gateway</p>",
            },
        ),
        web,
        api,
        grpcs,
        h2,
        grpc,
        tls,
        plain,
    ]


def _used_keys(objects: list[dict[str, Any]]) -> set[str]:
    keys: set[str] = set()
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "labels" in obj["metadata"]:
            keys.update(obj["data"])
        elif obj["kind"] == "Ingress":
            annotations = obj["metadata"]["annotations"]
            keys.update(k.removeprefix("breakwater.io/") for k in annotations)
        elif obj["kind"] == "BreakwaterRoute":
            keys.update(obj["spec"])
    return keys


def test_the_objects_use_every_documented_option() -> None:
    documented = _documented_keys()
    assert {"backend-protocol", "rate-limit-rps", "canary-cookie", "sticky-cookie"} <= documented
    table = {o.key for o in OPTION.values() if o.target in ("feature", "canary")}
    table |= {o.key for o in OPTION.values() if o.target == "backend" and o.field}
    missing = (documented | table) - _used_keys(every_option_objects())
    assert missing == set()


@needs_haproxy
def test_every_option_renders_a_config_haproxy_accepts(tmp_path: Path) -> None:
    catalog = build_catalog(every_option_objects())
    assert catalog.rejected == []
    assert {r.host for r in catalog.routes} == {
        "www.example.com",
        "api.example.com",
        "grpcs.example.com",
        "h2.example.com",
        "grpc.example.com",
        "tls.example.com",
        "plain.example.com",
    }
    settings = check_settings(tmp_path, h2c=True, proxy_protocol_sources=("10.0.0.0/8",))
    rendered = render(catalog, settings)
    assert rendered.refused == ()
    config = rendered.config
    # What each kind of option renders is there (the exact lines are tested below).
    for text in (
        "stick-table",
        "http-request deny deny_status 403",
        "Strict-Transport-Security",
        "http-request redirect location",
        "replace-path",
        "http-error status 503",
        "http-response return status 418",
        "ssl verify required ca-file",
        "ssl verify none",
        "send-proxy-v2",
        "send-proxy ",
        "proto h2",
        "cookie BWID insert indirect nocache dynamic",
        "retry-on conn-failure 503",
        "timeout tunnel 1h",
        "timeout queue 10s",
        "rand(100)",
        "req.hdr(x-grpc-canary) -m str -- 'yes please'",
        "Access-Control-Allow-Methods 'GET, POST'",
        "tcp-request connection expect-proxy layer4 if { src 10.0.0.0/8 }",
    ):
        assert text in config, text
    assert "proto h1" not in config  # h2c
    assert_haproxy_accepts(rendered, tmp_path)


# --- plain routes render as before -----------------------------------------------------


def plain_objects() -> list[dict[str, Any]]:
    return [
        *backend_service("web", "10.0.0.1", "10.0.0.2"),
        *backend_service("shop", "10.0.0.3"),
        *backend_service("blog", "10.0.0.4"),
        route_configmap("shop", "web", {"hosts": "www.example.com", "paths": "/ /a"}),
        route_configmap(
            "shop",
            "shop",
            {
                "hosts": "shop.example.com",
                "https-redirect": "true",
                "balance": "leastconn",
                "health-check-path": "/healthz",
                "timeout-server": "30s",
            },
        ),
        route_configmap("shop", "blog", {"hosts": "blog.example.com", "exact-paths": "/x"}),
    ]


def test_plain_routes_render_none_of_the_features() -> None:
    catalog = build_catalog(plain_objects())
    assert catalog.rejected == []
    assert featured(catalog) == []
    rendered = render(catalog)
    config = rendered.config
    for text in (
        "stick-table",
        "http-request deny",
        "cookie ",
        "rand(",
        "Canaries",
        "field(6,;)",
        "bw_canary",
        "replace-path",
        "http-error",
        "http-response",
        "redirect location",
        "ssl ",
        "send-proxy",
        "timeout tunnel",
        "retries",
    ):
        assert text not in config, text
    assert not re.search(r"backend \S+_f[0-9a-f]{10}\n", config)
    # default-server only with a health check, as always.
    default_servers = [line.strip() for line in config.splitlines() if "default-server" in line]
    assert default_servers == ["default-server check inter 2s"]
    assert not any(name.startswith(("ca/", "errors/")) for name in rendered.generation_files)
    maps = "".join(route_maps(catalog.routes))
    assert all(len(line.split(" ")[1].split(";")) == 5 for line in maps.splitlines())


def _frontend(rendered: RenderedConfig) -> str:
    return section(rendered.config, "frontend bw_public").replace(rendered.generation_dir, "GEN")


def test_a_featured_route_for_another_service_changes_nothing_of_the_plain_ones() -> None:
    plain = build_catalog(plain_objects())
    features = {
        "hosts": "api.example.com",
        "rate-limit-rps": "10",
        "allow-sources": "10.0.0.0/8",
        "hsts": "true",
        "rewrite-target": "/",
        "paths": "/v1",
    }
    objects = [*plain_objects(), *backend_service("api", "10.0.0.9")]
    both = build_catalog([*objects, route_configmap("shop", "api", features)])
    assert both.rejected == []
    assert len(featured(both)) == 1
    before, after = render(plain), render(both)
    # A featured route that is not a canary adds nothing to the frontend.
    assert _frontend(after) == _frontend(before)
    # The plain sections are the same, line for line.
    for name in plain.backends:
        assert section(after.config, f"backend {name}") == section(before.config, f"backend {name}")


def test_a_canary_adds_its_rules_to_the_frontend_and_nothing_else() -> None:
    plain = build_catalog(plain_objects())
    objects = [*plain_objects(), *backend_service("api", "10.0.0.9")]
    objects += backend_service("canary", "10.0.0.10")
    data = {"hosts": "api.example.com", "canary-service": "canary", "canary-weight": "10"}
    both = build_catalog([*objects, route_configmap("shop", "api", data)])
    assert both.rejected == []
    assert featured(both) == []  # a canary alone is no route feature
    before, after = _frontend(render(plain)), _frontend(render(both))
    added = [line.strip() for line in after.splitlines() if line not in before.splitlines()]
    assert [line for line in after.splitlines() if line.strip() not in added] == (
        before.splitlines()
    )
    assert [line for line in added if not line.startswith("#")] == [
        f"use_backend be_shop_canary_http if {{ var(txn.bw_route) -m end ;{_key(both)} }}"
        " { rand(100) -m int lt 10 }",
    ]


# --- sections of objects with features --------------------------------------------------


def _two_objects(first: dict[str, str], second: dict[str, str]) -> Catalog:
    one = route_configmap("shop", "one", {"service": "web", "hosts": "one.example.com", **first})
    two = route_configmap("shop", "two", {"service": "web", "hosts": "two.example.com", **second})
    return build_catalog([*backend_service("web", "10.0.0.1", "10.0.0.2"), one, two])


def test_an_object_with_features_gets_its_own_section_with_the_same_servers() -> None:
    catalog = _two_objects({"rate-limit-rps": "10"}, {})
    assert catalog.rejected == []
    features = RouteFeatures(rate_limit_rps=10)
    name = f"be_shop_web_http_f{features.digest()}"
    assert re.fullmatch(r"be_shop_web_http_f[0-9a-f]{10}", name)
    assert set(catalog.backends) == {"be_shop_web_http", name}
    assert catalog.backends[name].servers == catalog.backends["be_shop_web_http"].servers
    assert catalog.backends[name].options.features == features
    assert {r.host: r.backend for r in catalog.routes} == {
        "one.example.com": name,
        "two.example.com": "be_shop_web_http",
    }
    config = render(catalog).config
    servers = [line for line in lines_of(config, f"backend {name}") if line.startswith("server ")]
    plain = [line for line in lines_of(config, "backend be_shop_web_http") if "server " in line]
    assert servers == plain
    assert "server s1 10.0.0.1:8080" in servers


def test_the_same_features_share_a_section_and_other_features_do_not() -> None:
    same = _two_objects({"rate-limit-rps": "10"}, {"rate-limit-rps": "10"})
    assert same.rejected == []
    (name,) = featured(same)
    assert {r.backend for r in same.routes} == {name}
    other = _two_objects({"rate-limit-rps": "10"}, {"rate-limit-rps": "11"})
    assert other.rejected == []
    assert sorted({r.backend for r in other.routes}) == sorted(featured(other))
    assert len(featured(other)) == 2
    assert len({b.servers for b in other.backends.values()}) == 1


DIGEST_DATA = {
    "hosts": "a.example.com",
    "paths": "/a /b",
    "rate-limit-rps": "10",
    "allow-sources": "10.0.0.0/8",
    "hsts": "true",
    "cors": "true",
    "rewrite-target": "/x/",
}
_DIGEST_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from builders import READY, endpoint_slice, route_configmap, service
from breakwater.catalog import build_catalog
objects = [service("shop", "web"), endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
           route_configmap("shop", "web", json.loads(sys.argv[2]))]
print(" ".join(build_catalog(objects).backends))
"""


def test_the_section_name_is_the_same_in_every_process() -> None:
    objects = [*backend_service("web", "10.0.0.1"), route_configmap("shop", "web", DIGEST_DATA)]
    (here,) = build_catalog(objects).backends
    assert re.fullmatch(r"be_shop_web_http_f[0-9a-f]{10}", here), here
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT, str(TESTS), json.dumps(DIGEST_DATA)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == here


# --- each feature's lines ---------------------------------------------------------------


def feature_lines(data: dict[str, str], *extra: dict[str, Any]) -> list[str]:
    """The lines of the section of one route ConfigMap shop/web with ``data``."""
    objects = [*backend_service("web", "10.0.0.1"), *extra]
    catalog = build_catalog([*objects, route_configmap("shop", "web", {"hosts": "a.b", **data})])
    assert catalog.rejected == []
    (name,) = featured(catalog)
    return lines_of(render(catalog).config, f"backend {name}")


def test_the_deny_rules() -> None:
    lines = feature_lines(
        {
            "rate-limit-rps": "10",
            "rate-limit-connections": "5",
            "max-body-size": "10m",
            "allow-sources": "10.0.0.0/8, 2001:db8::/32",
            "deny-sources": "10.9.0.0/16",
        }
    )
    assert lines[: 7 + 1] == [
        "balance roundrobin",
        "http-request deny deny_status 403 if !{ src 10.0.0.0/8 2001:db8::/32 }",
        "http-request deny deny_status 403 if { src 10.9.0.0/16 }",
        "stick-table type ipv6 size 1m expire 60s store http_req_rate(1s),conn_cur",
        "http-request track-sc0 src",
        "http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10 }",
        "http-request deny deny_status 429 if { sc_conn_cur(0) gt 5 }",
        "http-request deny deny_status 413 if { req.hdr_val(content-length) gt 10485760 }",
    ]


def test_a_rate_limit_alone_stores_the_rate_alone() -> None:
    lines = feature_lines({"rate-limit-rps": "7"})
    assert "stick-table type ipv6 size 1m expire 60s store http_req_rate(1s)" in lines
    assert not any("conn_cur" in line for line in lines)


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ({}, "max-age=31536000"),
        ({"hsts-max-age": "10m"}, "max-age=600"),
        (
            {"hsts-max-age": "1d", "hsts-include-subdomains": "true", "hsts-preload": "true"},
            "max-age=86400; includeSubDomains; preload",
        ),
        ({"hsts-include-subdomains": "false", "hsts-preload": "true"}, "max-age=31536000; preload"),
    ],
)
def test_hsts_carries_its_directives(data: dict[str, str], value: str) -> None:
    lines = feature_lines({"hsts": "true", **data})
    tls = "{ ssl_fc } || { var(txn.bw_https) -m bool }"  # the client's TLS, here or upstream
    assert f"http-response set-header Strict-Transport-Security '{value}' if {tls}" in lines


def test_redirects_double_the_percent_sign() -> None:
    lines = feature_lines({"redirect-to": "https://x.example/a%20b?q=%41", "redirect-code": "301"})
    assert "http-request redirect location 'https://x.example/a%%20b?q=%%41' code 301" in lines
    lines = feature_lines({"redirect-to": "http://x.example"})
    assert "http-request redirect location 'http://x.example' code 302" in lines
    lines = feature_lines({"app-root": "/app%20x"})
    assert "http-request redirect location '/app%%20x' code 302 if { path / }" in lines


def test_a_rewrite_of_one_path_is_one_rule() -> None:
    lines = feature_lines({"paths": "/foo", "rewrite-target": "/"})
    assert "http-request replace-path '^(?:/foo)(?:/(.*))?$' '/\\1'" in lines
    assert not any("bw_rewrite" in line for line in lines)
    lines = feature_lines({"rewrite-regex": "^/api(/|$)(.*)", "rewrite-target": "/v2/\\2"})
    assert "http-request replace-path '^/api(/|$)(.*)' '/v2/\\2'" in lines


def test_a_rewrite_of_several_paths_takes_the_first_that_matches_only() -> None:
    lines = feature_lines({"paths": "/ /a /bbb/c", "rewrite-target": "/new"})
    rewrite = [line for line in lines if "bw_rewrite" in line]
    assert rewrite == [
        "http-request set-var(txn.bw_rewrite) int(1) if !{ var(txn.bw_rewrite) -m found }"
        " { path_reg '^(?:/bbb/c|/a)(/.*)?$' }",
        "http-request set-var(txn.bw_rewrite) int(2) if !{ var(txn.bw_rewrite) -m found }"
        " { path_reg '^(/.*)$' }",
        "http-request replace-path '^(?:/bbb/c|/a)(/.*)?$' '/new\\1'"
        " if { var(txn.bw_rewrite) -m int 1 }",
        "http-request replace-path '^(/.*)$' '/new\\1' if { var(txn.bw_rewrite) -m int 2 }",
    ]


def test_error_pages_answer_haproxy_s_errors_and_the_servers() -> None:
    pages = {"503": "<h1>down 100% 'x'</h1>", "418": "<p>teapot</p>", "404": "<p>none</p>"}
    objects = [
        *backend_service("web", "10.0.0.1"),
        configmap("shop", "errors", pages),
        route_configmap("shop", "web", {"hosts": "a.b", "error-pages": "errors"}),
    ]
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    (name,) = featured(catalog)
    rendered = render(catalog)
    lines = lines_of(rendered.config, f"backend {name}")
    gen = rendered.generation_dir
    html = "'text/html; charset=utf-8'"
    for status, body in pages.items():
        page = f"{gen}/{page_file(body)}"
        assert rendered.generation_files[page_file(body)] == body
        answered = f"http-response return status {status} content-type {html} file {page}"
        assert f"{answered} if {{ status {status} }}" in lines
        made = f"http-error status {status} content-type {html} file {page}"
        assert (made in lines) == (int(status) in HTTP_ERROR_STATUSES)
    assert 418 not in HTTP_ERROR_STATUSES and {404, 503} <= HTTP_ERROR_STATUSES
    # The pages' text is in files, never in haproxy.cfg.
    assert "down 100%" not in rendered.config and "teapot" not in rendered.config


def test_a_ca_bundle_is_a_file_of_the_generation_directory() -> None:
    objects = [
        *backend_service("web", "10.0.0.1"),
        ca_secret("shop", "ca"),
        route_configmap(
            "shop",
            "web",
            {"hosts": "a.b", "backend-protocol": "https", "backend-ca": "secret/ca"},
        ),
    ]
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    rendered = render(catalog)
    pem = catalog.backends["be_shop_web_http"].options.ca_pem
    assert pem is not None and pem.strip() == CA.strip()
    assert rendered.generation_files[ca_file(pem)] == pem
    assert ca_file(pem).startswith("ca/")
    lines = lines_of(rendered.config, "backend be_shop_web_http")
    assert (
        "default-server ssl verify required ca-file"
        f" {rendered.generation_dir}/{ca_file(pem)} sni req.hdr(host),field(1,:) alpn http/1.1"
    ) in lines
    assert "BEGIN CERTIFICATE" not in rendered.config


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"backend-protocol": "h2"}, "default-server proto h2"),
        (
            {"backend-protocol": "h2", "health-check-path": "/h"},
            "default-server proto h2 check-proto h2",
        ),
        (
            {"backend-protocol": "https"},
            "default-server ssl verify none sni req.hdr(host),field(1,:) alpn http/1.1",
        ),
        (
            {"backend-protocol": "grpcs", "backend-sni": "api.internal"},
            "default-server ssl verify none sni str(api.internal) alpn h2",
        ),
        ({"backend-proxy-protocol": "v1"}, "default-server send-proxy"),
        ({"backend-proxy-protocol": "v2"}, "default-server send-proxy-v2"),
    ],
)
def test_how_haproxy_talks_to_the_servers(data: dict[str, str], line: str) -> None:
    catalog = build_catalog(
        [
            *backend_service("web", "10.0.0.1"),
            route_configmap("shop", "web", {"hosts": "a.b", **data}),
        ]
    )
    assert catalog.rejected == []
    assert line in lines_of(render(catalog).config, "backend be_shop_web_http")


def test_sticky_cookies_retries_and_timeouts() -> None:
    data = {
        "hosts": "a.b",
        "sticky-cookie": "BWID",
        "sticky-cookie-ttl": "2h",
        "sticky-cookie-secure": "true",
        "timeout-tunnel": "1h",
        "timeout-queue": "5s",
        "retry-on": "conn-failure 503",
    }
    catalog = build_catalog(
        [*backend_service("web", "10.0.0.1"), route_configmap("shop", "web", data)]
    )
    assert catalog.rejected == []
    lines = lines_of(render(catalog).config, "backend be_shop_web_http")
    assert lines[1:7] == [
        "timeout tunnel 1h",
        "timeout queue 5s",
        "retries 3",
        "option redispatch 1",
        "retry-on conn-failure 503",
        "cookie BWID insert indirect nocache dynamic httponly secure maxlife 2h",
    ]
    assert re.fullmatch(r"dynamic-cookie-key [0-9a-f]{16}", lines[7])


# --- canaries ---------------------------------------------------------------------------


def canary_catalog(data: dict[str, str]) -> Catalog:
    objects = [
        *backend_service("web", "10.0.0.1"),
        *backend_service("canary", "10.0.0.2"),
        *backend_service("other", "10.0.0.3"),
        route_configmap(
            "shop", "web", {"hosts": "www.example.com", "canary-service": "canary", **data}
        ),
        route_configmap("shop", "other", {"hosts": "other.example.com"}),
    ]
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    return catalog


OWN_RULE = "use_backend %[var(txn.bw_route),field(1,;)] if { var(txn.bw_route) -m found }"


def _key(catalog: Catalog) -> str:
    (route,) = [r for r in catalog.routes if r.canary is not None]
    assert route.canary is not None
    return route.canary.key()


def canary_rules(data: dict[str, str]) -> list[str]:
    """The frontend's canary rules, with the test of the route's canary written ROUTE."""
    catalog = canary_catalog(data)
    test = f"{{ var(txn.bw_route) -m end ;{_key(catalog)} }}"
    frontend = lines_of(render(catalog).config, "frontend bw_public")
    rules = [line for line in frontend if test in line]
    # Each rule tests the end of the route's map value (no parsing of it); they come
    # after the route lookup and before the route's own use_backend.
    assert rules and all(rule.startswith("use_backend ") for rule in rules)
    own = frontend.index(OWN_RULE)
    assert all(frontend.index(rule) < own for rule in rules)
    assert max(
        i for i, line in enumerate(frontend) if "txn.bw_route)" in line and "map_" in line
    ) < frontend.index(rules[0])
    return [rule.replace(test, "ROUTE") for rule in rules]


def test_a_canary_by_weight() -> None:
    assert canary_rules({"canary-weight": "20"}) == [
        "use_backend be_shop_canary_http if ROUTE { rand(100) -m int lt 20 }"
    ]


def test_a_canary_by_header_always_or_never() -> None:
    assert canary_rules({"canary-header": "X-Canary"}) == [
        "use_backend be_shop_canary_http if ROUTE { req.hdr(x-canary) -m str always }"
    ]


def test_a_canary_by_header_value() -> None:
    assert canary_rules({"canary-header": "X-Canary", "canary-header-value": "v2 beta"}) == [
        "use_backend be_shop_canary_http if ROUTE { req.hdr(x-canary) -m str -- 'v2 beta' }"
    ]


def test_a_canary_by_cookie() -> None:
    assert canary_rules({"canary-cookie": "canary"}) == [
        "use_backend be_shop_canary_http if ROUTE { req.cook(canary) -m str always }"
    ]


def test_the_header_decides_before_the_cookie_and_the_cookie_before_the_weight() -> None:
    rules = canary_rules({"canary-header": "X-C", "canary-cookie": "c", "canary-weight": "30"})
    assert rules == [
        "use_backend be_shop_canary_http if ROUTE { req.hdr(x-c) -m str always }",
        "use_backend be_shop_canary_http if ROUTE !{ req.hdr(x-c) -m str always never }"
        " { req.cook(c) -m str always }",
        "use_backend be_shop_canary_http if ROUTE !{ req.hdr(x-c) -m str always never }"
        " !{ req.cook(c) -m str always never } { rand(100) -m int lt 30 }",
    ]


def test_a_header_value_leaves_other_requests_to_the_cookie_and_the_weight() -> None:
    rules = canary_rules(
        {"canary-header": "X-C", "canary-header-value": "yes", "canary-weight": "5"}
    )
    assert rules == [
        "use_backend be_shop_canary_http if ROUTE { req.hdr(x-c) -m str -- 'yes' }",
        "use_backend be_shop_canary_http if ROUTE { rand(100) -m int lt 5 }",
    ]


def test_the_map_value_names_the_canary_of_canary_routes_only() -> None:
    catalog = canary_catalog({"canary-weight": "20"})
    exact, prefix = route_maps(catalog.routes)
    (route,) = [r for r in catalog.routes if r.canary is not None]
    assert route.canary is not None and re.fullmatch(r"k[0-9a-f]{10}", route.canary.key())
    assert prefix.splitlines() == [
        "other.example.com/ be_shop_other_http;-;-;-;-",
        f"www.example.com/ be_shop_web_http;-;-;-;-;{route.canary.key()}",
    ]
    assert exact == ""
    # The canary's own section is there, with its servers.
    config = render(catalog).config
    assert "server s1 10.0.0.2:8080" in lines_of(config, "backend be_shop_canary_http")


# --- backend options are the Service port's -------------------------------------------


def test_two_objects_with_other_service_options_conflict_and_the_first_keeps_them() -> None:
    catalog = _two_objects({"timeout-tunnel": "1h"}, {"timeout-tunnel": "2h"})
    assert [(r.object, r.reason) for r in catalog.rejected] == [
        (
            "ConfigMap shop/two",
            "backend options for shop/web conflict with ConfigMap shop/one, which keeps them",
        )
    ]
    assert [r.host for r in catalog.routes] == ["one.example.com"]
    assert catalog.backends["be_shop_web_http"].options.timeout_tunnel == "1h"


def test_the_same_service_options_with_and_without_features_serve_from_two_sections() -> None:
    catalog = _two_objects(
        {"timeout-tunnel": "1h", "rate-limit-rps": "10"}, {"timeout-tunnel": "1h"}
    )
    assert catalog.rejected == []
    (name,) = featured(catalog)
    assert {r.host: r.backend for r in catalog.routes} == {
        "one.example.com": name,
        "two.example.com": "be_shop_web_http",
    }
    for backend in catalog.backends.values():
        assert backend.options.timeout_tunnel == "1h"
    config = render(catalog).config
    assert "timeout tunnel 1h" in lines_of(config, f"backend {name}")
    assert "timeout tunnel 1h" in lines_of(config, "backend be_shop_web_http")


def test_an_object_without_options_takes_the_service_options_another_set() -> None:
    catalog = _two_objects({"timeout-tunnel": "1h", "rate-limit-rps": "10"}, {})
    assert catalog.rejected == []
    assert catalog.backends["be_shop_web_http"].options.timeout_tunnel == "1h"


def test_features_with_other_service_options_conflict_too() -> None:
    catalog = _two_objects({"rate-limit-rps": "10", "retries": "1"}, {"retries": "2"})
    assert [r.object for r in catalog.rejected] == ["ConfigMap shop/two"]
    assert "conflict with ConfigMap shop/one" in catalog.rejected[0].reason


# --- what is structural -----------------------------------------------------------------


def _structure(objects: list[dict[str, Any]]) -> tuple[RenderedConfig, Any]:
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    return render_shaped(catalog, None, {}, HAProxySettings(config_dir="/etc/bw", spare_backends=4))


def _after(
    live: RenderedConfig, layout: Any, objects: list[dict[str, Any]]
) -> tuple[RenderedConfig, Any]:
    """``objects`` rendered under the sections ``live`` holds, as the watcher renders a
    change that needs no reload."""
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    shape = place(catalog, shape_from_config(live.config))
    assert shape is not None
    return render_shaped(
        catalog, shape, layout, HAProxySettings(config_dir="/etc/bw", spare_backends=4)
    )


def _featured_objects(hosts: str, paths: str = "/", rps: str = "10") -> list[dict[str, Any]]:
    return [
        *backend_service("web", "10.0.0.1"),
        *backend_service("api", "10.0.0.2"),
        route_configmap("shop", "web", {"hosts": "www.example.com"}),
        route_configmap("shop", "api", {"hosts": hosts, "paths": paths, "rate-limit-rps": rps}),
    ]


def test_a_new_set_of_features_is_structural() -> None:
    live, layout = _structure(_featured_objects("api.example.com"))
    changed, changed_layout = _after(live, layout, _featured_objects("api.example.com", rps="20"))
    assert changed.structure_key != live.structure_key
    assert structure_of(changed.config, changed_layout) != structure_of(live.config, layout)


def test_a_first_set_of_features_is_structural() -> None:
    plain = [*_featured_objects("api.example.com")[:-1]]
    plain.append(route_configmap("shop", "api", {"hosts": "api.example.com"}))
    live, layout = _structure(plain)
    changed, changed_layout = _after(live, layout, _featured_objects("api.example.com"))
    assert changed.structure_key != live.structure_key
    assert structure_of(changed.config, changed_layout) != structure_of(live.config, layout)


@pytest.mark.parametrize(
    ("hosts", "paths"),
    [
        ("api2.example.com", "/"),
        ("api.example.com api3.example.com", "/"),
        ("api.example.com", "/v1 /v2"),
    ],
    ids=["moved", "another-host", "other-paths"],
)
def test_the_same_features_on_other_hosts_or_paths_are_not_structural(
    hosts: str, paths: str
) -> None:
    live, layout = _structure(_featured_objects("api.example.com"))
    changed, changed_layout = _after(live, layout, _featured_objects(hosts, paths))
    assert changed.structure_key == live.structure_key
    assert structure_of(changed.config, changed_layout) == structure_of(live.config, layout)
    assert changed.generation_dir != live.generation_dir  # the maps changed


def test_a_featured_section_takes_the_options_a_later_object_gives_the_port() -> None:
    # The first object has route features and no backend options; the second sets one
    # for the Service port: every section of the port has it, whatever the order.
    first = route_configmap(
        "shop", "one", {"service": "web", "hosts": "a.example.com", "hsts": "true"}
    )
    second = route_configmap(
        "shop", "two", {"service": "web", "hosts": "b.example.com", "timeout-tunnel": "1h"}
    )
    second["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        first,
        second,
    ]
    catalog = build_catalog(objects)
    assert catalog.rejected == []
    tunnels = {name: b.options.timeout_tunnel for name, b in catalog.backends.items()}
    assert len(tunnels) == 2 and set(tunnels.values()) == {"1h"}, tunnels
