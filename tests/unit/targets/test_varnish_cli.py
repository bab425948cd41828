"""Varnish's management CLI, on the text Varnish 7.1 (Debian 12) really sends."""

from __future__ import annotations

import pytest

from breakwater.targets.varnish_cli import (
    LoadedVCL,
    auth_response,
    parse_status_line,
    parse_vcl_list,
    quote,
    split_address,
)

# vcl.list of varnishd 7.1.1: two of ours loaded, one in use, a label on the other.
VCL_LIST = (
    "available   auto     warm         0    boot\n"
    "available   auto     warm         0    bw_1    <-    (1 label)\n"
    "active      auto     warm         0    bw_2\n"
    "available   label    warm         0    lbl     ->    bw_1\n"
)


def test_vcl_list_names_every_loaded_vcl_and_the_active_one() -> None:
    assert parse_vcl_list(VCL_LIST) == [
        LoadedVCL("boot", False),
        LoadedVCL("bw_1", False),
        LoadedVCL("bw_2", True),
        LoadedVCL("lbl", False),
    ]


def test_vcl_list_leaves_out_discarded_vcls_and_short_lines() -> None:
    text = "discarded   auto    cold         0    bw_0\nactive      auto    warm\n"
    assert parse_vcl_list(text) == []


@pytest.mark.parametrize(
    ("word", "quoted"),
    [
        ("vcl.load", "vcl.load"),
        ("/etc/varnish/breakwater.vcl", "/etc/varnish/breakwater.vcl"),
        ("obj.http.X-Breakwater-Host", "obj.http.X-Breakwater-Host"),
        ("^/img/.*$", '"^/img/.*$"'),
        ("a b", '"a b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
        ("", '""'),
    ],
)
def test_quote(word: str, quoted: str) -> None:
    assert quote(word) == quoted


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:6082", "127.0.0.1", 6082),
        ("edge-1.example.com:7000", "edge-1.example.com", 7000),
        ("[::1]:6082", "::1", 6082),
        ("localhost", "localhost", 6082),
    ],
)
def test_split_address(address: str, host: str, port: int) -> None:
    assert split_address(address) == (host, port)


@pytest.mark.parametrize(
    ("header", "framing"),
    [
        (b"107 59      \n", (107, 59)),  # varnishd pads the length
        (b"200 276     \n", (200, 276)),
        (b"200 0\n", (200, 0)),
        (b"", None),
        (b"Varnish Cache CLI 1.0\n", None),
        (b"200\n", None),
        (b"200 -1\n", None),
    ],
)
def test_status_line(header: bytes, framing: tuple[int, int] | None) -> None:
    assert parse_status_line(header) == framing


def test_auth_response_is_the_one_varnishd_accepted() -> None:
    # Challenge and secret file of a real login to varnishd 7.1.1 that answered 200.
    challenge = "rnphoqwryhrwrzxwnalmravjzcqocbjg"
    assert auth_response(challenge, b"test-secret\n") == (
        "fd5dac41af2831bdb8c19ff7efdf2a4a69a96d77f86c011702b085d49e72cacd"
    )
