# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared etcd options of the plugins (run by ansible-test units)."""

from __future__ import annotations

import yaml
from ansible.module_utils.basic import env_fallback
from ansible_collections.breakwater.edge.plugins.doc_fragments.etcd import ModuleDocFragment
from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    ETCD_ARGUMENT_SPEC,
    etcd_options,
)

ENVIRONMENT = {
    "endpoints": "ETCDCTL_ENDPOINTS",
    "ca_file": "ETCDCTL_CACERT",
    "cert_file": "ETCDCTL_CERT",
    "key_file": "ETCDCTL_KEY",
}


def test_options_are_taken_as_given_and_endpoints_stripped():
    given = {
        "endpoints": ["https://a:2379", " https://b:2379", ""],
        "ca_file": None,
        "cert_file": "/pki/edge.crt",
        "key_file": None,
        "prefix": "/registry",
    }
    assert etcd_options(given.get) == {
        "endpoints": ["https://a:2379", "https://b:2379"],
        "cert_file": "/pki/edge.crt",
        "prefix": "/registry",
    }


def test_the_environment_is_not_read_a_second_time(monkeypatch):
    # The fallbacks are Ansible's (argument spec, doc fragment); etcd_options never
    # looks at the environment itself.
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://env:2379")
    monkeypatch.setenv("ETCDCTL_CACERT", "/pki/ca.crt")
    assert etcd_options({"prefix": "/custom"}.get) == {"prefix": "/custom"}


def test_module_fallbacks_are_in_the_argument_spec():
    assert set(ETCD_ARGUMENT_SPEC) == {"endpoints", "ca_file", "cert_file", "key_file", "prefix"}
    assert ETCD_ARGUMENT_SPEC["key_file"]["type"] == "path"
    for option, variable in ENVIRONMENT.items():
        assert ETCD_ARGUMENT_SPEC[option]["fallback"] == (env_fallback, [variable])


def test_lookup_fallbacks_are_the_doc_fragments_env_entries():
    options = yaml.safe_load(ModuleDocFragment.LOOKUP)["options"]
    assert set(options) == set(ETCD_ARGUMENT_SPEC)
    for option, variable in ENVIRONMENT.items():
        assert options[option]["env"] == [{"name": variable}]
