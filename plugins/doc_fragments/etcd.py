# Copyright: Breakwater contributors
# Apache License 2.0
"""Connection options to etcd, shared by every Breakwater lookup and module."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - etcd endpoints, C(https://host:port) or C(host:port); the first that answers is used.
      - Falls back to the C(ETCDCTL_ENDPOINTS) environment variable (comma-separated).
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
