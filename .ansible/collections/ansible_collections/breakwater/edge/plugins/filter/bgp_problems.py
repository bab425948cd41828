# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: bgp_problems
author: Breakwater contributors (@breakwater)
short_description: What is wrong with a node's BGP settings, and what to change
description:
  - Checks the ASN (1 to 4294967295), the peers (at least one, each with an IP address
    and a remote ASN, an optional password without spaces, keepalive and hold timers in
    seconds), the VIPs (host prefixes /32 or /128, none of them an address of the node's
    interfaces but the loopback), the accepted prefixes and the router ID.
  - Each problem is a sentence naming the node and what to change; none is an empty list.
positional: peers, vips, facts, host
options:
  _input:
    description: The node's ASN (C(bgp_asn)).
    type: raw
    required: true
  peers:
    description: The upstream routers (C(bgp_peers)).
    type: list
    elements: dict
    required: true
  vips:
    description: The VIPs announced (C(bgp_vips)).
    type: list
    elements: str
    required: true
  facts:
    description: The node's facts (C(ansible_facts)).
    type: dict
    required: true
  host:
    description: The node's name, for the messages.
    type: str
    required: true
  accept_prefixes:
    description: Prefix-list entries accepted from the peers (C(bgp_accept_prefixes)).
    type: list
    elements: str
  router_id:
    description: The BGP router ID, an IPv4 address.
    type: str
"""

EXAMPLES = r"""
- name: Assert the BGP settings are sound
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ bgp_asn | breakwater.edge.bgp_problems(bgp_peers, bgp_vips, ansible_facts, inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The problems, one sentence each; empty when there are none.
  type: list
  elements: str
"""

from ansible_collections.breakwater.edge.plugins.plugin_utils.ha import bgp_problems


def problems(asn, peers, vips, facts, host, accept_prefixes=None, router_id=None):
    return bgp_problems(asn, peers, vips, facts, host, accept_prefixes, router_id)


class FilterModule:
    def filters(self):
        return {"bgp_problems": problems}
