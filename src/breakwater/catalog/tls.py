"""Certificates: a kubernetes.io/tls Secret or a plain route's PEM, checked to hold a
certificate and its matching private key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
import tempfile
from collections.abc import Mapping
from functools import lru_cache

from breakwater import validate
from breakwater.catalog.model import (
    Certificate,
    Rejected,
)
from breakwater.cluster.index import (
    ClusterIndex,
)


@lru_cache(maxsize=4096)
def check_certificate(pem: str) -> str | None:
    """None if ``pem`` holds a certificate and its matching private key, else the reason.

    Python's ssl module loads private keys only from files, hence the private
    temporary file; the result depends only on ``pem``.
    """
    if "-----BEGIN CERTIFICATE-----" not in pem or "PRIVATE KEY-----" not in pem:
        return "tls.crt or tls.key holds no PEM certificate or private key"
    with tempfile.TemporaryDirectory(prefix="breakwater-cert-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path)
        except ssl.SSLError as exc:
            return f"certificate and key do not load together ({exc.reason or exc})"
    return None


def secret_certificate(index: ClusterIndex, namespace: str, secret_name: str) -> Certificate:
    validate.dns_subdomain(secret_name, "secret name")
    secret = index.get("Secret", namespace, secret_name)
    if secret is None:
        raise Rejected(f"TLS secret {namespace}/{secret_name} does not exist")
    if secret.get("type") != "kubernetes.io/tls":
        raise Rejected(f"secret {namespace}/{secret_name} is not of type kubernetes.io/tls")
    data = secret.get("data") or {}
    try:
        cert = base64.b64decode(data.get("tls.crt", ""), validate=True).decode("ascii")
        key = base64.b64decode(data.get("tls.key", ""), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Rejected(f"secret {namespace}/{secret_name}: tls.crt/tls.key undecodable") from exc
    pem = cert.strip() + "\n" + key.strip() + "\n"
    problem = check_certificate(pem)
    if problem:
        raise Rejected(f"secret {namespace}/{secret_name}: {problem}")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:8]
    return Certificate(
        f"{namespace}_{secret_name}_{digest}", pem, f"Secret {namespace}/{secret_name}"
    )


def plain_certificate(tls: object, name: str, owner: str) -> Certificate:
    if not isinstance(tls, Mapping) or not all(
        isinstance(tls.get(k), str) for k in ("certificate", "key")
    ):
        raise Rejected("tls is {certificate, key} in PEM")
    pem = tls["certificate"].strip() + "\n" + tls["key"].strip() + "\n"
    problem = check_certificate(pem)
    if problem:
        raise Rejected(f"tls: {problem}")
    digest = hashlib.sha256(pem.encode()).hexdigest()[:8]
    return Certificate(f"route_{name}_{digest}", pem, owner)
