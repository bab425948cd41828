# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: host_prefix
author: Breakwater contributors (@breakwater)
short_description: An address as its host prefix (/32 or /128)
description:
  - C(198.19.0.10) becomes C(198.19.0.10/32), C(2001:db8::10) becomes C(2001:db8::10/128);
    a host prefix stays as it is, normalised. A network or anything that is not an
    address fails.
options:
  _input:
    description: An IPv4 or IPv6 address, or a host prefix.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The prefixes announced for the VIPs
  ansible.builtin.debug:
    msg: "{{ ['198.19.0.10', '2001:db8::10'] | map('breakwater.edge.host_prefix') | list }}"
"""

RETURN = r"""
_value:
  description: The host prefix.
  type: str
  sample: 198.19.0.10/32
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.breakwater.edge.plugins.plugin_utils.ha import host_prefix


def prefix(address):
    try:
        return host_prefix(address)
    except ValueError as exc:
        raise AnsibleFilterError(f"host_prefix: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"host_prefix": prefix}
