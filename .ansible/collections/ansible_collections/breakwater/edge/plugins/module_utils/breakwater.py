# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by Breakwater's modules and lookups: the etcd options and the bridge to the
``breakwater`` package's one face for Ansible, ``breakwater.edge`` (one implementation
of decode, catalog, render and staging)."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import env_fallback

BREAKWATER_IMPORT_ERROR = None  # the traceback, for modules' fail_json
BREAKWATER_IMPORT_EXCEPTION = None  # the exception, for lookups to raise from
try:
    from breakwater import edge as _edge
except ImportError as exc:
    _edge = None
    BREAKWATER_IMPORT_ERROR = traceback.format_exc()
    BREAKWATER_IMPORT_EXCEPTION = exc

# Defined once for every module; the doc fragment breakwater.edge.etcd documents it.
# The ETCDCTL_* fallbacks live here for modules and in the doc fragment's env entries
# for lookups (Ansible applies those itself), nowhere else.
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
    """The etcd connection options that are set, as the package takes them.

    ``get_option`` already applied the ETCDCTL_* fallbacks (the argument spec's for a
    module, the doc fragment's env entries for a lookup).  Ansible splits a list given
    as text ("https://a:2379, https://b:2379") on commas; the items are stripped here.
    """
    options = {}
    for name in ETCD_ARGUMENT_SPEC:
        value = get_option(name)
        if name == "endpoints" and value:
            value = [item.strip() for item in value if item and item.strip()]
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
