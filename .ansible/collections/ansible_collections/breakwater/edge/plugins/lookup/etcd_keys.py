# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: etcd_keys
author: Breakwater contributors (@breakwater)
short_description: Raw etcd keys, or every key under a prefix
description:
  - Reads keys from etcd as they are stored. Text values come back as text, others
    base64-encoded (C(encoding) says which).
extends_documentation_fragment:
  - breakwater.edge.etcd.lookup
options:
  _terms:
    description: Keys (or prefixes, with O(prefix_match=true)).
    required: true
  prefix_match:
    description: Treat each term as a prefix.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every plain route
  ansible.builtin.debug:
    msg: "{{ query('breakwater.edge.etcd_keys', '/breakwater/routes/', prefix_match=true) }}"
"""

RETURN = r"""
_raw:
  description: One entry per key found.
  type: list
  elements: dict
  contains:
    key:
      description: The key.
      type: str
      sample: /breakwater/routes/billing
    value:
      description: The value, as text or base64.
      type: str
      sample: '{"hosts":["billing.example.com"]}'
    encoding:
      description: C(utf-8) or C(base64).
      type: str
      sample: utf-8
    mod_revision:
      description: Revision of the last change.
      type: int
      sample: 412
    version:
      description: Number of changes since creation.
      type: int
      sample: 3
"""

from ansible_collections.breakwater.edge.plugins.plugin_utils.lookup import BreakwaterLookup


class LookupModule(BreakwaterLookup):
    def answer(self, edge_api, terms, etcd):
        return edge_api.etcd_keys(etcd, [str(t) for t in terms], self.get_option("prefix_match"))

    def describe(self, terms, etcd):
        return ", ".join(map(str, terms))
