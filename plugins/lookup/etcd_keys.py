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

from ansible.errors import AnsibleLookupError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.lookup import LookupBase

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    BREAKWATER_IMPORT_ERROR,
    edge,
    etcd_options,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if BREAKWATER_IMPORT_ERROR is not None:
            raise AnsibleLookupError(missing_required_lib("breakwater"), orig_exc=BREAKWATER_IMPORT_ERROR)
        etcd = etcd_options(self.get_option)
        try:
            return edge().etcd_keys(etcd, [str(t) for t in terms], self.get_option("prefix_match"))
        except Exception as exc:
            raise AnsibleLookupError(f"breakwater.edge.etcd_keys {', '.join(map(str, terms))}: {exc}") from exc
