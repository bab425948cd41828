"""Secrets are held as stored -- encrypted at rest or not -- and decrypted and decoded only
when a route names one; one that cannot be read is rejected by name, the rest serves."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from builders import READY, endpoint_slice, ingress, route_configmap, service, tls_secret
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from breakwater.catalog.live import LiveCatalog
from breakwater.catalog.model import Catalog
from breakwater.cluster import state as state_module
from breakwater.cluster.index import StoredSecret
from breakwater.cluster.source import Change, EtcdSettings
from breakwater.cluster.state import ClusterState
from breakwater.config import Config
from breakwater.k8s.encryption import parse_encryption_config
from breakwater.lab import storage_key, storage_value

KEY1, ROGUE = bytes(range(32)), bytes(range(32, 64))


def encryption_config(*named: tuple[str, bytes]) -> str:
    keys = [{"name": name, "secret": base64.b64encode(key).decode()} for name, key in named]
    return json.dumps(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [{"aesgcm": {"keys": keys}}, {"identity": {}}],
                }
            ],
        }
    )


def sealed(obj: dict[str, Any], key_name: str = "key1", key: bytes = KEY1) -> bytes:
    """As the API server's aesgcm provider writes it: a 12-byte nonce, then ciphertext and
    tag, the etcd key as authenticated data (aes.go, etcd3/store.go)."""
    nonce = os.urandom(12)
    aad = storage_key(obj).encode()
    return (
        f"k8s:enc:aesgcm:v1:{key_name}:".encode()
        + nonce
        + AESGCM(key).encrypt(nonce, storage_value(obj), aad)
    )


def put(
    state: ClusterState, obj: dict[str, Any], revision: int, value: bytes | None = None
) -> None:
    state.apply(
        [Change(storage_key(obj), storage_value(obj) if value is None else value, revision)]
    )


def routed_state() -> ClusterState:
    state = ClusterState(
        "/registry/",
        encryption=parse_encryption_config(encryption_config(("key1", KEY1)), "enc.json"),
    )
    put(state, service("shop", "web"), 1)
    put(state, endpoint_slice("shop", "web", [("10.0.0.1", READY)]), 2)
    tls = [{"hosts": ["www.example.com"], "secretName": "www-tls"}]
    put(state, ingress("shop", "www", [("www.example.com", "/", "Prefix", "web")], tls=tls), 3)
    www = tls_secret("shop", "www-tls", "www")
    put(state, www, 4, sealed(www))
    return state


def rejected(catalog: Catalog) -> dict[str, str]:
    return {r.object: r.reason for r in catalog.rejected}


def test_only_the_secrets_routes_name_are_decoded_and_none_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    real_decode = state_module.decode

    def counting(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
        decoded.append(key)
        return real_decode(key, value, lean=lean)

    monkeypatch.setattr(state_module, "decode", counting)
    state = routed_state()
    unused = tls_secret("shop", "unused-tls", "other")
    unused_value = sealed(unused)
    put(state, unused, 5, unused_value)
    put(state, tls_secret("kube-system", "plain"), 6)
    assert not [key for key in decoded if "/secrets/" in key]  # held as stored
    held = state.secrets["/registry/secrets/shop/unused-tls"]
    assert held == StoredSecret("/registry/secrets/shop/unused-tls", unused_value)
    assert held.value is unused_value
    assert "Secret" not in state.index.by_kind and "/registry/secrets" not in str(state.objects)

    live = LiveCatalog()
    catalog, _ = live.update(state, Config().catalog)
    assert [c.source for c in catalog.certificates.values()] == ["Secret shop/www-tls"]
    assert [key for key in decoded if "/secrets/" in key] == ["/registry/secrets/shop/www-tls"]
    assert rejected(catalog) == {}
    # Kept decoded while a route names it: the next full build does not decode it again.
    assert list(state.index._decoded) == [("shop", "www-tls")]
    state.rebuild_next()
    assert live.update(state, Config().catalog)[0] == catalog
    assert len([key for key in decoded if "/secrets/" in key]) == 1
    # No route names it any more: let go.
    state.apply([Change("/registry/ingress/shop/www", None, 7)])
    catalog, _ = live.update(state, Config().catalog)
    assert catalog.certificates == {} and state.index._decoded == {}
    assert state.index._read is None


def test_a_secret_named_twice_is_read_once_per_build(monkeypatch: pytest.MonkeyPatch) -> None:
    state = routed_state()
    tls = [{"hosts": ["api.example.com"], "secretName": "www-tls"}]
    put(state, ingress("shop", "api", [("api.example.com", "/", "Prefix", "web")], tls=tls), 5)
    put(
        state,
        route_configmap("shop", "web", {"hosts": "cm.example.com", "tls-secret": "www-tls"}),
        6,
    )
    reads: list[str] = []
    real = state._read_secret
    monkeypatch.setattr(
        state.index, "secret_reader", lambda s, i: reads.append(s.key) or real(s, i)
    )
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert reads == ["/registry/secrets/shop/www-tls"]
    assert len(catalog.certificates) == 1 and rejected(catalog) == {}


def test_a_secret_encrypted_with_a_key_not_held_is_rejected_by_name_and_the_rest_serves() -> None:
    state = routed_state()
    tls = [{"hosts": ["rogue.example.com"], "secretName": "rogue-tls"}]
    put(state, ingress("shop", "rogue", [("rogue.example.com", "/", "Prefix", "web")], tls=tls), 5)
    rogue = tls_secret("shop", "rogue-tls", "other")
    put(state, rogue, 6, sealed(rogue, "rogue", ROGUE))
    put(
        state,
        route_configmap("shop", "web", {"hosts": "cm.example.com", "tls-secret": "rogue-tls"}),
        7,
    )
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    why = "encrypted with aesgcm key 'rogue', which enc.json does not hold (aesgcm keys: key1)"
    assert rejected(catalog) == {
        "Secret shop/rogue-tls": why,
        "Ingress shop/rogue": f"TLS not served: secret shop/rogue-tls: {why}",
        "ConfigMap shop/web": f"secret shop/rogue-tls: {why}",
    }
    # As with any TLS Secret that cannot be served: the Ingress's routes stay (HTTP).
    assert {r.host for r in catalog.routes} == {"www.example.com", "rogue.example.com"}
    assert [c.source for c in catalog.certificates.values()] == ["Secret shop/www-tls"]
    json.dumps(catalog.as_dict())  # the status file can always be written


def test_a_value_copied_under_another_key_is_not_read() -> None:
    state = routed_state()
    www = tls_secret("shop", "www-tls", "www")
    copy = tls_secret("shop", "copy-tls", "www")
    put(state, copy, 5, sealed(www))  # www-tls's value, authenticated for its own key
    tls = [{"hosts": ["copy.example.com"], "secretName": "copy-tls"}]
    put(state, ingress("shop", "copy", [("copy.example.com", "/", "Prefix", "web")], tls=tls), 6)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert "copied from another etcd key" in rejected(catalog)["Secret shop/copy-tls"]


def test_an_unencrypted_secret_is_checked_against_its_key_when_read() -> None:
    state = routed_state()
    impostor = tls_secret("shop", "www-tls", "other")
    state.apply([Change("/registry/secrets/shop/other-tls", storage_value(impostor), 5)])
    tls = [{"hosts": ["o.example.com"], "secretName": "other-tls"}]
    put(state, ingress("shop", "o", [("o.example.com", "/", "Prefix", "web")], tls=tls), 6)
    catalog, _ = LiveCatalog().update(state, Config().catalog)
    assert (
        "metadata.name 'www-tls' disagrees with its key"
        in rejected(catalog)["Secret shop/other-tls"]
    )


def test_a_secret_change_rebuilds_the_routes_that_name_it() -> None:
    state, live = routed_state(), LiveCatalog()
    first, _ = live.update(state, Config().catalog)
    other = tls_secret("shop", "www-tls", "other")
    put(state, other, 10, sealed(other))
    assert not live.servers_only(state)
    second, changed = live.update(state, Config().catalog)
    assert changed is None and second.certificates != first.certificates
    state.apply([Change("/registry/secrets/shop/www-tls", None, 11)])
    assert state.secrets == {} and state.index.stored_secrets == {}
    third, _ = live.update(state, Config().catalog)
    assert third.certificates == {}
    assert "does not exist" in rejected(third)["Ingress shop/www"]


def test_reloading_the_encryption_configuration_reads_what_it_could_not(tmp_path: Path) -> None:
    path = tmp_path / "enc.json"
    path.write_text(encryption_config(("key1", KEY1)))
    settings = EtcdSettings(encryption_config=str(path))
    state, live = ClusterState.for_settings(settings), LiveCatalog()
    assert state.encryption.origin == str(path)
    tls = [{"hosts": ["rogue.example.com"], "secretName": "rogue-tls"}]
    put(state, service("shop", "web"), 1)
    put(state, ingress("shop", "rogue", [("rogue.example.com", "/", "Prefix", "web")], tls=tls), 2)
    rogue = tls_secret("shop", "rogue-tls", "other")
    put(state, rogue, 3, sealed(rogue, "rogue", ROGUE))
    catalog, _ = live.update(state, Config().catalog)
    assert "Secret shop/rogue-tls" in rejected(catalog)
    state.reload_encryption(settings)  # the same file: nothing to do
    assert live.servers_only(state)
    path.write_text(encryption_config(("key1", KEY1), ("rogue", ROGUE)))
    state.reload_encryption(settings)  # SIGHUP after the key was added
    assert not live.servers_only(state)
    catalog, _ = live.update(state, Config().catalog)
    assert rejected(catalog) == {} and len(catalog.certificates) == 1
    path.write_text(encryption_config(("key1", KEY1)))
    state.reload_encryption(settings)  # the key removed: what it opened is read again
    catalog, _ = live.update(state, Config().catalog)
    assert "Secret shop/rogue-tls" in rejected(catalog) and catalog.certificates == {}
