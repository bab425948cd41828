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
  - Runs on an LB node, with the watcher's Python (C(/opt/breakwater/venv/bin/python)).
options:
  status_file:
    description: The watcher's C(watcher.status_file).
    type: path
    default: /run/breakwater/status.json
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
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    try:
        info = edge().edge_info(module.params["socket"], module.params["status_file"])
    except Exception as exc:
        module.fail_json(msg=f"edge info via {module.params['socket']}: {exc}")
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
