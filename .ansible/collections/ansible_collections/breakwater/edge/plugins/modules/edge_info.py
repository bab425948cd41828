#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: edge_info
author: Breakwater contributors (@breakwater)
short_description: What the edge node serves now
description:
  - Reads the watcher's status file (routes, backends, rejected objects, last sync,
    last error, etcd connection) and HAProxy's live server states and sessions.
  - With keepalived or BGP, also the health judge's verdict (O(health_file)), the VRRP
    instances' states (written by keepalived's notify script into O(vrrp_dir)) and the
    BGP sessions (FRR's C(show bgp summary json) through O(vtysh)).
  - Runs on an LB node, with the watcher's Python (C(/opt/breakwater/venv/bin/python)).
options:
  status_file:
    description: The watcher's C(watcher.status_file).
    type: path
    default: /run/breakwater/status.json
  health_file:
    description: The health judge's state file (C(ha.state_file)).
    type: path
    default: /run/breakwater/edge-health.json
  vrrp_dir:
    description: Where keepalived's notify script writes C(<instance>.state).
    type: path
    default: /run/breakwater/vrrp
  vtysh:
    description: FRR's shell; no BGP is reported when it is missing.
    type: path
    default: /usr/bin/vtysh
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - breakwater.edge.node
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
    details: Read-only.
"""

EXAMPLES = r"""
- name: What does lb1 serve?
  breakwater.edge.edge_info:
  register: edge
  vars:
    ansible_python_interpreter: /opt/breakwater/venv/bin/python
"""

RETURN = r"""
watcher:
  description: The watcher's status (null when the file is missing).
  returned: always
  type: dict
  sample: {"revision": 4211, "etcd_connected": true, "last_sync": 1795946000.1, "last_error": null,
           "catalog": {"routes": [], "backends": {}, "rejected": []}}
servers:
  description: HAProxy's servers of every service backend, live.
  returned: always
  type: list
  elements: dict
  sample: [{"backend": "be_shop_web_http", "server": "s1", "address": "10.244.1.7", "port": 8080,
            "admin": "ready", "up": true, "weight": 1, "sessions": 3}]
health:
  description:
    - The health judge's verdict (null without one) - C(healthy), C(planned) (out of rotation
      on purpose), C(reasons), C(since), C(checked_at), and C(bgp) (C(announced),
      C(graceful_shutdown), null without BGP).
  returned: always
  type: dict
  sample: {"healthy": true, "planned": false, "reasons": [], "since": 1795946000.1, "checked_at": 1795946100.6,
           "bgp": {"announced": true, "graceful_shutdown": false}}
vrrp:
  description: Each VRRP instance's last transition - C(instance), C(state) (MASTER, BACKUP, FAULT, STOP), C(priority), C(since) (epoch seconds).
  returned: always
  type: list
  elements: dict
  sample: [{"instance": "web_v4", "state": "MASTER", "priority": 150, "since": 1795946000}]
bgp:
  description:
    - FRR's BGP sessions (null without FRR) - C(peers), each with C(peer), C(remote_as), C(state),
      C(uptime), C(prefixes_sent) and C(prefixes_received).
  returned: always
  type: dict
  sample: {"peers": [{"peer": "192.0.2.1", "remote_as": 65000, "state": "Established", "uptime": "01:02:03",
                      "prefixes_sent": 1, "prefixes_received": 0}]}
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
            status_file=dict(type="path", default="/run/breakwater/status.json"),
            health_file=dict(type="path", default="/run/breakwater/edge-health.json"),
            vrrp_dir=dict(type="path", default="/run/breakwater/vrrp"),
            vtysh=dict(type="path", default="/usr/bin/vtysh"),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    try:
        params = module.params
        info = edge().edge_info(
            params["socket"], params["status_file"], health_file=params["health_file"],
            vrrp_dir=params["vrrp_dir"], vtysh=params["vtysh"],
        )
    except Exception as exc:
        module.fail_json(msg=f"edge info via {module.params['socket']}: {exc}")
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
