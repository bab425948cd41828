# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The address checks behind the keepalived and bgp roles' preflights (ansible-test units)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.breakwater.edge.plugins.filter.bgp_problems import problems as bgp_problems
from ansible_collections.breakwater.edge.plugins.filter.host_prefix import prefix
from ansible_collections.breakwater.edge.plugins.filter.vrrp_instances import keepalived_instances
from ansible_collections.breakwater.edge.plugins.filter.vrrp_problems import (
    problems as vrrp_problems,
)

FACTS = {
    "interfaces": ["lo", "eth0", "bond0.10"],
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
    "eth0": {
        "ipv4": {"address": "192.0.2.11", "netmask": "255.255.255.0"},
        "ipv4_secondaries": [{"address": "192.0.2.10", "netmask": "255.255.255.0"}],
        "ipv6": [
            {"address": "2001:db8::11", "prefix": "64", "scope": "global"},
            {"address": "fe80::1", "prefix": "64", "scope": "link"},
        ],
    },
    "bond0_10": {"ipv4": {"address": "198.51.100.11", "netmask": "255.255.255.0"}},
}


def web(**changes):
    instance = {
        "name": "web",
        "interface": "eth0",
        "virtual_router_id": 51,
        "vips": ["192.0.2.10", "2001:db8::10"],
    }
    instance.update(changes)
    return instance


def test_a_sound_instance_has_no_problem():
    assert (
        vrrp_problems(
            [
                web(),
                {
                    "name": "api",
                    "interface": "bond0.10",
                    "virtual_router_id": 52,
                    "vips": ["198.51.100.10"],
                },
            ],
            FACTS,
            "lb1",
        )
        == []
    )


@pytest.mark.parametrize(
    "instance, message",
    [
        (
            web(vips=["203.0.113.5"]),
            "VIP 203.0.113.5 is outside the networks of eth0 (192.0.2.0/24, 2001:db8::/64)",
        ),
        (web(vips=["192.0.2.11"]), "is the node's own address on eth0"),
        (web(vips=["fe80::10"]), "link-local"),
        (web(vips=["not-an-ip"]), "VIP 'not-an-ip' is not an IP address"),
        (web(virtual_router_id=0), "virtual_router_id 0 must be a whole number from 1 to 255"),
        (web(priority=255), "priority 255 must be from 1 to 254"),
        (web(interface="eth9"), "interface eth9 is not on the node"),
        (web(state="MASTER", nopreempt=True), "nopreempt needs state BACKUP"),
        (web(advert_int=0.005), "advert_int 0.005 must be seconds from 0.01 to 40.95"),
        (web(auth_pass="secret"), "auth_pass is VRRPv2 only, which has no IPv6"),
        (web(unicast_peers=["192.0.2.12"]), "no IPv6 peer"),
        (web(colour="blue"), "unknown keys colour"),
    ],
)
def test_problems_say_what_to_change(instance, message):
    found = vrrp_problems([instance], FACTS, "lb1")
    assert any(message in problem for problem in found), found


def test_a_vrid_is_unique_per_interface():
    found = vrrp_problems([web(), web(name="api", vips=["192.0.2.20"])], FACTS, "lb1")
    assert any("virtual_router_id 51 is used by instance web on eth0 too" in p for p in found), (
        found
    )


def test_the_group_agrees_on_vrids_and_vips():
    group = {
        "lb1": [web()],
        "lb2": [web(virtual_router_id=52)],
        "lb3": [web(name="api", virtual_router_id=51, vips=["192.0.2.20"])],
    }
    found = vrrp_problems([web()], FACTS, "lb1", group=group)
    assert any(
        "instance web has different virtual_router_ids across the group (lb1 51, lb2 52)" in p
        for p in found
    ), found
    assert any("virtual_router_id 51 carries different VIP sets" in p for p in found), found
    assert (
        vrrp_problems([web()], FACTS, "lb1", group={"lb1": [web()], "lb2": [web(priority=50)]})
        == []
    )


def test_instances_split_by_family_with_the_network_prefix():
    peers = ["192.0.2.11", "192.0.2.12", "2001:db8::12"]
    rendered = keepalived_instances([web(advert_int=0.5, unicast_peers=peers)], FACTS)
    v4, v6 = rendered
    assert v4["name"] == "web_v4" and v4["vips"] == ["192.0.2.10/24"] and v4["version"] == 3
    assert v4["unicast_peers"] == ["192.0.2.12"] and v4["unicast_src_ip"] == "192.0.2.11"
    assert (
        v6["name"] == "web_v6"
        and v6["vips"] == ["2001:db8::10/64"]
        and v6["virtual_router_id"] == 51
    )
    assert v6["unicast_peers"] == ["2001:db8::12"] and v6["unicast_src_ip"] == "2001:db8::11"
    (plain,) = keepalived_instances([web(vips=["192.0.2.10"], auth_pass="pw")], FACTS)
    assert plain["version"] == 2 and plain["advert_int"] == 1 and plain["unicast_peers"] == []


def test_host_prefix():
    assert prefix("198.19.0.10") == "198.19.0.10/32"
    assert prefix("2001:DB8::10/128") == "2001:db8::10/128"
    with pytest.raises(AnsibleFilterError, match="not a host address"):
        prefix("198.19.0.0/24")


PEER = {"address": "192.0.2.1", "remote_as": 65000}


def test_sound_bgp_settings_have_no_problem():
    assert (
        bgp_problems(
            65001,
            [PEER],
            ["198.19.0.10", "2001:db8:ffff::10/128"],
            FACTS,
            "lb1",
            router_id="192.0.2.11",
        )
        == []
    )


@pytest.mark.parametrize(
    "asn, peers, vips, message",
    [
        (0, [PEER], ["198.19.0.10"], "bgp_asn 0 must be this node's AS number"),
        (4294967296, [PEER], ["198.19.0.10"], "1 to 4294967295"),
        (65001, [], ["198.19.0.10"], "bgp_peers is empty"),
        (65001, [{"address": "192.0.2.1"}], ["198.19.0.10"], "set remote_as"),
        (65001, [{"remote_as": 65000}], ["198.19.0.10"], "set address"),
        (65001, [dict(PEER, password="two words")], ["198.19.0.10"], "without spaces"),
        (65001, [PEER], [], "bgp_vips is empty"),
        (65001, [PEER], ["198.19.0.0/24"], "is a network"),
        (65001, [PEER], ["192.0.2.11"], "is the node's own address"),
    ],
)
def test_bgp_problems_say_what_to_change(asn, peers, vips, message):
    found = bgp_problems(asn, peers, vips, FACTS, "lb1")
    assert any(message in problem for problem in found), found
