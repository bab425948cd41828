"""Validation by Kubernetes' own rules, and by HAProxy's grammar where it is stricter."""

from __future__ import annotations

import pytest

from breakwater import validate
from breakwater.validate import InvalidValue


@pytest.mark.parametrize(
    ("value", "expected"),
    [("WWW.Example.com", "www.example.com"), ("*.example.com", "*.example.com"), ("a", "a")],
)
def test_hostnames_are_dns_subdomains(value: str, expected: str) -> None:
    assert validate.hostname(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "example.com\n",
        "exa mple.com",
        "*.*.example.com",
        "a*.example.com",
        "10.0.0.1",  # Kubernetes refuses IP addresses as Ingress hosts
        "-a.example.com",
        "a" * 64 + ".com",
        "example.com.",
        "\u0435xample.com",  # a Cyrillic e
        42,
    ],
)
def test_hostnames_refused(value: object) -> None:
    with pytest.raises(InvalidValue):
        validate.hostname(value)


@pytest.mark.parametrize("value", ["/", "/a/b", "/a%20b", "/it's", "/a;b=c", "/~user"])
def test_paths_accepted(value: str) -> None:
    assert validate.path(value) == value


@pytest.mark.parametrize("value", ["", "a", "/a\n", "/a b", "/a#b", "/a?b", "/%zz", "/" * 1025])
def test_paths_refused(value: str) -> None:
    with pytest.raises(InvalidValue):
        validate.path(value)


@pytest.mark.parametrize("value", ["/it's", '/a"b', "/$HOME", "/a\\b"])
def test_a_path_written_into_haproxy_cfg_carries_no_quote_or_variable(value: str) -> None:
    with pytest.raises(InvalidValue):
        validate.config_path(value, "health-check-path")


def test_names_by_kind() -> None:
    assert validate.service_name("web-1") == "web-1"
    for bad in ("1web", "web.a", "web\n", "Web"):
        with pytest.raises(InvalidValue):
            validate.service_name(bad)
    assert validate.dns_subdomain("a.b-c", "name") == "a.b-c"
    assert validate.dns_label("team-1", "namespace") == "team-1"
    for bad in ("../x", "a.b", "a" * 64, "a\n"):
        with pytest.raises(InvalidValue):
            validate.dns_label(bad, "namespace")


@pytest.mark.parametrize(
    ("value", "expected"), [(80, 80), ("8080", 8080), ("http", "http"), ("h2c-1", "h2c-1")]
)
def test_service_port_references(value: object, expected: object) -> None:
    assert validate.service_port(value) == expected


@pytest.mark.parametrize("value", [0, 65536, "123456789012345x", "a--b", "-a", "web\n", True, "٣"])
def test_service_port_references_refused(value: object) -> None:
    with pytest.raises(InvalidValue):
        validate.service_port(value)


@pytest.mark.parametrize(
    ("value", "family", "expected"),
    [
        ("10.0.0.1", "IPv4", "10.0.0.1"),
        ("2001:DB8::1", "IPv6", "2001:db8::1"),
        ("2001:db8:0:0:0:0:0:1", None, "2001:db8::1"),
    ],
)
def test_addresses_in_canonical_form(value: str, family: str | None, expected: str) -> None:
    assert validate.ip_address(value, family, allow_special=False) == expected


@pytest.mark.parametrize(
    ("value", "family"),
    [
        ("fe80::1%eth0", None),
        ("10.0.0.1", "IPv6"),
        ("2001:db8::1", "IPv4"),
        ("::ffff:10.0.0.1", None),
        ("010.0.0.1", None),
        ("10.0.0.1\n", None),
        ("10.0.0.1 ", None),
    ],
)
def test_addresses_refused(value: str, family: str | None) -> None:
    with pytest.raises(InvalidValue):
        validate.ip_address(value, family)


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "0.0.0.0", "169.254.169.254", "224.0.0.5", "::1", "::", "fe80::1"]
)
def test_node_local_addresses_are_refused_for_endpoints_unless_allowed(value: str) -> None:
    with pytest.raises(InvalidValue, match="loopback, link-local"):
        validate.ip_address(value, allow_special=False)
    assert validate.ip_address(value, allow_special=True)


@pytest.mark.parametrize("value", ["1us", "500ms", "5s", "2m", "596h", "24d", "2147483647", 30])
def test_durations_within_haproxy_limits(value: object) -> None:
    assert validate.duration(value, "timeout") == str(value)


@pytest.mark.parametrize("value", ["0", "0s", "25d", "597h", "2147483648", "5 s", "5sec", "-1"])
def test_durations_refused(value: str) -> None:
    with pytest.raises(InvalidValue):
        validate.duration(value, "timeout")


def test_seconds_for_varnish() -> None:
    assert validate.seconds("5m", "cache-ttl") == 300
    assert validate.seconds("365d", "cache-ttl") == 365 * 86400
    with pytest.raises(InvalidValue, match="year"):
        validate.seconds("366d", "cache-ttl")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("be_a_b_http", True),
        ("a b", False),
        ("a'b", False),
        ("a#b", False),
        ("", False),
        ("\u00e9", False),
        ("a\\b", False),
        ("a;b", True),
    ],
)
def test_config_words(value: str, ok: bool) -> None:
    assert validate.config_word(value) is ok


# --- issue #13, item 4: each rule against Kubernetes' own ------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "1.2.3.4",
        "010.0.0.1",  # Kubernetes' ParseIPSloppy reads leading zeros: an IP address to it
        "0000000001.2.3.4",
        "255.255.255.255",
    ],
)
def test_a_host_kubernetes_reads_as_an_ip_address_is_refused(value: str) -> None:
    with pytest.raises(InvalidValue, match="is an IP address"):
        validate.hostname(value)


@pytest.mark.parametrize("value", ["*.1.2.3", "*.1.2.3.4", "1.2.3", "1.2.3.256", "1.2.3.4.5"])
def test_digits_and_dots_that_are_no_ip_address_to_kubernetes_are_dns_names(value: str) -> None:
    assert validate.hostname(value) == value


def test_an_ingress_host_in_upper_case_is_refused_where_a_configmap_host_is_folded() -> None:
    assert validate.hostname("WWW.Example.com") == "www.example.com"
    with pytest.raises(InvalidValue, match="must be lower case"):
        validate.hostname("WWW.Example.com", fold_case=False)
    with pytest.raises(InvalidValue, match="must be lower case"):
        validate.hostname("*.Example.com", fold_case=False)
    assert validate.hostname("*.example.com", fold_case=False) == "*.example.com"


@pytest.mark.parametrize("value", ["www.example.com", "*.example.com", "10.0.0.1", "a" * 64 + ".b"])
def test_tls_hosts_are_kubernetes_subdomains_ip_addresses_included(value: str) -> None:
    assert validate.tls_host(value) == value


@pytest.mark.parametrize("value", ["WWW.example.com", "*.*.example.com", "a b", "", "x" * 254, 7])
def test_tls_hosts_refused(value: object) -> None:
    with pytest.raises(InvalidValue, match="tls host"):
        validate.tls_host(value)


def test_object_names_are_kubernetes_subdomains_with_labels_of_any_length() -> None:
    # IsDNS1123Subdomain bounds the whole name (253), not each label.
    assert validate.dns_subdomain("a" * 64 + ".b", "name") == "a" * 64 + ".b"
    for bad in ("a" * 254, "a..b", "-a.b", "a.b-", "A.b"):
        with pytest.raises(InvalidValue):
            validate.dns_subdomain(bad, "name")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/a//b", "'//'"),
        ("//", "'//'"),
        ("/a/./b", "'/./'"),
        ("/a/../b", "'/../'"),
        ("/a%2fb", "'%2f'"),
        ("/a%2Fb", "'%2F'"),
        ("/a/..", "end with '/..'"),
        ("/a/.", "end with '/.'"),
        ("/.", "end with '/.'"),
        ("", "must start with '/'"),
        (None, "is not a string"),
    ],
)
def test_exact_and_prefix_paths_follow_kubernetes_rules(value: object, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        validate.matched_path(value)


@pytest.mark.parametrize("value", ["/", "/a/", "/a.b", "/a/.well-known", "/..a", "/a%2e"])
def test_exact_and_prefix_paths_accepted(value: str) -> None:
    assert validate.matched_path(value) == value


@pytest.mark.parametrize("value", ["ff02::1", "ff12::1", "ff32::1:2", "fff2::1"])
def test_ipv6_link_local_multicast_of_any_flags_is_special(value: str) -> None:
    # Go's IsLinkLocalMulticast (Kubernetes' ValidateNonSpecialIP): ff0X..ffFX with scope 2.
    with pytest.raises(InvalidValue, match="loopback, link-local"):
        validate.ip_address(value, "IPv6", allow_special=False)


@pytest.mark.parametrize("value", ["ff05::1", "ff0e::1", "2001:db8::1"])
def test_other_ipv6_addresses_are_not_link_local(value: str) -> None:
    assert validate.ip_address(value, "IPv6", allow_special=False) == value


@pytest.mark.parametrize(
    ("value", "family", "reason"),
    [
        ("10.0.0.1", "IPv6", "is IPv4, in an IPv6 slice"),
        ("2001:db8::1", "IPv4", "is IPv6, in an IPv4 slice"),
        ("::ffff:10.0.0.1", "IPv4", "IPv4-mapped"),
        ("::ffff:10.0.0.1", "IPv6", "IPv4-mapped"),
        ("010.0.0.1", "IPv4", "not an IP address"),
    ],
)
def test_address_family_and_form(value: str, family: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        validate.ip_address(value, family)


@pytest.mark.parametrize("value", [0, 65536, -1, "8080", True, 8080.0, None])
def test_port_numbers_refused(value: object) -> None:
    with pytest.raises(InvalidValue, match="is not a port number"):
        validate.port_number(value, "endpoint port")
