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
  - With keepalived or BGP (the breakwater.edge.keepalived and breakwater.edge.bgp roles)
    the health judge turns the 503 into a VIP release and a GRACEFUL_SHUTDOWN then
    withdrawal. O(wait_for_release) waits for that B(before) it waits for the sessions,
    so clients have somewhere else to go when the node drains.
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
  wait_for_release:
    description:
      - With O(state=out_of_rotation), first wait until the node holds none of O(vips)
        (C(ip -j address)) and the health judge's state file (O(health_file)) says the
        BGP announcement is withdrawn, then (with O(wait)) until the sessions are gone.
      - Needs the C(breakwater) package's C(wait_for_release) and C(wait_for_sessions).
    type: bool
    default: false
  vips:
    description: The VIPs the node must not hold any more (the VRRP instances' vips); empty with BGP only.
    type: list
    elements: str
    default: []
  health_file:
    description: The health judge's state file (C(ha.state_file)).
    type: path
    default: /run/breakwater/edge-health.json
  bgp:
    description:
      - Whether to wait for the BGP withdrawal. Unset - whenever the state file has a C(bgp) section.
    type: bool
  release_timeout:
    description: Seconds to wait for the release before failing (GRACEFUL_SHUTDOWN lasts C(ha.graceful_shutdown_seconds) first).
    type: int
    default: 60
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

- name: Out of VRRP and BGP first, then out of rotation once the last client is gone
  breakwater.edge.edge_node:
    state: out_of_rotation
    wait_for_release: true
    vips: [192.0.2.10, "2001:db8::10"]
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
released:
  description:
    - With O(wait_for_release), what the wait saw - C(held) (VIPs still held, empty), C(announced)
      (the BGP announcement, V(false) withdrawn, V(null) without BGP), C(waited) (seconds).
  returned: when O(wait_for_release) waited
  type: dict
  sample: {"held": [], "announced": false, "waited": 10.4}
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
            wait_for_release=dict(type="bool", default=False),
            vips=dict(type="list", elements="str", default=[]),
            health_file=dict(type="path", default="/run/breakwater/edge-health.json"),
            bgp=dict(type="bool"),
            release_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    params = module.params
    wanted = params["state"] == "in_rotation"
    # Out of VRRP and BGP before the sessions drain: the rotation first without waiting,
    # then the release, then the sessions.
    release = params["wait_for_release"] and not wanted
    result = {}
    try:
        was, now = edge().set_node_rotation(
            params["socket"], params["config_dir"], wanted, params["wait"] and not release,
            params["timeout"], check_mode=module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=f"node rotation via {params['socket']}: {exc}")
    if release and not module.check_mode:
        try:
            released = edge().wait_for_release(
                params["vips"], params["health_file"], params["bgp"], params["release_timeout"]
            )
        except Exception as exc:
            module.fail_json(msg=f"out of rotation, but the VIPs were not released: {exc}", in_rotation=False)
        result["released"] = {key: released.get(key) for key in ("held", "announced", "waited")}
        if params["wait"]:
            try:
                edge().wait_for_sessions(params["socket"], params["timeout"])
            except Exception as exc:
                module.fail_json(msg=f"VIPs released, but the sessions did not drain: {exc}",
                                 in_rotation=False, **result)
    label = {True: "in_rotation\n", False: "out_of_rotation\n"}
    module.exit_json(
        changed=was != wanted,
        in_rotation=wanted if not module.check_mode else was,
        diff={"before": label[was], "after": label[wanted]},
        **result,
    )


if __name__ == "__main__":
    main()
