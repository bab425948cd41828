#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: etcd_access
author: Breakwater contributors (@breakwater)
short_description: The edge's etcd user, allowed to read exactly what the watcher reads
description:
  - Against an etcd with authentication enabled, makes the edge's etcd user and its role
    hold exactly this - the role has read-only permission on each key prefix the watcher
    lists and watches with the configuration O(settings), and nothing else; the user has
    no password (etcd takes a client certificate's common name as the user name) and this
    role as its only role.
  - The prefixes come from the C(breakwater) package, from the same settings the watcher
    runs with (C(etcd.prefix), C(etcd.routes_prefix), C(catalog.mode),
    C(catalog.secret_namespaces), C(catalog.configmap_namespaces)), never from a second
    list; O(prefix) stands for C(etcd.prefix) when O(settings) has none. With
    O(state=absent) the user and the role are deleted.
  - Runs with an etcd account allowed to manage users and roles, normally C(root)
    (O(cert_file) of a certificate whose common name is C(root)).
  - Idempotent; check mode and diff show the user, its roles and the role's permissions
    before and after.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - breakwater.edge.etcd
options:
  user:
    description: The edge's etcd user, the common name of its client certificate.
    type: str
    required: true
  role:
    description: The role that holds the read permissions.
    type: str
    default: breakwater-edge
  settings:
    description:
      - The watcher configuration, as in C(watcher.yml) (the mapping the watcher role
        writes, e.g. C(breakwater_settings)); what it reads decides the permissions.
    type: dict
    default: {}
  state:
    description: Whether the user and the role exist.
    type: str
    choices: [present, absent]
    default: present
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
seealso:
  - name: etcd role-based access control
    description: etcd's users, roles and permissions, and certificate common names as users.
    link: https://etcd.io/docs/v3.4/op-guide/authentication/
"""

EXAMPLES = r"""
- name: The edge reads only what its watcher needs, as user breakwater-edge
  breakwater.edge.etcd_access:
    endpoints: [https://10.0.0.11:2379]
    ca_file: pki/etcd-ca.crt
    cert_file: pki/root.crt          # an etcd account that manages users: root
    key_file: pki/root.key
    user: breakwater-edge            # the CN of the edge's client certificate
    settings: "{{ breakwater_settings }}"
  delegate_to: localhost
  run_once: true

- name: Remove the edge's user and role
  breakwater.edge.etcd_access:
    endpoints: [https://10.0.0.11:2379]
    ca_file: pki/etcd-ca.crt
    cert_file: pki/root.crt
    key_file: pki/root.key
    user: breakwater-edge
    state: absent
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
prefixes:
  description: The key prefixes the watcher reads with O(settings); the role may read each and every key under it.
  returned: always
  type: list
  elements: str
  sample: ["/registry/services/specs/", "/registry/secrets/shop/", "/breakwater/routes/"]
access:
  description: The user, its roles and the role's permissions, as etcd now holds them (in check mode, as it would).
  returned: always
  type: dict
  sample: {"user": "breakwater-edge", "user_roles": ["breakwater-edge"], "role": "breakwater-edge",
           "permissions": ["read /registry/ingress/*"]}
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    ETCD_ARGUMENT_SPEC,
    edge,
    etcd_options,
    require_breakwater,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ETCD_ARGUMENT_SPEC,
            user=dict(type="str", required=True),
            role=dict(type="str", default="breakwater-edge"),
            settings=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    user, role = module.params["user"], module.params["role"]
    etcd = etcd_options(module.params.get)
    settings = dict(module.params["settings"] or {})
    if "prefix" in etcd and "prefix" not in (settings.get("etcd") or {}):
        settings["etcd"] = {**(settings.get("etcd") or {}), "prefix": etcd["prefix"]}
    etcd.pop("prefix", None)  # the settings' prefix is the one the watcher reads
    try:
        result = edge().etcd_access(
            etcd,
            settings,
            user,
            role,
            present=module.params["state"] == "present",
            check_mode=module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=f"etcd access of user {user} (role {role}): {exc}")
    before, after = result["before"], result["after"]
    module.exit_json(
        changed=before != after,
        prefixes=result["prefixes"],
        access=after,
        diff={"before": json.dumps(before, indent=2) + "\n", "after": json.dumps(after, indent=2) + "\n"},
    )


if __name__ == "__main__":
    main()
