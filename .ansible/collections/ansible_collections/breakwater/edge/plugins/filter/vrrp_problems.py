# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_problems
author: Breakwater contributors (@breakwater)
short_description: What is wrong with a node's VRRP instances, and what to change
description:
  - Checks a node's VRRP instances against its facts, and with O(group) their
    agreement across the nodes that share them. Each problem is a sentence naming the
    node, the instance and what to change; none is an empty list.
  - Per instance - a name; an interface of the node; a virtual_router_id from 1 to 255,
    unique per interface; a priority from 1 to 254; an advertisement interval from 0.01
    to 40.95 seconds; state BACKUP with nopreempt; VIPs that are IP addresses inside one
    of the interface's networks (not link-local, not the node's own primary address);
    auth_pass (VRRPv2) only without IPv6 VIPs or fractional intervals; unicast peers
    of each family of the VIPs.
  - Across O(group) - an instance has one virtual_router_id and one VIP set on every node,
    and two different VIP sets never share a virtual_router_id.
positional: facts, host
options:
  _input:
    description: The node's instances (the role's C(keepalived_instances)).
    type: list
    elements: dict
    required: true
  facts:
    description: The node's facts (C(ansible_facts)).
    type: dict
    required: true
  host:
    description: The node's name, for the messages.
    type: str
    required: true
  group:
    description: Every node's instances, by node name (the group sharing the VIPs).
    type: dict
  priority:
    description: Priority of instances that name none.
    type: int
    default: 100
  advert_int:
    description: Advertisement interval of instances that name none.
    type: float
    default: 1
"""

EXAMPLES = r"""
- name: Assert the VRRP instances are sound
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ keepalived_instances | breakwater.edge.vrrp_problems(ansible_facts, inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The problems, one sentence each; empty when there are none.
  type: list
  elements: str
"""

from ansible_collections.breakwater.edge.plugins.plugin_utils.ha import vrrp_problems


def problems(instances, facts, host, group=None, priority=100, advert_int=1):
    return vrrp_problems(instances, facts, host, group, priority, advert_int)


class FilterModule:
    def filters(self):
        return {"vrrp_problems": problems}
