#!/usr/bin/python
# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_config
author: Breakwater contributors (@breakwater)
short_description: Put a rendered HAProxy configuration in place, as the watcher does
description:
  - Takes what the P(breakwater.edge.catalog#lookup) lookup renders with O(breakwater.edge.catalog#lookup:output=haproxy)
    and applies it with the watcher's own code, on the LB node.
  - Writes the content-addressed generation directory (route maps, crt-list,
    certificates) and C(node-state.map) when they are missing, then, only when its
    bytes differ, stages C(haproxy.cfg) beside itself, checks it with C(haproxy -c)
    and renames it over the old one (atomic); finally removes every other
    C(gen-*) directory beside the generation.
  - Does not reload HAProxy; notify a handler on change. A failed check fails the
    task and leaves C(haproxy.cfg) as it was.
  - Runs on an LB node, with the watcher's Python (C(/opt/breakwater/venv/bin/python)).
options:
  config:
    description: The rendered C(haproxy.cfg) (the lookup's C(config)).
    type: str
    required: true
  generation_dir:
    description:
      - The generation directory the configuration names (the lookup's C(generation_dir)),
        C(gen-) and 16 hex digits inside the watcher's C(haproxy.config_dir).
    type: path
    required: true
  files:
    description: Files of the generation directory, name to content (the lookup's C(files) that are not secret).
    type: dict
    default: {}
  secret_files:
    description:
      - Files of the generation directory that hold private keys, name to content (the
        lookup's C(files) with C(secret)); written with mode C(0600), never logged.
    type: dict
    default: {}
  config_file:
    description: Where C(haproxy.cfg) lives (the watcher's C(haproxy.config_file)).
    type: path
    required: true
  owner:
    description: Owner of everything the module writes (the watcher's user, which rewrites them).
    type: str
  group:
    description: Group of everything the module writes.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff is C(haproxy.cfg) before and after.
  platform:
    platforms: posix
requirements:
  - the C(breakwater) Python package where the module runs (on LB nodes, the
    watcher's venv C(/opt/breakwater/venv/bin/python))
  - C(haproxy) on the C(PATH), for the check
"""

EXAMPLES = r"""
- name: Render the configuration from etcd, as the watcher would
  ansible.builtin.set_fact:
    rendered: "{{ lookup('breakwater.edge.catalog', output='haproxy', settings=breakwater_settings) }}"
  no_log: true

- name: Put it in place, checked by haproxy -c
  breakwater.edge.haproxy_config:
    config: "{{ rendered.config }}"
    generation_dir: "{{ rendered.generation_dir }}"
    files: "{{ rendered.files | rejectattr('secret') | items2dict(key_name='name', value_name='content') }}"
    secret_files: "{{ rendered.files | selectattr('secret') | items2dict(key_name='name', value_name='content') }}"
    config_file: /etc/haproxy/breakwater/haproxy.cfg
    owner: breakwater
    group: haproxy
  vars:
    ansible_python_interpreter: /opt/breakwater/venv/bin/python
  notify: Reload haproxy
"""

RETURN = r"""
config_file:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/haproxy/breakwater/haproxy.cfg
generation_dir:
  description: The generation directory the configuration uses.
  returned: always
  type: str
  sample: /etc/haproxy/breakwater/gen-0123456789abcdef
written:
  description: What was written (in check mode, would be), among C(node-state.map), the generation directory and C(haproxy.cfg).
  returned: always
  type: list
  elements: str
  sample: ["/etc/haproxy/breakwater/gen-0123456789abcdef", "/etc/haproxy/breakwater/haproxy.cfg"]
pruned:
  description: Older generation directories removed (in check mode, to remove).
  returned: always
  type: list
  elements: str
  sample: ["/etc/haproxy/breakwater/gen-fedcba9876543210"]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    edge,
    require_breakwater,
)


def give_ownership(module, path, owner, group):
    """``owner`` and ``group`` on ``path``, and on everything under it."""
    paths = [path]
    if os.path.isdir(path):
        for directory, subdirectories, names in os.walk(path):
            paths.extend(os.path.join(directory, name) for name in subdirectories + names)
    for each in paths:
        module.set_owner_if_different(each, owner, False)
        module.set_group_if_different(each, group, False)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="str", required=True),
            generation_dir=dict(type="path", required=True),
            files=dict(type="dict", default={}),
            secret_files=dict(type="dict", default={}, no_log=True),
            config_file=dict(type="path", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    require_breakwater(module)
    params = module.params
    try:
        change = edge().install_haproxy_config(
            params["config_file"], params["config"], params["generation_dir"],
            params["files"], params["secret_files"], check_mode=module.check_mode,
        )
    except Exception as exc:
        module.fail_json(msg=f"{params['config_file']}: {exc}", config_file=params["config_file"])
    if not module.check_mode:
        for path in change["written"]:
            give_ownership(module, path, params["owner"], params["group"])
    module.exit_json(
        changed=change["changed"],
        config_file=params["config_file"],
        generation_dir=params["generation_dir"],
        written=list(change["written"]),
        pruned=list(change["pruned"]),
        diff={
            "before": change["before"] or "",
            "after": change["after"],
            "before_header": params["config_file"],
            "after_header": params["config_file"],
        },
    )


if __name__ == "__main__":
    main()
