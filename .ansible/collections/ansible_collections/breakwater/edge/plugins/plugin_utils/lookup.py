# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The part every Breakwater lookup shares: options, the package check, errors."""

from __future__ import annotations

from ansible.errors import AnsibleLookupError, AnsibleOptionsError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.lookup import LookupBase

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    BREAKWATER_IMPORT_EXCEPTION,
    ETCD_ARGUMENT_SPEC,
    edge,
    etcd_options,
)

# The play's etcd connection, for lookups: Ansible applies module_defaults to modules
# only, so a play that sets group/breakwater.edge.etcd from this variable gives its
# lookups the same connection.
SHARED_CONNECTION = "breakwater_etcd"


class BreakwaterLookup(LookupBase):
    """Subclasses implement answer(); failures become AnsibleLookupError naming what failed."""

    def answer(self, edge_api, terms, etcd):
        raise NotImplementedError

    def describe(self, terms, etcd):
        return ",".join(etcd.get("endpoints") or ["the default endpoint"])

    def shared_connection(self, variables):
        """The breakwater_etcd variable's options (the lookup's own arguments win)."""
        shared = (variables or {}).get(SHARED_CONNECTION)
        if shared is None:
            return {}
        shared = self._templar.template(shared)
        if not isinstance(shared, dict):
            raise AnsibleOptionsError(f"{SHARED_CONNECTION} must be a dictionary of etcd options")
        unknown = sorted(set(shared) - set(ETCD_ARGUMENT_SPEC))
        if unknown:
            raise AnsibleOptionsError(
                f"{SHARED_CONNECTION}: unknown option(s) {', '.join(unknown)};"
                f" expected some of {', '.join(sorted(ETCD_ARGUMENT_SPEC))}"
            )
        return {name: value for name, value in shared.items() if value is not None}

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct={**self.shared_connection(variables), **kwargs})
        if BREAKWATER_IMPORT_EXCEPTION is not None:
            raise AnsibleLookupError(missing_required_lib("breakwater")) from BREAKWATER_IMPORT_EXCEPTION
        etcd = etcd_options(self.get_option)
        try:
            return self.answer(edge(), terms, etcd)
        except Exception as exc:
            raise AnsibleLookupError(f"{self._load_name} ({self.describe(terms, etcd)}): {exc}") from exc
