#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_server
author: Breakwater contributors (@breakwater)
short_description: Drain, ready or maintenance for a server or a whole backend of the edge
description:
  - Sets the admin state of one server, or of every server of a backend, through
    HAProxy's runtime API on the node, and can wait until their sessions reach zero.
  - Runtime states last until HAProxy next reloads; to take a server away for good,
    change its source (scale the workload, or drain it in a plain route).
  - Runs on an LB node, with the watcher's Python (C(/opt/breakwater/venv/bin/python)).
options:
  backend:
    description: Backend name, e.g. C(be_shop_web_http) (see C(breakwater catalog)).
    type: str
    required: true
  server:
    description: Server slot, e.g. C(s1); all servers of the backend when omitted.
    type: str
  state:
    description: C(ready) in rotation, C(drain) no new requests, C(maint) no requests.
    type: str
    choices: [ready, drain, maint]
    required: true
  wait:
    description: For drain and maint, wait until the servers' sessions reach zero.
    type: bool
    default: false
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 300
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
- name: Drain every server of the web backend and wait for its sessions to end
  breakwater.edge.haproxy_server:
    backend: be_shop_web_http
    state: drain
    wait: true
    timeout: 120
  vars:
    ansible_python_interpreter: /opt/breakwater/venv/bin/python

- name: Back in rotation
  breakwater.edge.haproxy_server:
    backend: be_shop_web_http
    server: s1
    state: ready
  vars:
    ansible_python_interpreter: /opt/breakwater/venv/bin/python
"""

RETURN = r"""
servers:
  description: The servers after the change.
  returned: always
  type: list
  elements: dict
  sample: [{"backend": "be_shop_web_http", "server": "s1", "address": "10.244.1.7", "port": 8080,
            "admin": "drain", "up": true, "weight": 1, "sessions": 0}]
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
            backend=dict(type="str", required=True),
            server=dict(type="str"),
            state=dict(type="str", choices=["ready", "drain", "maint"], required=True),
            wait=dict(type="bool", default=False),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    params = module.params
    target = f"{params['backend']}/{params['server'] or '*'}"
    try:
        before, after = edge().set_server_state(
            params["socket"], params["backend"], params["server"], params["state"],
            params["wait"], params["timeout"], module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=f"{target} via {params['socket']}: {exc}")
    changed = any(s["admin"] != params["state"] for s in before)
    states = {s["server"]: s["admin"] for s in before}
    module.exit_json(
        changed=changed,
        servers=after,
        diff={
            "before": "".join(f"{params['backend']}/{n}: {a}\n" for n, a in sorted(states.items())),
            "after": "".join(f"{params['backend']}/{n}: {params['state']}\n" for n in sorted(states)),
        },
    )


if __name__ == "__main__":
    main()
