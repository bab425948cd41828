# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The route module's comparison and the catalog's checks it relies on (ansible-test units)."""

from __future__ import annotations

import pytest
from ansible_collections.breakwater.edge.plugins.modules import route

edge = pytest.importorskip("breakwater.edge")


def test_canonical_ignores_key_order():
    first = {"hosts": ["a.example.com"], "servers": [{"port": 80, "address": "10.0.0.1"}]}
    second = {"servers": [{"address": "10.0.0.1", "port": 80}], "hosts": ["a.example.com"]}
    assert route.canonical(first) == route.canonical(second)
    assert route.canonical(None) is None


@pytest.mark.parametrize(
    "spec, reason",
    [
        ({"hosts": ["a b"], "servers": []}, "is not one value"),
        ({"hosts": ["a.example.com"]}, "'servers' is required"),
        (
            {"hosts": ["a.example.com"], "servers": [{"address": "a.example.com", "port": 80}]},
            "address",
        ),
    ],
)
def test_bad_routes_are_refused_before_writing(spec, reason):
    problems = edge.check_route("bad", spec)
    assert problems and reason in problems[0]


def test_good_route_passes():
    assert (
        edge.check_route(
            "good", {"hosts": ["a.example.com"], "servers": [{"address": "10.0.0.1", "port": 80}]}
        )
        == []
    )
