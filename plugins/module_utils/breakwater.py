# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by Breakwater's modules and lookups: the etcd options and the bridge to the
``breakwater`` package (one implementation of decode, catalog and render)."""

from __future__ import annotations

import os
import traceback

from ansible.module_utils.basic import env_fallback

BREAKWATER_IMPORT_ERROR = None
try:
    from breakwater import edge as _edge
except ImportError:
    _edge = None
    BREAKWATER_IMPORT_ERROR = traceback.format_exc()

ETCD_ENVIRONMENT = {
    "endpoints": "ETCDCTL_ENDPOINTS",
    "ca_file": "ETCDCTL_CACERT",
    "cert_file": "ETCDCTL_CERT",
    "key_file": "ETCDCTL_KEY",
}

# Defined once for every module; the doc fragment breakwater.edge.etcd documents it.
ETCD_ARGUMENT_SPEC = dict(
    endpoints=dict(type="list", elements="str", fallback=(env_fallback, ["ETCDCTL_ENDPOINTS"])),
    ca_file=dict(type="path", fallback=(env_fallback, ["ETCDCTL_CACERT"])),
    cert_file=dict(type="path", fallback=(env_fallback, ["ETCDCTL_CERT"])),
    key_file=dict(type="path", no_log=False, fallback=(env_fallback, ["ETCDCTL_KEY"])),
    prefix=dict(type="str", default="/registry"),
)

# For modules that run on an LB node; documented by the doc fragment breakwater.edge.node.
NODE_ARGUMENT_SPEC = dict(
    socket=dict(type="path", default="/run/haproxy/admin.sock"),
)


def etcd_options(get_option):
    """The etcd connection options (with ETCDCTL_* fallbacks), as the package takes them."""
    options = {}
    for name in ("endpoints", "ca_file", "cert_file", "key_file", "prefix"):
        value = get_option(name)
        if not value and name in ETCD_ENVIRONMENT:
            value = os.environ.get(ETCD_ENVIRONMENT[name])
        if isinstance(value, str) and name == "endpoints":
            value = [item.strip() for item in value.split(",") if item.strip()]
        if value:
            options[name] = value
    return options


def require_breakwater(module):
    """Fail the module, the standard way, when the breakwater package is missing."""
    if BREAKWATER_IMPORT_ERROR is not None:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("breakwater"), exception=BREAKWATER_IMPORT_ERROR)


def edge():
    """The breakwater.edge module of the package (call after checking the import)."""
    return _edge
