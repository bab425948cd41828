#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: edge_node
author: Breakwater contributors (@breakwater)
short_description: Take an edge node out of rotation gracefully, or bring it back
description:
  - Turns the node's monitor endpoint (C(haproxy.monitor_binds)) to 503 or back to 200,
    so whatever balances across the edge nodes (DNS, VRRP, a cloud load balancer)
    stops sending new clients; optionally waits until the public frontend has no
    sessions left. The state is kept in C(node-state.map) and survives reloads.
  - Runs on an LB node, with the watcher's Python (C(/opt/breakwater/venv/bin/python)).
options:
  state:
    description: Whether the node takes traffic.
    type: str
    choices: [in_rotation, out_of_rotation]
    required: true
  wait:
    description: With O(state=out_of_rotation), wait until the public frontend has no sessions.
    type: bool
    default: false
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 300
  config_dir:
    description: The watcher's C(haproxy.config_dir), where C(node-state.map) lives.
    type: path
    default: /etc/haproxy/breakwater
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - breakwater.edge.node
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Out of rotation, once the last client is gone
  breakwater.edge.edge_node:
    state: out_of_rotation
    wait: true
  vars:
    ansible_python_interpreter: /opt/breakwater/venv/bin/python
"""

RETURN = r"""
in_rotation:
  description: Whether the node now takes traffic.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    NODE_ARGUMENT_SPEC,
    edge,
    require_breakwater,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            NODE_ARGUMENT_SPEC,
            state=dict(type="str", choices=["in_rotation", "out_of_rotation"], required=True),
            wait=dict(type="bool", default=False),
            timeout=dict(type="int", default=300),
            config_dir=dict(type="path", default="/etc/haproxy/breakwater"),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    params = module.params
    wanted = params["state"] == "in_rotation"
    try:
        was, now = edge().set_node_rotation(
            params["socket"], params["config_dir"], wanted, params["wait"],
            params["timeout"], check_mode=module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=f"node rotation via {params['socket']}: {exc}")
    label = {True: "in_rotation\n", False: "out_of_rotation\n"}
    module.exit_json(
        changed=was != wanted,
        in_rotation=wanted if not module.check_mode else was,
        diff={"before": label[was], "after": label[wanted]},
    )


if __name__ == "__main__":
    main()
