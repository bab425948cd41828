#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: varnish_ban
author: Breakwater contributors (@breakwater)
short_description: Ban or purge cached objects on every Varnish of the edge
description:
  - Adds a ban (objects dropped when next requested) or a purge (a lurker-friendly
    ban, which Varnish works off in the background) on every node at once,
    through the Varnish management interface, and reports the result node by node.
  - A node that does not answer fails the task, with every node's result.
options:
  host:
    description: The Host the objects were cached for.
    type: str
    required: true
  path:
    description: Regular expression on the URL.
    type: str
    default: "^/"
  mode:
    description: C(ban) or C(purge).
    type: str
    choices: [ban, purge]
    default: ban
  nodes:
    description: Admin addresses (C(host:port)) of every node's Varnish.
    type: list
    elements: str
    required: true
  secret_file:
    description: The Varnish secret (varnishd -S), the same on every node.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
    details: A ban has no before and after; the per-node results say what happened.
requirements:
  - the C(breakwater) Python package where the module runs
"""

EXAMPLES = r"""
- name: Invalidate the product pages on every edge node
  breakwater.edge.varnish_ban:
    host: shop.example.com
    path: "^/products/"
    mode: purge
    nodes: [10.0.1.11:6082, 10.0.1.12:6082]
    secret_file: files/varnish-secret
  delegate_to: localhost
"""

RETURN = r"""
nodes:
  description: One result per node.
  returned: always
  type: list
  elements: dict
  sample: [{"node": "10.0.1.11:6082", "ok": true, "detail": "purged"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    edge,
    require_breakwater,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            path=dict(type="str", default="^/"),
            mode=dict(type="str", choices=["ban", "purge"], default="ban"),
            nodes=dict(type="list", elements="str", required=True),
            secret_file=dict(type="path", required=True, no_log=False),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    params = module.params
    try:
        nodes = edge().varnish_ban(
            params["nodes"], params["secret_file"], params["host"], params["path"],
            params["mode"] == "purge", check_mode=module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=str(exc))
    failed = [n["node"] for n in nodes if not n["ok"]]
    if failed:
        module.fail_json(msg=f"{len(failed)} of {len(nodes)} nodes failed: {', '.join(failed)}", nodes=nodes, changed=True)
    module.exit_json(changed=True, nodes=nodes)


if __name__ == "__main__":
    main()
