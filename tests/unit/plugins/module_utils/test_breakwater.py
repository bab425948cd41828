# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared etcd options of the plugins (run by ansible-test units)."""

from __future__ import annotations

from ansible_collections.breakwater.edge.plugins.module_utils.breakwater import (
    ETCD_ARGUMENT_SPEC,
    etcd_options,
)


def test_environment_fallbacks(monkeypatch):
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://a:2379, https://b:2379")
    monkeypatch.setenv("ETCDCTL_CACERT", "/pki/ca.crt")
    given = {
        "endpoints": None,
        "ca_file": None,
        "cert_file": "/pki/edge.crt",
        "key_file": None,
        "prefix": "/registry",
    }
    assert etcd_options(given.get) == {
        "endpoints": ["https://a:2379", "https://b:2379"],
        "ca_file": "/pki/ca.crt",
        "cert_file": "/pki/edge.crt",
        "prefix": "/registry",
    }


def test_explicit_options_win(monkeypatch):
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://env:2379")
    given = {"endpoints": ["https://given:2379"], "prefix": "/custom"}
    assert etcd_options(given.get) == {"endpoints": ["https://given:2379"], "prefix": "/custom"}


def test_argument_spec_has_every_connection_option():
    assert set(ETCD_ARGUMENT_SPEC) == {"endpoints", "ca_file", "cert_file", "key_file", "prefix"}
    assert ETCD_ARGUMENT_SPEC["key_file"]["type"] == "path"
