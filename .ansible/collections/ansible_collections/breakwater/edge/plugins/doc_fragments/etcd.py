# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection options to etcd, shared by every Breakwater lookup and module."""

from __future__ import annotations


class ModuleDocFragment:
    # For modules: the ETCDCTL_* variables of the module's environment are fallbacks.
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - etcd endpoints, C(https://host:port) or C(host:port); the first that answers is used.
      - Falls back to the C(ETCDCTL_ENDPOINTS) environment variable (comma-separated).
    type: list
    elements: str
  ca_file:
    description: CA bundle that signed etcd's server certificate; falls back to C(ETCDCTL_CACERT).
    type: path
  cert_file:
    description: Client certificate for etcd; falls back to C(ETCDCTL_CERT).
    type: path
  key_file:
    description: Private key of O(cert_file); falls back to C(ETCDCTL_KEY). Never logged.
    type: path
  prefix:
    description: Key prefix of the Kubernetes API server (its C(--etcd-prefix)).
    type: str
    default: /registry
"""

    # For lookups: the same options, with their environment variables declared.
    LOOKUP = r"""
notes:
  - The play variable C(breakwater_etcd), a dictionary of these options, sets them for
    every Breakwater lookup; an option given to the lookup wins over it, and it wins over
    the environment. Ansible applies C(module_defaults) to modules only, so a play sets
    C(module_defaults) for the C(group/breakwater.edge.etcd) action group from the same
    variable to give modules and lookups one connection.
options:
  endpoints:
    description:
      - etcd endpoints, C(https://host:port) or C(host:port); the first that answers is used.
    type: list
    elements: str
    env:
      - name: ETCDCTL_ENDPOINTS
  ca_file:
    description: CA bundle that signed etcd's server certificate.
    type: path
    env:
      - name: ETCDCTL_CACERT
  cert_file:
    description: Client certificate for etcd.
    type: path
    env:
      - name: ETCDCTL_CERT
  key_file:
    description: Private key of O(cert_file). Never logged.
    type: path
    env:
      - name: ETCDCTL_KEY
  prefix:
    description: Key prefix of the Kubernetes API server (its C(--etcd-prefix)).
    type: str
    default: /registry
requirements:
  - the C(breakwater) Python package on the controller (C(pip install) this collection's root)
"""
