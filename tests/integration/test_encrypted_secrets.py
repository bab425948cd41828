"""TLS Secrets encrypted at rest, served by the edge: a real etcd, HAProxy and the watcher.

The values are written as the API server writes them, by an encryptor of this module
made from the API server's source (aes.go, etcd3/store.go): ``k8s:enc:<provider>:v1:
<key name>:``, then for aesgcm a 12-byte nonce and ciphertext-and-tag with the etcd key
as authenticated data, for aescbc a 16-byte IV and CBC over PKCS#7 padding.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import tls_secret
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from harness import (
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    http_get,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)

from breakwater import edge as edge_api
from breakwater.k8s.decode import DecodeError
from breakwater.lab import storage_key, storage_value

TLS = Path(__file__).resolve().parents[1] / "fixtures" / "tls"
GCM_KEY, CBC_KEY, ROGUE_KEY = os.urandom(32), os.urandom(32), os.urandom(16)


def sealed_aesgcm(obj: dict[str, Any], name: str, key: bytes) -> bytes:
    nonce = os.urandom(12)
    aad = storage_key(obj).encode()
    body = nonce + AESGCM(key).encrypt(nonce, storage_value(obj), aad)
    return f"k8s:enc:aesgcm:v1:{name}:".encode() + body


def sealed_aescbc(obj: dict[str, Any], name: str, key: bytes) -> bytes:
    plain = storage_value(obj)
    count = 16 - len(plain) % 16
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = iv + encryptor.update(plain + bytes([count]) * count) + encryptor.finalize()
    return f"k8s:enc:aescbc:v1:{name}:".encode() + body


def encryption_config(path: Path, **extra_gcm_keys: bytes) -> None:
    """The API server's file, as its documentation writes it: new keys first."""
    gcm = {"key1": GCM_KEY, **extra_gcm_keys}
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"aesgcm": {"keys": [_key(n, k) for n, k in gcm.items()]}},
                    {"aescbc": {"keys": [_key("old", CBC_KEY)]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)


def _key(name: str, key: bytes) -> dict[str, str]:
    return {"name": name, "secret": base64.b64encode(key).decode()}


def store_sealed(etcd: Etcd, obj: dict[str, Any], value: bytes) -> None:
    etcd.put(storage_key(obj), value)


def https_certificate(port: int, server_name: str) -> tuple[int, str, str]:
    """(status, body, the served certificate's CN) of a GET over TLS with SNI."""
    context = ssl.create_default_context(cafile=str(TLS / "www.crt"))
    context.load_verify_locations(cafile=str(TLS / "other.crt"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        subject = dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]
        request = f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(), subject


def status_catalog(tmp_path: Path) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "status.json").read_text())["catalog"])


@pytest.fixture
def encrypted_edge(
    tmp_path: Path, etcd: Etcd, haproxy: HAProxy
) -> Iterator[tuple[WatcherProcess, Path]]:
    path = tmp_path / "encryption-config.yaml"
    encryption_config(path)
    config = watcher_config(tmp_path, etcd, haproxy, etcd={"encryption_config": str(path)})
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    yield process, path
    returncode = process.stop()
    print(process.log()[-5000:])
    assert returncode == 0, "the watcher did not exit cleanly on SIGTERM"


def test_encrypted_tls_secrets_are_served_and_one_the_edge_cannot_read_is_rejected_by_name(
    etcd, haproxy, backends, encrypted_edge, tmp_path
) -> None:
    watcher, config_path = encrypted_edge
    web, other = backends("web"), backends("other")
    for name, backend in (("web", web), ("other", other)):
        store(etcd, service("shop", name))
        store(etcd, endpoint_slice("shop", name, [backend.endpoint]))
    www_secret = tls_secret("shop", "www-tls", "www")
    store_sealed(etcd, www_secret, sealed_aesgcm(www_secret, "key1", GCM_KEY))
    other_secret = tls_secret("shop", "other-tls", "other")
    store_sealed(etcd, other_secret, sealed_aescbc(other_secret, "old", CBC_KEY))
    rogue_secret = tls_secret("shop", "rogue-tls", "www")
    store_sealed(etcd, rogue_secret, sealed_aesgcm(rogue_secret, "rogue", ROGUE_KEY))
    store(etcd, ingress("shop", "www", "www.example.com", "web", tls_secret="www-tls"))
    store(etcd, ingress("shop", "other", "other.example.org", "other", tls_secret="other-tls"))
    store(etcd, ingress("shop", "rogue", "rogue.example.com", "web", tls_secret="rogue-tls"))

    status, body, subject = wait_for(
        lambda: https_certificate(haproxy.https_port, "www.example.com"), what="HTTPS (aesgcm)"
    )
    assert (status, body.split()[0], subject) == (200, "web", "www.example.com")
    status, body, subject = https_certificate(haproxy.https_port, "other.example.org")
    assert (status, body.split()[0], subject) == (200, "other", "other.example.org")

    # The Secret sealed with a key the configuration does not hold: rejected by name,
    # its Ingress served over HTTP as with any TLS Secret that cannot be served.
    why = (
        f"encrypted with aesgcm key 'rogue', which {config_path} does not hold (aesgcm keys: key1)"
    )
    catalog = wait_for(lambda: status_catalog(tmp_path), what="the status file")
    rejected = {r["object"]: r["reason"] for r in catalog["rejected"]}
    assert rejected == {
        "Secret shop/rogue-tls": why,
        "Ingress shop/rogue": f"TLS not served: secret shop/rogue-tls: {why}",
    }
    assert http_get(haproxy.http_port, "rogue.example.com")[0] == 200
    sources = {c["source"] for c in catalog["certificates"].values()}
    assert sources == {"Secret shop/www-tls", "Secret shop/other-tls"}

    # The key added to the file, then SIGHUP: read again under the same path.
    encryption_config(config_path, rogue=ROGUE_KEY)
    assert watcher.process is not None
    watcher.process.send_signal(signal.SIGHUP)
    wait_for(lambda: not status_catalog(tmp_path)["rejected"], what="the rejection to go")
    sources = {c["source"] for c in status_catalog(tmp_path)["certificates"].values()}
    assert "Secret shop/rogue-tls" in sources
    assert https_certificate(haproxy.https_port, "www.example.com")[0] == 200


def test_the_lookup_names_an_encrypted_secret_it_cannot_read(etcd) -> None:
    secret = tls_secret("shop", "www-tls", "www")
    store_sealed(etcd, secret, sealed_aesgcm(secret, "key1", GCM_KEY))
    with pytest.raises(DecodeError, match=r"/registry/secrets/shop/www-tls: encrypted at rest"):
        edge_api.k8s_objects({"endpoints": [etcd.endpoint]}, "Secret", "shop")


def test_the_haproxy_roles_render_reads_encrypted_secrets_with_the_keys(
    etcd, tmp_path: Path
) -> None:
    """The haproxy role renders the first haproxy.cfg with the catalog lookup
    (edge_view) on the controller; given the keys (a temporary file, as the role
    writes it), it serves the certificate the watcher serves, so a run of the role on a
    running edge keeps it."""
    secret = tls_secret("shop", "www-tls", "www")
    store_sealed(etcd, secret, sealed_aesgcm(secret, "key1", GCM_KEY))
    keys = tmp_path / "keys.yaml"
    encryption_config(keys)
    settings: dict[str, Any] = {"catalog": {"allow_special_addresses": True}}
    for obj in (
        service("shop", "web"),
        endpoint_slice("shop", "web", [("127.0.0.1", 8080)]),
        ingress("shop", "web", "www.example.com", "web", tls_secret="www-tls"),
    ):
        store(etcd, obj)

    def certificates(view_settings: dict[str, Any]) -> list[str]:
        view = edge_api.edge_view(view_settings, {"endpoints": [etcd.endpoint]}, output="haproxy")
        return [f["content"] for f in view["files"] if f["secret"]]

    with_keys = certificates({**settings, "etcd": {"encryption_config": str(keys)}})
    assert len(with_keys) == 1
    assert (TLS / "www.crt").read_text().strip() in with_keys[0]
    assert certificates(settings) == []  # without the keys: no certificate, none half-read
