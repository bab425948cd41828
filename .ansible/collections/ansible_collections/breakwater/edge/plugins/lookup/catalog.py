# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: catalog
author: Breakwater contributors (@breakwater)
short_description: What Breakwater's watcher would serve, read from the cluster's etcd
description:
  - Lists the Kubernetes objects in etcd and runs the very catalog and templates the
    watcher runs, so a role's first configuration equals what the watcher would write.
  - O(output=catalog) gives the routing model (routes, backends, servers, rejected
    objects with reasons); O(output=haproxy) gives C(haproxy.cfg) and the files of its
    generation directory (for M(breakwater.edge.haproxy_config)); O(output=vcl) gives
    the VCL (no etcd access); O(output=settings) gives only C(settings) (no etcd access).
  - Every result carries C(settings), the effective watcher configuration.
extends_documentation_fragment:
  - breakwater.edge.etcd.lookup
options:
  _terms:
    description: Not used.
    required: false
  settings:
    description: The watcher configuration, as in C(watcher.yml) (sections etcd, catalog, haproxy, varnish).
    type: dict
    default: {}
  output:
    description: What to return.
    type: str
    choices: [catalog, haproxy, vcl, settings]
    default: catalog
  current_config:
    description: The C(haproxy.cfg) now on the node; its server slots are kept.
    type: str
"""

EXAMPLES = r"""
- name: Show the routing model
  ansible.builtin.debug:
    msg: "{{ lookup('breakwater.edge.catalog', endpoints=['https://10.0.0.11:2379'],
             ca_file='pki/ca.crt', cert_file='pki/edge.crt', key_file='pki/edge.key') }}"

- name: Render haproxy.cfg as the watcher would
  ansible.builtin.set_fact:
    rendered: "{{ lookup('breakwater.edge.catalog', output='haproxy', settings=breakwater_settings) }}"

- name: The effective configuration alone (defaults filled in; no etcd read)
  ansible.builtin.set_fact:
    effective: "{{ lookup('breakwater.edge.catalog', output='settings', settings=breakwater_settings)['settings'] }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    settings:
      description: The effective watcher configuration.
      type: dict
      sample: {"catalog": {"ingress_class": "breakwater", "mode": "pods"}}
    revision:
      description: The etcd revision the objects were read at.
      type: int
      sample: 4211
    catalog:
      description: Routes, backends with servers, certificate names, rejected objects (O(output=catalog)).
      type: dict
      sample: {"routes": [{"host": "shop.example.com", "path": "/", "backend": "be_shop_web_http"}], "rejected": []}
    config:
      description: The rendered C(haproxy.cfg) (O(output=haproxy)).
      type: str
      sample: "global\n    maxconn 4096\n"
    generation_dir:
      description: Directory the configuration names for its maps and certificates (O(output=haproxy)).
      type: str
      sample: /etc/haproxy/breakwater/gen-0123456789abcdef
    files:
      description: Files of the generation directory; C(secret) ones hold private keys (O(output=haproxy)).
      type: list
      sample: [{"name": "routes-exact.map", "content": "", "secret": false}]
    vcl:
      description: The rendered VCL (O(output=vcl)).
      type: str
      sample: "vcl 4.1;\n"
"""

from ansible_collections.breakwater.edge.plugins.plugin_utils.lookup import BreakwaterLookup


class LookupModule(BreakwaterLookup):
    def answer(self, edge_api, terms, etcd):
        return [
            edge_api.edge_view(
                self.get_option("settings"),
                etcd,
                self.get_option("output"),
                self.get_option("current_config"),
            )
        ]
