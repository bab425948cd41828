# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The part every Breakwater lookup shares: options, the package check, errors."""

from __future__ import annotations

from ansible.errors import AnsibleLookupError
from ansible.module_utils.basic import missing_required_lib
from ansible.plugins.lookup import LookupBase

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    BREAKWATER_IMPORT_EXCEPTION,
    edge,
    etcd_options,
)


class BreakwaterLookup(LookupBase):
    """Subclasses implement answer(); failures become AnsibleLookupError naming what failed."""

    def answer(self, edge_api, terms, etcd):
        raise NotImplementedError

    def describe(self, terms, etcd):
        return ",".join(etcd.get("endpoints") or ["the default endpoint"])

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if BREAKWATER_IMPORT_EXCEPTION is not None:
            raise AnsibleLookupError(missing_required_lib("breakwater")) from BREAKWATER_IMPORT_EXCEPTION
        etcd = etcd_options(self.get_option)
        try:
            return self.answer(edge(), terms, etcd)
        except Exception as exc:
            raise AnsibleLookupError(f"{self._load_name} ({self.describe(terms, etcd)}): {exc}") from exc
