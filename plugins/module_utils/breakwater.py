# Copyright: Breakwater contributors
# Apache License 2.0
"""Shared by Breakwater's modules and lookups: the etcd argument spec and the bridge
to the ``breakwater`` package (one implementation of decode, catalog and render)."""

from __future__ import annotations

import traceback

BREAKWATER_IMPORT_ERROR = None
try:
    from breakwater.edge import edge_view
except ImportError:
    BREAKWATER_IMPORT_ERROR = traceback.format_exc()

ETCD_ARGUMENT_SPEC = dict(
    endpoints=dict(type="list", elements="str", fallback=None),
    ca_file=dict(type="path"),
    cert_file=dict(type="path"),
    key_file=dict(type="path", no_log=False),
    prefix=dict(type="str", default="/registry"),
)

ETCD_ENVIRONMENT = {
    "endpoints": "ETCDCTL_ENDPOINTS",
    "ca_file": "ETCDCTL_CACERT",
    "cert_file": "ETCDCTL_CERT",
    "key_file": "ETCDCTL_KEY",
}


def etcd_options(get_option):
    """The etcd connection options of a plugin, as the breakwater package takes them."""
    options = {}
    for name in ("endpoints", "ca_file", "cert_file", "key_file", "prefix"):
        value = get_option(name)
        if isinstance(value, str) and name == "endpoints":
            value = [item.strip() for item in value.split(",") if item.strip()]
        if value:
            options[name] = value
    return options


def run_edge_view(settings, etcd, output, current_config):
    return edge_view(settings, etcd, output, current_config)
