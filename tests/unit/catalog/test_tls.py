"""Certificate checks (catalog/tls.py): parsed in memory with cryptography, refusing
what HAProxy's OpenSSL refuses at security level 2; cross-checked with `haproxy -c`."""

from __future__ import annotations

import base64
import builtins
import datetime
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from breakwater.catalog.model import Rejected
from breakwater.catalog.tls import (
    check_certificate,
    plain_certificate,
    plain_pem,
    secret_certificate,
)
from breakwater.cluster.index import index_objects

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tls"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

# Signed with ecdsa-with-SHA1 by another key (cryptography no longer signs with SHA-1):
# HAProxy refuses it ("unable to load SSL certificate").
SHA1_SIGNED = """\
-----BEGIN CERTIFICATE-----
MIIBMDCB2AIUGaZfn1BliG7x/hzKUWep5+gEwkMwCQYHKoZIzj0EATAbMRkwFwYD
VQQDDBBFeGFtcGxlIFNIQS0xIENBMCAXDTI2MTEzMDA4MzQxNFoYDzIxMjYxMTA2
MDgzNDE0WjAbMRkwFwYDVQQDDBBzaGExLmV4YW1wbGUuY29tMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAE+6UeLWDwro9OHaC9TEsiwOG2zBYDoCE21ScuUxoyNmLA
f84lJYVDRGqDmmWoqRcnAFC3Tdyp7KzqJ1u2z3mSfjAJBgcqhkjOPQQBA0gAMEUC
IGuLm/8mxAR2NEdnvyi9XgfBPOLpVYhRP8TGMNMzPeyLAiEAyL5NnYqofzSJ9shu
M/66B2Ew2J3D+BBsrgo8r33wYrk=
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnlrjN48BFM/Q2WHR
ika0fh7+fwQTiIjTb+7o2+yOUoihRANCAAT7pR4tYPCuj04doL1MSyLA4bbMFgOg
ITbVJy5TGjI2YsB/ziUlhUNEaoOaZaipFycAULdN3KnsrOonW7bPeZJ+
-----END PRIVATE KEY-----
"""

# Self-signed with ecdsa-with-SHA1: OpenSSL never weighs a self-signature; HAProxy takes it.
SELF_SIGNED_SHA1 = """\
-----BEGIN CERTIFICATE-----
MIIBizCCATKgAwIBAgIUd0U4A81yeL+gWLDhxbrmCxe2BgkwCQYHKoZIzj0EATAb
MRkwFwYDVQQDDBBzZWxmLmV4YW1wbGUuY29tMCAXDTI2MTEzMDA4MzkzNFoYDzIx
MjYxMTA2MDgzOTM0WjAbMRkwFwYDVQQDDBBzZWxmLmV4YW1wbGUuY29tMFkwEwYH
KoZIzj0CAQYIKoZIzj0DAQcDQgAEiqNxRoaYeYqGCctsBtFazYONieqBig4BV3cU
6SRmm7+nVT61SJQjc80w5oVdrHKRwde+7xn8BisHvgO/5ltXm6NTMFEwHQYDVR0O
BBYEFOAibxGWlw4SiK+Lc7BFEjKuikXNMB8GA1UdIwQYMBaAFOAibxGWlw4SiK+L
c7BFEjKuikXNMA8GA1UdEwEB/wQFMAMBAf8wCQYHKoZIzj0EAQNIADBFAiEA9XzT
WRcMgswXcYHB53Xk8jeo0+lBB1R19YbFAhubIJECIEVN7GfU4xXyUGlcjFeevBMp
NjfiNPWlzF7DmRaTXjmS
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHUDjlDhLm+3+tDeL
UrijbgZq9bCLGMSFtEt8ZlWFR+KhRANCAASKo3FGhph5ioYJy2wG0VrNg42J6oGK
DgFXdxTpJGabv6dVPrVIlCNzzTDmhV2scpHB177vGfwGKwe+A7/mW1eb
-----END PRIVATE KEY-----
"""


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def certificate(
    key: object,
    name: str = "www.example.com",
    issuer_key: object = None,
    issuer: str | None = None,
    ca: bool = False,
) -> x509.Certificate:
    signer = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)  # type: ignore[arg-type]


def cert_pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def key_pem(
    key: object,
    private_format: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    password: bytes | None = None,
) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, private_format, encryption
    ).decode()


def pair(key: object) -> str:
    return cert_pem(certificate(key)) + key_pem(key)


def ca_chain(ca_bits: int) -> str:
    """A leaf signed by a CA, the CA's certificate after it, then the leaf's key."""
    ca, leaf = rsa_key(ca_bits), rsa_key()
    ca_cert = certificate(ca, "Example CA", ca=True)
    leaf_cert = certificate(leaf, issuer_key=ca, issuer="Example CA")
    return cert_pem(leaf_cert, ca_cert) + key_pem(leaf)


# name -> (PEM, None when served, else a part of the reason); each also goes to haproxy -c.
def cases() -> dict[str, tuple[str, str | None]]:
    key, other = rsa_key(), rsa_key()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    small_curve = ec.generate_private_key(ec.SECP192R1())
    garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    return {
        "rsa-2048": (pair(key), None),
        "rsa-traditional-key": (
            cert_pem(certificate(key))
            + key_pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
            None,
        ),
        "key-first": (key_pem(key) + cert_pem(certificate(key)), None),
        "ec-p256": (pair(ec_key), None),
        "ec-p256-sec1-key": (
            cert_pem(certificate(ec_key))
            + key_pem(ec_key, serialization.PrivateFormat.TraditionalOpenSSL),
            None,
        ),
        "ed25519": (pair(ed25519.Ed25519PrivateKey.generate()), None),
        "chain": (ca_chain(2048), None),
        "mismatching-key": (cert_pem(certificate(key)) + key_pem(other), "does not match"),
        "garbage-certificate": (garbage + key_pem(key), "certificate does not parse"),
        "garbage-key": (
            cert_pem(certificate(key))
            + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "private key does not parse",
        ),
        "encrypted-key": (
            cert_pem(certificate(key)) + key_pem(key, password=b"secret"),
            "private key is encrypted",
        ),
        "encrypted-traditional-key": (
            cert_pem(certificate(key))
            + key_pem(key, serialization.PrivateFormat.TraditionalOpenSSL, b"secret"),
            "private key is encrypted",
        ),
        "rsa-1024": (pair(rsa_key(1024)), "1024-bit RSA key"),
        "ec-p192": (pair(small_curve), "secp192r1 (192 bits)"),
        "small-ca-in-chain": (ca_chain(1024), "chain certificate 2 (CN=Example CA)"),
        "sha1-signature": (SHA1_SIGNED, "signed with SHA1"),
        "sha1-self-signed": (SELF_SIGNED_SHA1, None),
    }


CASES = cases()


@pytest.mark.parametrize("name", CASES)
def test_check_certificate(name: str) -> None:
    pem, reason = CASES[name]
    problem = check_certificate(pem)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem


def test_no_pem_at_all() -> None:
    assert "no PEM certificate or private key" in str(check_certificate("hello"))
    assert "no PEM" in str(check_certificate(cert_pem(certificate(rsa_key()))))


def test_an_unfinished_key_block() -> None:
    key = rsa_key()
    pem = cert_pem(certificate(key)) + key_pem(key)[:200]
    assert "not a complete PEM block" in str(check_certificate(pem))


def test_fixtures() -> None:
    www = (FIXTURES / "www.crt").read_text() + (FIXTURES / "www.key").read_text()
    mixed = (FIXTURES / "www.crt").read_text() + (FIXTURES / "other.key").read_text()
    assert check_certificate(www) is None
    assert "does not match" in str(check_certificate(mixed))


def test_no_file_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the catalog does no I/O")

    for module, name in ((builtins, "open"), (os, "open"), (tempfile, "mkstemp")):
        monkeypatch.setattr(module, name, refuse)
    key = rsa_key()
    assert check_certificate(pair(key) + "\n") is None
    assert check_certificate(cert_pem(certificate(key)) + key_pem(rsa_key())) is not None


def test_plain_route_tls() -> None:
    key = rsa_key()
    tls = {"certificate": cert_pem(certificate(key)), "key": key_pem(key)}
    assert plain_pem(tls).count("-----BEGIN") == 2
    assert plain_certificate(tls, "billing", "BreakwaterRoute billing").name.startswith(
        "route_billing_"
    )
    with pytest.raises(Rejected, match=r"tls is \{certificate, key\}"):
        plain_pem({"certificate": tls["certificate"]})
    with pytest.raises(Rejected, match="tls: the private key does not match"):
        plain_pem({**tls, "key": key_pem(rsa_key())})


def secret(name: str, crt: str, key: str) -> dict[str, object]:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"namespace": "shop", "name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt.encode()).decode(),
            "tls.key": base64.b64encode(key.encode()).decode(),
        },
    }


def test_secret_certificate() -> None:
    small = rsa_key(1024)
    key = rsa_key()
    index = index_objects(
        [
            secret("good", cert_pem(certificate(key)), key_pem(key)),
            secret("small", cert_pem(certificate(small)), key_pem(small)),
        ]
    )
    assert secret_certificate(index, "shop", "good").source == "Secret shop/good"
    with pytest.raises(Rejected, match="secret shop/small: the certificate has a 1024-bit RSA"):
        secret_certificate(index, "shop", "small")


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
@pytest.mark.parametrize("name", CASES)
def test_haproxy_agrees(name: str, tmp_path: Path) -> None:
    """What the check refuses, `haproxy -c` refuses too, and the other way round."""
    pem, reason = CASES[name]
    (tmp_path / "site.pem").write_text(pem)
    (tmp_path / "crt-list").write_text(f"{tmp_path / 'site.pem'}\n")
    (tmp_path / "haproxy.cfg").write_text(
        "defaults\n  mode http\n  timeout client 1s\n  timeout server 1s\n"
        "  timeout connect 1s\nfrontend https\n"
        f"  bind 127.0.0.1:8443 ssl crt-list {tmp_path / 'crt-list'}\n"
        "  default_backend app\nbackend app\n  server app 127.0.0.1:8080\n"
    )
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (checked.returncode == 0) == (reason is None), checked.stdout + checked.stderr
