# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: vrrp_instances
author: Breakwater contributors (@breakwater)
short_description: The inventory's VRRP instances as keepalived instances
description:
  - One keepalived instance per inventory instance and address family (keepalived runs
    IPv4 and IPv6 VIPs in separate instances), named C(<name>_v4) and C(<name>_v6), both
    with the instance's virtual_router_id.
  - A VIP given without a prefix length takes the one of the interface network that
    holds it (from the node's facts). Unicast peers are those of the family, without
    the node's own addresses, so one list of every node's address serves every node.
  - The VRRP version is 3 for IPv6 and for an advertisement interval that is not whole
    seconds, 2 otherwise and whenever C(auth_pass) is set.
  - The breakwater.edge.keepalived role renders keepalived.conf from it; check the
    instances with P(breakwater.edge.vrrp_problems#filter) first.
positional: facts
options:
  _input:
    description: The instances (the role's C(keepalived_instances)).
    type: list
    elements: dict
    required: true
  facts:
    description: The node's facts (C(ansible_facts)), for the interfaces' networks.
    type: dict
    required: true
  priority:
    description: Priority of instances that name none.
    type: int
    default: 100
  advert_int:
    description: Advertisement interval (seconds) of instances that name none.
    type: float
    default: 1
  nopreempt:
    description: nopreempt of instances that do not say.
    type: bool
    default: false
  garp_master_delay:
    description: Seconds after becoming master before the second round of gratuitous ARPs / NAs.
    type: int
    default: 1
  garp_master_refresh:
    description: Seconds between gratuitous ARPs / NAs while master (0 never).
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: The keepalived instances of this node
  ansible.builtin.debug:
    msg: "{{ keepalived_instances | breakwater.edge.vrrp_instances(ansible_facts) }}"
  vars:
    keepalived_instances:
      - {name: web, interface: eth0, virtual_router_id: 51, vips: [192.0.2.10, "2001:db8::10"], advert_int: 0.5}
"""

RETURN = r"""
_value:
  description:
    - One entry per instance and family, with C(name), C(instance), C(family), C(interface),
      C(virtual_router_id), C(priority), C(advert_int), C(version), C(state), C(nopreempt),
      C(vips) (with prefix length), C(unicast_src_ip), C(unicast_peers), C(auth_pass),
      C(garp_master_delay), C(garp_master_refresh).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.breakwater.edge.plugins.plugin_utils.ha import vrrp_instances


def keepalived_instances(instances, facts, priority=100, advert_int=1, nopreempt=False,
                         garp_master_delay=1, garp_master_refresh=60):
    try:
        return vrrp_instances(instances, facts, priority, advert_int, nopreempt,
                              garp_master_delay, garp_master_refresh)
    except (ValueError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"vrrp_instances: {exc} (check the instances with vrrp_problems first)") from exc


class FilterModule:
    def filters(self):
        return {"vrrp_instances": keepalived_instances}
