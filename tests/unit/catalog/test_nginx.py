"""ingress-nginx annotations (catalog/nginx.py): each mapping, each refusal, the
reasons of what is ignored, and the table that documents them."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.catalog.model import Rejected
from breakwater.catalog.nginx import (
    ANNOTATIONS,
    CANARY_REASON,
    EMPTY_REASON,
    NGINX_PREFIX,
    SNIPPET_REASON,
    UNKNOWN_REASON,
    Translation,
    annotation_table,
    translate,
)
from breakwater.catalog.options import OPTION

P = NGINX_PREFIX
DOC = Path(__file__).resolve().parents[3] / "docs" / "ingress-nginx.md"


def nginx(**annotations: str) -> dict[str, str]:
    """Annotations by short name, ``_`` for ``-``."""
    return {P + name.replace("_", "-"): value for name, value in annotations.items()}


def tr(namespace: str | None = "shop", **annotations: str) -> Translation:
    return translate(nginx(**annotations), namespace=namespace)


def ignored(translation: Translation) -> dict[str, str]:
    return {name[len(P) :]: reason for name, reason in translation.ignored}


def rejects(match: str, **annotations: str) -> None:
    with pytest.raises(Rejected, match=match):
        tr(**annotations)


# --- the basics -------------------------------------------------------------------


def test_nothing_gives_nothing() -> None:
    assert tr() == Translation({}, (), False, False, None)


def test_only_nginx_keys_are_read_and_input_is_untouched() -> None:
    given = {
        "breakwater.io/cache": "true",
        "kubernetes.io/ingress.class": "nginx",
        "nginx.ingress.kubernetes.io": "x",  # no '/': not the prefix
        P + "proxy-body-size": "8m",
    }
    copy = dict(given)
    first = translate(given)
    assert first == translate(given)  # pure
    assert given == copy
    assert first.values == {"max-body-size": "8m"}
    assert first.ignored == ()


@pytest.mark.parametrize(
    "name",
    [
        "configuration-snippet",
        "server-snippet",
        "auth-snippet",
        "stream-snippet",
        "modsecurity-snippet",
        "location-snippet",  # not documented: any *-snippet
    ],
)
def test_snippets_are_never_executed(name: str) -> None:
    t = translate({P + name: "return 200 'pwned';"})
    assert t.values == {}
    assert t.ignored == ((P + name, SNIPPET_REASON),)
    assert "CVE-2025-1974" in SNIPPET_REASON


def test_snippet_on_a_canary_keeps_the_snippet_reason() -> None:
    t = tr(canary="true", server_snippet="x")
    assert ignored(t)["server-snippet"] == SNIPPET_REASON


def test_unknown_annotation_is_ignored() -> None:
    t = tr(some_future_thing="1", hsts_something="1")
    assert ignored(t) == {"some-future-thing": UNKNOWN_REASON, "hsts-something": UNKNOWN_REASON}


def test_hsts_keys_are_read_per_ingress() -> None:
    # ingress-nginx's ConfigMap keys, read from the Ingress's annotations here.
    t = tr(hsts="true", hsts_max_age="600", hsts_include_subdomains="true")
    assert t.values == {"hsts": "true", "hsts-max-age": "600", "hsts-include-subdomains": "true"}
    assert ignored(tr(hsts_preload="true")) == {
        "hsts-preload": 'has no effect without hsts: "true"'
    }


def test_unsupported_annotation_is_ignored_with_its_note() -> None:
    t = tr(auth_url="https://auth.example/check", ssl_passthrough="true")
    notes = {a.name: a.notes for a in ANNOTATIONS}
    assert ignored(t) == {
        "auth-url": notes["auth-url"],
        "ssl-passthrough": notes["ssl-passthrough"],
    }
    assert t.values == {}


def test_ignored_is_sorted_by_name() -> None:
    t = tr(zzz="1", aaa="1", mirror_target="https://x", affinity_mode="balanced")
    names = [name for name, _ in t.ignored]
    assert names == sorted(names)
    assert all(name.startswith(P) for name in names)


def test_empty_value_is_ignored() -> None:
    t = tr(proxy_body_size="  ", limit_rps="")
    assert t.values == {}
    assert ignored(t) == {"proxy-body-size": EMPTY_REASON, "limit-rps": EMPTY_REASON}


def test_values_are_trimmed() -> None:
    assert tr(proxy_body_size=" 8m\n").values == {"max-body-size": "8m"}


# --- HTTPS redirect ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        # ssl-redirect true is the default: the catalog redirects the hosts with TLS.
        ({"ssl_redirect": "true"}, None),
        ({"ssl_redirect": "True"}, None),  # Go's ParseBool
        ({"force_ssl_redirect": "true"}, "true"),
        ({"ssl_redirect": "false"}, "false"),
        ({"ssl_redirect": "false", "force_ssl_redirect": "true"}, "true"),
        # force false keeps the default (TLS hosts), as ingress-nginx does
        ({"ssl_redirect": "1", "force_ssl_redirect": "0"}, None),
    ],
)
def test_https_redirect(annotations: dict[str, str], expected: str | None) -> None:
    values = tr(**annotations).values
    assert values == ({"https-redirect": expected} if expected else {})


def test_bad_boolean_rejects() -> None:
    rejects(
        r"annotation nginx.ingress.kubernetes.io/ssl-redirect 'yes' is not a boolean",
        ssl_redirect="yes",
    )


def test_preserve_trailing_slash() -> None:
    assert tr(preserve_trailing_slash="true").ignored == ()
    assert (
        "trailing slash included"
        in ignored(tr(preserve_trailing_slash="false"))["preserve-trailing-slash"]
    )


# --- rewrite and regex paths --------------------------------------------------------


def test_rewrite_target_converts_groups_and_makes_paths_regexes() -> None:
    t = tr(rewrite_target="/api/$1/x/$2")
    assert t.rewrite_target == "/api/\\1/x/\\2"
    assert t.use_regex is True
    assert t.values == {}


def test_rewrite_target_plain() -> None:
    t = tr(rewrite_target="/", use_regex="false")
    assert (t.rewrite_target, t.use_regex) == ("/", True)


def test_use_regex_alone() -> None:
    t = tr(use_regex="true")
    assert (t.use_regex, t.rewrite_target) == (True, None)
    assert tr(use_regex="false").use_regex is False


@pytest.mark.parametrize("target", ["$1", "/a b", "/$0", "/${1}", "/a?b=1", "/x'y", "/a\\1"])
def test_bad_rewrite_target_rejects(target: str) -> None:
    rejects(
        "annotation nginx.ingress.kubernetes.io/rewrite-target .* is not a path",
        rewrite_target=target,
    )


def test_app_root() -> None:
    assert tr(app_root="/app").values == {"app-root": "/app"}
    rejects("annotation nginx.ingress.kubernetes.io/app-root", app_root="https://x/app")
    rejects("annotation nginx.ingress.kubernetes.io/app-root", app_root="/a/../b")


# --- body size and timeouts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [("8m", "8m"), ("8M", "8m"), ("512k", "512k"), ("1g", "1g"), ("1024", "1024"), ("08m", "8m")],
)
def test_proxy_body_size(size: str, expected: str) -> None:
    assert tr(proxy_body_size=size).values == {"max-body-size": expected}


def test_proxy_body_size_zero_is_no_limit() -> None:
    t = tr(proxy_body_size="0")
    assert (t.values, t.ignored) == ({}, ())


@pytest.mark.parametrize("size", ["12x", "8mb", "-1", "1.5m", "8 m", "2000g"])
def test_bad_proxy_body_size_rejects(size: str) -> None:
    rejects("annotation nginx.ingress.kubernetes.io/proxy-body-size .* not", proxy_body_size=size)


def test_bad_proxy_body_size_message() -> None:
    rejects(
        r"^annotation nginx.ingress.kubernetes.io/proxy-body-size '12x' is not a size",
        proxy_body_size="12x",
    )


def test_timeouts() -> None:
    t = tr(proxy_connect_timeout="5", proxy_read_timeout="120", proxy_send_timeout="30")
    assert t.values == {
        "timeout-connect": "5s",
        "timeout-server": "120s",
        "timeout-tunnel": "120s",
    }
    assert tr(proxy_send_timeout="300").values == {
        "timeout-server": "300s",
        "timeout-tunnel": "300s",
    }


@pytest.mark.parametrize("value", ["0", "-5", "5s", "1.5", "99999999"])
def test_bad_timeout_rejects(value: str) -> None:
    rejects("annotation nginx.ingress.kubernetes.io/proxy-read-timeout", proxy_read_timeout=value)


# --- session affinity ---------------------------------------------------------------


def test_affinity_cookie_defaults_to_ingresscookie() -> None:
    assert tr(affinity="cookie").values == {"sticky-cookie": "INGRESSCOOKIE"}


def test_affinity_cookie_settings() -> None:
    t = tr(
        affinity="cookie",
        session_cookie_name="route",
        session_cookie_max_age="3600",
        session_cookie_expires="60",
        session_cookie_secure="true",
        session_cookie_path="/",
        session_cookie_samesite="Lax",
        session_cookie_change_on_failure="true",
        affinity_mode="persistent",
        affinity_canary_behavior="legacy",
    )
    assert t.values == {
        "sticky-cookie": "route",
        "sticky-cookie-ttl": "3600s",
        "sticky-cookie-secure": "true",
    }
    assert set(ignored(t)) == {
        "session-cookie-expires",
        "session-cookie-path",
        "session-cookie-samesite",
    }
    assert "max-age" in ignored(t)["session-cookie-expires"]


def test_session_cookie_expires_alone() -> None:
    t = tr(affinity="cookie", session_cookie_expires="172800", session_cookie_secure="false")
    assert t.values == {
        "sticky-cookie": "INGRESSCOOKIE",
        "sticky-cookie-ttl": "172800s",
        "sticky-cookie-secure": "false",
    }


def test_affinity_values_breakwater_does_not_follow_are_reported() -> None:
    t = tr(
        affinity="cookie",
        affinity_mode="balanced",
        affinity_canary_behavior="sticky",
        session_cookie_change_on_failure="false",
    )
    assert set(ignored(t)) == {
        "affinity-mode",
        "affinity-canary-behavior",
        "session-cookie-change-on-failure",
    }


def test_session_cookie_without_affinity_is_ignored() -> None:
    t = tr(session_cookie_name="route", session_cookie_max_age="10")
    assert t.values == {}
    assert set(ignored(t).values()) == {"has no effect without affinity: cookie"}


@pytest.mark.parametrize(
    "annotations",
    [
        {"affinity": "ip"},
        {"affinity": "cookie", "session_cookie_name": "a;b"},
        {"affinity": "cookie", "session_cookie_name": "a\x00b"},
        {"affinity": "cookie", "session_cookie_max_age": "-1"},
        {"affinity": "cookie", "session_cookie_max_age": "0"},
        {"affinity": "cookie", "affinity_mode": "random"},
        {"affinity": "cookie", "affinity_canary_behavior": "always"},
    ],
)
def test_bad_affinity_rejects(annotations: dict[str, str]) -> None:
    rejects("^annotation nginx.ingress.kubernetes.io/", **annotations)


# --- canary -------------------------------------------------------------------------


def test_canary_weight() -> None:
    t = tr(canary="true", canary_weight="20")
    assert t.canary is True
    assert t.values == {"canary-weight": "20"}


def test_canary_alone() -> None:
    t = tr(canary="true")
    assert (t.canary, t.values, t.ignored) == (True, {}, ())


def test_canary_weight_total() -> None:
    assert tr(canary="true", canary_weight="250", canary_weight_total="1000").values == {
        "canary-weight": "25"
    }
    assert tr(canary="true", canary_weight="20", canary_weight_total="100").ignored == ()
    # balancer.lua: a total of 100 or less is 100.
    t = tr(canary="true", canary_weight="20", canary_weight_total="50")
    assert t.values == {"canary-weight": "20"}
    assert set(ignored(t)) == {"canary-weight-total"}


@pytest.mark.parametrize(
    ("weight", "total"),
    [("1", "1000"), ("150", "100"), ("-1", "100"), ("ten", "100"), ("5", "x")],
)
def test_bad_canary_weight_rejects(weight: str, total: str) -> None:
    rejects(
        "^annotation nginx.ingress.kubernetes.io/canary-weight",
        canary="true",
        canary_weight=weight,
        canary_weight_total=total,
    )


def test_canary_by_header_and_cookie() -> None:
    t = tr(canary="true", canary_by_header="X-Canary", canary_by_cookie="canary")
    assert t.values == {"canary-header": "X-Canary", "canary-cookie": "canary"}
    t = tr(canary="true", canary_by_header="X-Canary", canary_by_header_value="beta-1")
    assert t.values == {"canary-header": "X-Canary", "canary-header-value": "beta-1"}


def test_canary_by_header_pattern_is_not_supported() -> None:
    t = tr(canary="true", canary_by_header="X-Canary", canary_by_header_pattern="^beta.*")
    assert t.values == {}
    assert set(ignored(t)) == {"canary-by-header", "canary-by-header-pattern"}
    # With a value, the pattern is ignored by ingress-nginx itself.
    t = tr(
        canary="true",
        canary_by_header="X-Canary",
        canary_by_header_value="on",
        canary_by_header_pattern="^beta.*",
    )
    assert t.values == {"canary-header": "X-Canary", "canary-header-value": "on"}
    assert set(ignored(t)) == {"canary-by-header-pattern"}


def test_canary_header_value_without_header_is_ignored() -> None:
    t = tr(canary="true", canary_by_header_value="on")
    assert (t.values, set(ignored(t))) == ({}, {"canary-by-header-value"})


@pytest.mark.parametrize(
    "annotations",
    [
        {"canary_by_header": "X-Canary", "canary_by_header_value": "a\nb"},
        {"canary_by_header": "X-Canary", "canary_by_header_value": "a\x1bb"},
        {"canary_by_header": "X-Canary", "canary_by_header_value": "it's"},
        {"canary_by_header": "X Canary"},
        {"canary_by_header": "X-Canary\r\nX-Other"},
        {"canary_by_cookie": "a=b"},
    ],
)
def test_bad_canary_header_or_cookie_rejects(annotations: dict[str, str]) -> None:
    rejects("^annotation nginx.ingress.kubernetes.io/canary-by-", canary="true", **annotations)


def test_canary_rules_without_canary_are_ignored() -> None:
    t = tr(canary_weight="20", canary_by_header="X-Canary")
    assert (t.canary, t.values) == (False, {})
    assert set(ignored(t)) == {"canary-weight", "canary-by-header"}
    assert all("canary" in reason for reason in ignored(t).values())
    assert tr(canary="false", canary_weight="20").values == {}


def test_canary_takes_the_main_ingress_settings_but_affinity() -> None:
    t = tr(
        canary="true",
        canary_weight="10",
        proxy_body_size="8m",
        rewrite_target="/$1",
        use_regex="true",
        affinity="cookie",
        load_balance="round_robin",
    )
    assert t.values == {
        "canary-weight": "10",
        "sticky-cookie": "INGRESSCOOKIE",
        "balance": "roundrobin",
    }
    assert (t.use_regex, t.rewrite_target) == (False, None)
    assert ignored(t) == {
        "proxy-body-size": CANARY_REASON,
        "rewrite-target": CANARY_REASON,
        "use-regex": CANARY_REASON,
    }


def test_bad_value_on_a_canary_of_an_ignored_annotation_does_not_reject() -> None:
    t = tr(canary="true", proxy_body_size="12x")
    assert ignored(t) == {"proxy-body-size": CANARY_REASON}


# --- client sources -----------------------------------------------------------------


def test_source_ranges() -> None:
    t = tr(
        whitelist_source_range="10.0.0.0/24, 172.10.0.1,2001:db8::/32",
        denylist_source_range="10.0.0.9",
    )
    assert t.values == {
        "allow-sources": "10.0.0.0/24 172.10.0.1/32 2001:db8::/32",
        "deny-sources": "10.0.0.9/32",
    }


def test_host_bits_are_dropped_as_nginx_does() -> None:
    assert tr(allowlist_source_range="10.0.0.1/24").values == {"allow-sources": "10.0.0.0/24"}


def test_allowlist_wins_over_whitelist() -> None:
    t = tr(allowlist_source_range="10.0.0.0/8", whitelist_source_range="192.168.0.0/16")
    assert t.values == {"allow-sources": "10.0.0.0/8"}
    assert set(ignored(t)) == {"whitelist-source-range"}


@pytest.mark.parametrize(
    "value", ["10.0.0.0/33", "10.0.0", "300.1.1.1", "example.com", "010.0.0.1", "10.0.0.0/8;"]
)
def test_bad_cidr_rejects(value: str) -> None:
    rejects(
        "^annotation nginx.ingress.kubernetes.io/whitelist-source-range .* is not an IP",
        whitelist_source_range=f"192.168.0.0/16,{value}",
    )
    rejects(
        "^annotation nginx.ingress.kubernetes.io/denylist-source-range",
        denylist_source_range=value,
    )


def test_only_commas_is_empty() -> None:
    t = tr(denylist_source_range=", ,")
    assert (t.values, ignored(t)) == ({}, {"denylist-source-range": EMPTY_REASON})


# --- backend protocol and TLS to servers --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTP", "http"),
        ("HTTPS", "https"),
        ("GRPC", "grpc"),
        ("GRPCS", "grpcs"),
        ("https", "https"),
    ],
)
def test_backend_protocol(value: str, expected: str) -> None:
    assert tr(backend_protocol=value).values == {"backend-protocol": expected}


@pytest.mark.parametrize("value", ["AUTO_HTTP", "FCGI"])
def test_backend_protocol_not_supported(value: str) -> None:
    t = tr(backend_protocol=value)
    assert (t.values, set(ignored(t))) == ({}, {"backend-protocol"})


def test_bad_backend_protocol_rejects() -> None:
    rejects(
        "^annotation nginx.ingress.kubernetes.io/backend-protocol 'AJP'", backend_protocol="AJP"
    )


def test_proxy_ssl_verify_with_secret_is_backend_ca() -> None:
    t = tr(
        backend_protocol="HTTPS",
        proxy_ssl_secret="shop/backend-ca",
        proxy_ssl_verify="on",
        proxy_ssl_name="api.internal",
        proxy_ssl_server_name="on",
    )
    assert t.values == {
        "backend-protocol": "https",
        "backend-ca": "secret/backend-ca",
        "backend-sni": "api.internal",
    }
    assert t.ignored == ()


def test_proxy_ssl_secret_without_verify_is_only_a_client_certificate() -> None:
    t = tr(backend_protocol="GRPCS", proxy_ssl_secret="shop/client", proxy_ssl_verify="off")
    assert t.values == {"backend-protocol": "grpcs"}
    assert set(ignored(t)) == {"proxy-ssl-secret"}


def test_proxy_ssl_verify_without_secret_is_ignored() -> None:
    t = tr(backend_protocol="HTTPS", proxy_ssl_verify="on", proxy_ssl_server_name="off")
    assert set(ignored(t)) == {"proxy-ssl-verify", "proxy-ssl-server-name"}


def test_proxy_ssl_without_tls_backend_is_ignored() -> None:
    t = tr(proxy_ssl_secret="shop/ca", proxy_ssl_verify="on", proxy_ssl_name="a.b")
    assert t.values == {}
    assert set(ignored(t)) == {"proxy-ssl-secret", "proxy-ssl-verify", "proxy-ssl-name"}


def test_proxy_ssl_secret_of_another_namespace_rejects() -> None:
    rejects(
        "^annotation nginx.ingress.kubernetes.io/proxy-ssl-secret 'kube-system/ca' is in"
        " another namespace",
        backend_protocol="HTTPS",
        proxy_ssl_secret="kube-system/ca",
        proxy_ssl_verify="on",
    )


def test_proxy_ssl_secret_namespace_must_be_known() -> None:
    with pytest.raises(Rejected, match="namespace"):
        tr(None, backend_protocol="HTTPS", proxy_ssl_secret="shop/ca", proxy_ssl_verify="on")
    # A bare name is the Ingress's namespace.
    t = tr(None, backend_protocol="HTTPS", proxy_ssl_secret="ca", proxy_ssl_verify="on")
    assert t.values["backend-ca"] == "secret/ca"


@pytest.mark.parametrize(
    "annotations",
    [
        {"proxy_ssl_secret": "shop/Bad_Name", "proxy_ssl_verify": "on"},
        {"proxy_ssl_verify": "yes"},
        {"proxy_ssl_name": "*.internal"},
        {"proxy_ssl_name": "a b"},
        {"proxy_ssl_server_name": "true"},
    ],
)
def test_bad_proxy_ssl_rejects(annotations: dict[str, str]) -> None:
    rejects(
        "^annotation nginx.ingress.kubernetes.io/proxy-ssl-",
        backend_protocol="HTTPS",
        **annotations,
    )


# --- rate limits --------------------------------------------------------------------


def test_rate_limits() -> None:
    t = tr(limit_rps="10", limit_connections="5")
    assert t.values == {"rate-limit-rps": "10", "rate-limit-connections": "5"}


def test_limit_rpm() -> None:
    assert tr(limit_rpm="600").values == {"rate-limit-rps": "10"}
    assert tr(limit_rpm="600", limit_rps="5").values == {"rate-limit-rps": "5"}
    assert tr(limit_rpm="120", limit_rps="5").values == {"rate-limit-rps": "2"}
    t = tr(limit_rpm="100", limit_rps="5")
    assert t.values == {"rate-limit-rps": "5"}
    assert set(ignored(t)) == {"limit-rpm"}


def test_zero_is_no_limit() -> None:
    t = tr(limit_rps="0", limit_connections="0", limit_rpm="0")
    assert (t.values, t.ignored) == ({}, ())


def test_rate_limit_extras_are_ignored() -> None:
    t = tr(limit_rps="10", limit_burst_multiplier="3", limit_whitelist="10.0.0.0/8")
    assert t.values == {"rate-limit-rps": "10"}
    assert set(ignored(t)) == {"limit-burst-multiplier", "limit-whitelist"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit_rps", "-1"),
        ("limit_rps", "1.5"),
        ("limit_rps", "ten"),
        ("limit_rps", "2000000"),
        ("limit_connections", "-3"),
        ("limit_rpm", "-60"),
    ],
)
def test_bad_rate_limit_rejects(name: str, value: str) -> None:
    rejects(
        f"^annotation nginx.ingress.kubernetes.io/{name.replace('_', '-')} '{value}'",
        **{name: value},
    )


# --- redirects ----------------------------------------------------------------------


def test_permanent_redirect() -> None:
    assert tr(permanent_redirect="https://example.com/new").values == {
        "redirect-to": "https://example.com/new",
        "redirect-code": "301",
    }
    assert tr(permanent_redirect="http://a.b", permanent_redirect_code="308").values == {
        "redirect-to": "http://a.b",
        "redirect-code": "308",
    }


def test_temporal_redirect_wins() -> None:
    t = tr(
        temporal_redirect="https://a.example/",
        temporal_redirect_code="307",
        permanent_redirect="https://b.example/",
        permanent_redirect_code="308",
    )
    assert t.values == {"redirect-to": "https://a.example/", "redirect-code": "307"}
    assert set(ignored(t)) == {"permanent-redirect", "permanent-redirect-code"}
    assert tr(temporal_redirect="https://a.example/").values["redirect-code"] == "302"


def test_redirect_code_without_redirect_is_ignored() -> None:
    t = tr(permanent_redirect_code="308", temporal_redirect_code="307")
    assert (t.values, set(ignored(t))) == (
        {},
        {"permanent-redirect-code", "temporal-redirect-code"},
    )


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>",
        "ftp://example.com/",
        "//example.com/",
        "/relative",
        "https://example.com/a b",
        "https://example.com/\r\nSet-Cookie: x",
    ],
)
def test_odd_scheme_redirect_rejects(url: str) -> None:
    rejects("^annotation nginx.ingress.kubernetes.io/permanent-redirect ", permanent_redirect=url)
    rejects("^annotation nginx.ingress.kubernetes.io/temporal-redirect ", temporal_redirect=url)


@pytest.mark.parametrize(
    ("kind", "code"),
    [("permanent", "300"), ("permanent", "200"), ("temporal", "308"), ("temporal", "x")],
)
def test_bad_redirect_code_rejects(kind: str, code: str) -> None:
    rejects(
        f"^annotation nginx.ingress.kubernetes.io/{kind}-redirect-code",
        **{f"{kind}_redirect": "https://a.b", f"{kind}_redirect_code": code},
    )


# --- CORS ---------------------------------------------------------------------------


def test_cors_defaults_are_the_option_table_s() -> None:
    assert tr(enable_cors="true").values == {"cors": "true"}


def test_cors_settings() -> None:
    t = tr(
        enable_cors="true",
        cors_allow_origin="https://origin-site.com:4443, http://origin-site.com",
        cors_allow_methods="PUT, GET, POST, OPTIONS",
        cors_allow_headers="X-Forwarded-For, X-app123-XPTO",
        cors_expose_headers="*, X-CustomResponseHeader",
        cors_allow_credentials="false",
        cors_max_age="600",
    )
    assert t.values == {
        "cors": "true",
        "cors-allow-origin": "https://origin-site.com:4443 http://origin-site.com",
        "cors-allow-methods": "PUT GET POST OPTIONS",
        "cors-allow-headers": "X-Forwarded-For X-app123-XPTO",
        "cors-expose-headers": "* X-CustomResponseHeader",
        "cors-allow-credentials": "false",
        "cors-max-age": "600",
    }
    assert t.ignored == ()


def test_cors_star_anywhere_is_every_origin() -> None:
    assert tr(enable_cors="true", cors_allow_origin="https://a.b, *").values == {
        "cors": "true",
        "cors-allow-origin": "*",
    }


def test_cors_without_enable_is_ignored() -> None:
    t = tr(cors_allow_origin="https://a.b", cors_max_age="5")
    assert t.values == {}
    assert set(ignored(t)) == {"cors-allow-origin", "cors-max-age"}
    assert tr(enable_cors="false", cors_max_age="5").values == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cors_allow_origin", "https://*.example.com"),
        ("cors_allow_origin", "null"),
        ("cors_allow_origin", "https://a.b/path"),
        ("cors_allow_origin", "javascript:alert(1)"),
        ("cors_allow_origin", "myprotocol://example.org:1199"),
        ("cors_allow_methods", "GET, PO ST"),
        ("cors_allow_methods", "GET;DELETE"),
        ("cors_allow_headers", "X-Ok, X-Bad\x07"),
        ("cors_allow_headers", "X-A:b"),
        ("cors_expose_headers", "X-A\nX-B"),
        ("cors_allow_credentials", "maybe"),
        ("cors_max_age", "-1"),
        ("cors_max_age", "1d"),
    ],
)
def test_bad_cors_rejects(name: str, value: str) -> None:
    rejects(
        f"^annotation nginx.ingress.kubernetes.io/{name.replace('_', '-')}",
        enable_cors="true",
        **{name: value},
    )


# --- load balancing -----------------------------------------------------------------


def test_load_balance() -> None:
    assert tr(load_balance="round_robin").values == {"balance": "roundrobin"}
    t = tr(load_balance="ewma")
    assert (t.values, set(ignored(t))) == ({}, {"load-balance"})
    rejects("^annotation nginx.ingress.kubernetes.io/load-balance", load_balance="fastest")


# --- the table ----------------------------------------------------------------------

#: For every annotation the table says is translated, annotations that use it (with
#: what it needs), and whether it changes the translation (False: the value is
#: Breakwater's own behaviour, accepted as is).
SAMPLES: dict[str, tuple[dict[str, str], bool]] = {
    "app-root": ({"app-root": "/app"}, True),
    "affinity": ({"affinity": "cookie"}, True),
    "affinity-mode": ({"affinity": "cookie", "affinity-mode": "persistent"}, False),
    "affinity-canary-behavior": (
        {"affinity": "cookie", "affinity-canary-behavior": "legacy"},
        False,
    ),
    "backend-protocol": ({"backend-protocol": "GRPC"}, True),
    "canary": ({"canary": "true"}, True),
    "canary-by-header": ({"canary": "true", "canary-by-header": "X-Canary"}, True),
    "canary-by-header-value": (
        {"canary": "true", "canary-by-header": "X-Canary", "canary-by-header-value": "yes"},
        True,
    ),
    "canary-by-cookie": ({"canary": "true", "canary-by-cookie": "canary"}, True),
    "canary-weight": ({"canary": "true", "canary-weight": "30"}, True),
    "canary-weight-total": (
        {"canary": "true", "canary-weight": "30", "canary-weight-total": "1000"},
        True,
    ),
    "enable-cors": ({"enable-cors": "true"}, True),
    "hsts": ({"hsts": "true"}, True),
    "hsts-max-age": ({"hsts": "true", "hsts-max-age": "60"}, True),
    "hsts-include-subdomains": ({"hsts": "true", "hsts-include-subdomains": "true"}, True),
    "hsts-preload": ({"hsts": "true", "hsts-preload": "true"}, True),
    "cors-allow-origin": ({"enable-cors": "true", "cors-allow-origin": "https://a.b"}, True),
    "cors-allow-methods": ({"enable-cors": "true", "cors-allow-methods": "GET"}, True),
    "cors-allow-headers": ({"enable-cors": "true", "cors-allow-headers": "X-A"}, True),
    "cors-expose-headers": ({"enable-cors": "true", "cors-expose-headers": "X-B"}, True),
    "cors-allow-credentials": (
        {"enable-cors": "true", "cors-allow-credentials": "false"},
        True,
    ),
    "cors-max-age": ({"enable-cors": "true", "cors-max-age": "60"}, True),
    "force-ssl-redirect": ({"force-ssl-redirect": "true"}, True),
    "limit-connections": ({"limit-connections": "10"}, True),
    "limit-rps": ({"limit-rps": "10"}, True),
    "limit-rpm": ({"limit-rpm": "120"}, True),
    "permanent-redirect": ({"permanent-redirect": "https://a.b/"}, True),
    "permanent-redirect-code": (
        {"permanent-redirect": "https://a.b/", "permanent-redirect-code": "308"},
        True,
    ),
    "temporal-redirect": ({"temporal-redirect": "https://a.b/"}, True),
    "temporal-redirect-code": (
        {"temporal-redirect": "https://a.b/", "temporal-redirect-code": "307"},
        True,
    ),
    "preserve-trailing-slash": ({"preserve-trailing-slash": "true"}, False),
    "proxy-body-size": ({"proxy-body-size": "1m"}, True),
    "proxy-connect-timeout": ({"proxy-connect-timeout": "3"}, True),
    "proxy-send-timeout": ({"proxy-send-timeout": "90"}, True),
    "proxy-read-timeout": ({"proxy-read-timeout": "90"}, True),
    "proxy-ssl-secret": (
        {"backend-protocol": "HTTPS", "proxy-ssl-secret": "shop/ca", "proxy-ssl-verify": "on"},
        True,
    ),
    "proxy-ssl-name": ({"backend-protocol": "HTTPS", "proxy-ssl-name": "a.internal"}, True),
    "proxy-ssl-verify": (
        {"backend-protocol": "HTTPS", "proxy-ssl-secret": "shop/ca", "proxy-ssl-verify": "on"},
        True,
    ),
    "proxy-ssl-server-name": (
        {"backend-protocol": "HTTPS", "proxy-ssl-server-name": "on"},
        False,
    ),
    "rewrite-target": ({"rewrite-target": "/$1"}, True),
    "session-cookie-change-on-failure": (
        {"affinity": "cookie", "session-cookie-change-on-failure": "true"},
        False,
    ),
    "session-cookie-expires": ({"affinity": "cookie", "session-cookie-expires": "60"}, True),
    "session-cookie-max-age": ({"affinity": "cookie", "session-cookie-max-age": "60"}, True),
    "session-cookie-name": ({"affinity": "cookie", "session-cookie-name": "route"}, True),
    "session-cookie-secure": ({"affinity": "cookie", "session-cookie-secure": "true"}, True),
    "ssl-redirect": ({"ssl-redirect": "false"}, True),
    "load-balance": ({"load-balance": "round_robin"}, True),
    "denylist-source-range": ({"denylist-source-range": "10.0.0.0/8"}, True),
    "whitelist-source-range": ({"whitelist-source-range": "10.0.0.0/8"}, True),
    "allowlist-source-range": ({"allowlist-source-range": "10.0.0.0/8"}, True),
    "use-regex": ({"use-regex": "true"}, True),
}


def test_every_translated_annotation_has_a_sample() -> None:
    translated = {a.name for a in ANNOTATIONS if a.support != "no"}
    assert set(SAMPLES) == translated


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_table_does_not_lie(name: str) -> None:
    """Each annotation said to be translated is: not ignored, and (unless its sample
    value is Breakwater's own behaviour) it changes the translation."""
    sample, changes = SAMPLES[name]
    full = {P + k: v for k, v in sample.items()}
    with_it = translate(full, namespace="shop")
    assert ignored(with_it) == {}
    without = translate({k: v for k, v in full.items() if k != P + name}, namespace="shop")
    assert (with_it != without) is changes


def test_translated_values_are_accepted_by_the_option_table() -> None:
    """Every key translate writes is an option, and its parser takes the value."""
    for sample, _ in SAMPLES.values():
        values = translate({P + k: v for k, v in sample.items()}, namespace="shop").values
        for key, value in values.items():
            assert key in OPTION, key
            OPTION[key].value(value)


def test_every_unsupported_annotation_is_ignored_with_a_reason() -> None:
    for annotation in ANNOTATIONS:
        if annotation.support != "no":
            continue
        t = translate({P + annotation.name: "1"})
        assert t.values == {}, annotation.name
        assert len(t.ignored) == 1
        reason = t.ignored[0][1]
        expected = SNIPPET_REASON if annotation.name.endswith("-snippet") else annotation.notes
        assert reason == expected


def test_table_entries() -> None:
    names = [a.name for a in ANNOTATIONS]
    assert len(names) == len(set(names))
    for annotation in ANNOTATIONS:
        assert annotation.support in ("yes", "mapped differently", "no")
        assert annotation.notes and "\n" not in annotation.notes and "|" not in annotation.notes
        assert not annotation.name.startswith(P)
    # The ones the migration guide and upstream's annotations.md lead with.
    for name in ("proxy-body-size", "rewrite-target", "configuration-snippet", "auth-url"):
        assert name in names


def test_annotation_table() -> None:
    table = annotation_table()
    lines = table.splitlines()
    assert lines[0] == "| annotation | support | notes |"
    assert lines[1] == "|---|---|---|"
    assert len(lines) == 2 + len(ANNOTATIONS)
    assert "| `proxy-body-size` | yes |" in table
    assert "| `configuration-snippet` | no | never executed" in table


def test_doc_holds_the_table() -> None:
    assert annotation_table() in DOC.read_text()
