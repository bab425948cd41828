# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_objects
author: Breakwater contributors (@breakwater)
short_description: Kubernetes objects read straight from the cluster's etcd, decoded
description:
  - Lists one kind's objects from etcd and decodes them (JSON or protobuf) with the
    watcher's own decoder, to Kubernetes' JSON form.
  - Secret values are replaced by C(<redacted>) unless O(reveal_secrets=true).
extends_documentation_fragment:
  - breakwater.edge.etcd.lookup
options:
  _terms:
    description: Not used.
    required: false
  kind:
    description:
      - Service, Endpoints, EndpointSlice, ConfigMap, Secret, Node, Ingress or IngressClass;
        the Gateway API's GatewayClass, Gateway, HTTPRoute or ReferenceGrant (stored as JSON);
        Namespace.
    type: str
    required: true
  namespace:
    description: Only this namespace.
    type: str
  name:
    description: Only this object (needs O(namespace) for namespaced kinds).
    type: str
  label_selector:
    description: Kubernetes label selector, e.g. C(app=web,tier!=db) or C(env in (prod,stage)).
    type: str
  reveal_secrets:
    description: Return Secret values instead of redacting them.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The Ingresses of the shop namespace
  ansible.builtin.debug:
    msg: "{{ lookup('breakwater.edge.k8s_objects', kind='Ingress', namespace='shop') }}"

- name: EndpointSlices of one Service
  ansible.builtin.set_fact:
    slices: "{{ query('breakwater.edge.k8s_objects', kind='EndpointSlice',
                      label_selector='kubernetes.io/service-name=web') }}"
"""

RETURN = r"""
_raw:
  description: The decoded objects, in Kubernetes' JSON form.
  type: list
  elements: dict
  sample: [{"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "shop"}}]
"""

from ansible_collections.breakwater.edge.plugins.plugin_utils.lookup import BreakwaterLookup


class LookupModule(BreakwaterLookup):
    def answer(self, edge_api, terms, etcd):
        return edge_api.k8s_objects(
            etcd,
            self.get_option("kind"),
            self.get_option("namespace"),
            self.get_option("name"),
            self.get_option("label_selector"),
            self.get_option("reveal_secrets"),
        )
