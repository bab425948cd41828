#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: route
author: Breakwater contributors (@breakwater)
short_description: A route of the plain schema, for backends outside Kubernetes
description:
  - Creates, updates or deletes one JSON document under the routes prefix
    (C(/breakwater/routes/) by default) of the etcd the watcher reads. The watcher
    serves it alongside Kubernetes objects, validated the same way.
  - Idempotent; check mode and diff show the document before and after.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - breakwater.edge.etcd
options:
  name:
    description: Route name (an RFC 1123 label); the key is the routes prefix plus this.
    type: str
    required: true
  state:
    description: Whether the route exists.
    type: str
    choices: [present, absent]
    default: present
  spec:
    description:
      - The route document; keys are listed in the README (hosts, paths, exact-paths,
        servers, https-redirect, tls, cache and cache-*, balance, health-check-*, timeout-*).
      - Required when O(state=present). It is checked with the watcher's own rules first.
    type: dict
  routes_prefix:
    description: Where plain routes live (the watcher's C(etcd.routes_prefix)).
    type: str
    default: /breakwater/routes/
attributes:
  action_group:
    description: Use C(group/breakwater.edge.etcd) in C(module_defaults) to set the etcd connection once per play.
    support: full
    membership:
      - breakwater.edge.etcd
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - the C(breakwater) Python package where the module runs
"""

EXAMPLES = r"""
- name: Routes with the etcd connection set once (a play can set the same keywords)
  vars:
    breakwater_etcd:
      endpoints: [https://10.0.0.21:2379]
      ca_file: pki/ca.crt
      cert_file: pki/breakwater.crt
      key_file: pki/breakwater.key
  module_defaults:
    group/breakwater.edge.etcd: "{{ breakwater_etcd }}"
  block:
    - name: Serve reports.example.com
      breakwater.edge.route:
        name: reports
        spec:
          hosts: [reports.example.com]
          servers: [{address: 10.1.0.7, port: 8080}]
    - name: Show what the edge routes (the lookups read breakwater_etcd)
      ansible.builtin.debug:
        msg: "{{ lookup('breakwater.edge.catalog') }}"

- name: Serve billing.example.com from two VMs
  breakwater.edge.route:
    endpoints: [https://10.0.0.21:2379]
    ca_file: pki/ca.crt
    cert_file: pki/breakwater.crt
    key_file: pki/breakwater.key
    name: billing
    spec:
      hosts: [billing.example.com]
      servers:
        - {address: 10.1.0.5, port: 8080}
        - {address: 10.1.0.6, port: 8080}
      health-check-path: /healthz
  delegate_to: localhost

- name: Remove it
  breakwater.edge.route:
    name: billing
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
key:
  description: The etcd key of the route.
  returned: always
  type: str
  sample: /breakwater/routes/billing
route:
  description: The route document now stored (null when absent).
  returned: always
  type: dict
  sample: {"hosts": ["billing.example.com"], "servers": [{"address": "10.1.0.5", "port": 8080}]}
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    ETCD_ARGUMENT_SPEC,
    edge,
    etcd_options,
    require_breakwater,
)


def canonical(spec):
    return None if spec is None else json.loads(json.dumps(spec, sort_keys=True))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ETCD_ARGUMENT_SPEC,
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            spec=dict(type="dict"),
            routes_prefix=dict(type="str", default="/breakwater/routes/"),
        ),
        required_if=[("state", "present", ["spec"])],
        supports_check_mode=True,
    )
    require_breakwater(module)
    etcd = etcd_options(module.params.get)
    etcd["routes_prefix"] = module.params["routes_prefix"]
    name = module.params["name"]
    key = module.params["routes_prefix"] + name
    try:
        before = canonical(edge().read_route(etcd, name))
        after = canonical(module.params["spec"]) if module.params["state"] == "present" else None
        if after is not None:
            problems = edge().check_route(name, after)
            if problems:
                module.fail_json(msg=f"route {name} would be rejected: {'; '.join(problems)}", key=key)
        changed = before != after
        if changed and not module.check_mode:
            edge().write_route(etcd, name, after)
    except Exception as exc:
        module.fail_json(msg=f"route {name} ({key}): {exc}", key=key)
    module.exit_json(
        changed=changed,
        key=key,
        route=after,
        diff={"before": json.dumps(before, indent=2, sort_keys=True) + "\n" if before else "",
              "after": json.dumps(after, indent=2, sort_keys=True) + "\n" if after else ""},
    )


if __name__ == "__main__":
    main()
