"""Bans and purges: the expression Varnish is sent, and what is refused before it."""

from __future__ import annotations

import pytest

from breakwater.targets.invalidate import ban_expression
from breakwater.targets.varnish_cli import quote
from breakwater.validate import InvalidValue


def test_a_ban_matches_the_request() -> None:
    assert ban_expression("Shop.Example.com", "^/img/", lurker=False) == [
        "req.http.host",
        "==",
        "shop.example.com",
        "&&",
        "req.url",
        "~",
        "^/img/",
    ]


def test_a_purge_matches_object_headers_for_the_ban_lurker() -> None:
    words = ban_expression("shop.example.com", "^/img/", lurker=True)
    assert " ".join(quote(word) for word in words) == (
        'obj.http.X-Breakwater-Host == shop.example.com && obj.http.X-Breakwater-Url ~ "^/img/"'
    )


@pytest.mark.parametrize(
    ("host", "pattern", "message"),
    [
        ("shop.example.com && req.url ~ .", "^/", "not a valid DNS name"),
        ("10.0.0.1", "^/", "IP address"),
        ("shop.example.com", "^/(", "not a regular expression"),
        ("shop.example.com", "", "printable regular expression"),
        ("shop.example.com", "^/\n", "printable regular expression"),
        ("shop.example.com", "x" * 1025, "printable regular expression"),
    ],
)
def test_what_is_refused_before_it_reaches_varnish(host: str, pattern: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        ban_expression(host, pattern, lurker=False)
