"""Certificates: a kubernetes.io/tls Secret or a plain route's PEM, checked to hold a
certificate and its matching private key that HAProxy will load.

HAProxy loads a PEM file through OpenSSL at security level 2 (Debian's default), and
refuses the whole configuration when one file fails: every check OpenSSL makes there is
made here first, from memory, so that a bad certificate rejects its object instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PSS, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from breakwater import validate
from breakwater.catalog.model import (
    Certificate,
    Rejected,
)
from breakwater.cluster.index import (
    Object,
    SecretUnreadable,
)

# OpenSSL security level 2: 112 bits of security.  RSA and DSA keys of 2048 bits and
# curves of 224 bits give that; so does a signature hash of 224 bits (SHA-1 and MD5 are
# refused, except on a self-signed certificate, whose signature OpenSSL never checks).
# (OpenSSL rounds: it takes RSA keys from 1963 bits.  Nobody makes those; 2048 it is.)
MIN_RSA_DSA_BITS = 2048
MIN_CURVE_BITS = 224
MIN_SIGNATURE_HASH_BITS = 224

_ENCRYPTED = "the private key is encrypted; HAProxy needs it unencrypted"


class CertificateProblem(ValueError):
    """Why a certificate and key would not be served; the message says it."""


def _key_problem(key: CertificatePublicKeyTypes, what: str) -> str | None:
    """Why OpenSSL at security level 2 refuses this public key, or None."""
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        if key.key_size < MIN_RSA_DSA_BITS:
            return (
                f"{what} has a {key.key_size}-bit {kind} key; HAProxy's OpenSSL refuses "
                f"keys below {MIN_RSA_DSA_BITS} bits"
            )
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_CURVE_BITS:
            return (
                f"{what} has an EC key on {key.curve.name} ({key.curve.key_size} bits); "
                f"HAProxy's OpenSSL refuses curves below {MIN_CURVE_BITS} bits"
            )
        return None
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    return f"{what} has a key HAProxy cannot sign with ({type(key).__name__})"


def _signature_problem(certificate: x509.Certificate, what: str) -> str | None:
    try:
        algorithm = certificate.signature_hash_algorithm  # None for Ed25519 and Ed448
    except UnsupportedAlgorithm:
        return f"{what} is signed with an algorithm that is not supported here"
    if algorithm is None or algorithm.digest_size * 8 >= MIN_SIGNATURE_HASH_BITS:
        return None
    if _self_signed(certificate, algorithm):
        return None  # OpenSSL does not weigh the signature of a self-signed certificate
    return (
        f"{what} is signed with {algorithm.name.upper()}; HAProxy's OpenSSL refuses "
        f"signature hashes below {MIN_SIGNATURE_HASH_BITS} bits"
    )


def _self_signed(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bool:
    """OpenSSL's test (issuer is subject, the authority key identifier is its own) and,
    stricter, its signature verifies with its own key: when in doubt, not self-signed."""
    if certificate.issuer != certificate.subject:
        return False
    try:
        authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        subject_key_id: bytes | None = certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        authority, subject_key_id = None, None
    if authority is not None and authority.value.key_identifier not in (None, subject_key_id):
        return False
    key = certificate.public_key()
    signature, signed = certificate.signature, certificate.tbs_certificate_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey):
            padding = certificate.signature_algorithm_parameters
            if not isinstance(padding, PKCS1v15 | PSS):
                return False
            key.verify(signature, signed, padding, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, signed, algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _public_key(certificate: x509.Certificate, what: str) -> CertificatePublicKeyTypes:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateProblem(f"{what} holds a public key that does not parse") from exc


def _load_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate in ``pem``, in order: the first is served, the rest its chain."""
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateProblem("the certificate does not parse (not X.509 in PEM)") from exc


def _load_private_key(pem: str) -> PrivateKeyTypes:
    """The first private key in ``pem``, as OpenSSL takes it."""
    begin = re.search(r"-----BEGIN ((?:[A-Z]+ )?PRIVATE KEY)-----", pem)
    end = pem.find(f"-----END {begin[1]}-----", begin.end()) if begin else -1
    if begin is None or end < 0:
        raise CertificateProblem("the private key is not a complete PEM block")
    if begin[1] == "ENCRYPTED PRIVATE KEY":
        raise CertificateProblem(_ENCRYPTED)
    block = pem[begin.start() : end + len(f"-----END {begin[1]}-----")]
    try:
        # Only the key's public half is compared, as OpenSSL compares it when HAProxy
        # loads the file; checking an RSA key's primes would cost 0.1 s a certificate.
        return serialization.load_pem_private_key(
            block.encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
    except TypeError as exc:  # a traditional key with Proc-Type: 4,ENCRYPTED
        raise CertificateProblem(_ENCRYPTED) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateProblem(
            "the private key does not parse (PKCS#8, RSA, EC or DSA in PEM)"
        ) from exc


def _problem(pem: str) -> str | None:
    certificates = _load_certificates(pem)
    leaf, chain = certificates[0], certificates[1:]
    key = _load_private_key(pem)
    leaf_key = _public_key(leaf, "the certificate")
    if _spki(key.public_key()) != _spki(leaf_key):
        return "the private key does not match the certificate (the first one in the PEM)"
    problems = [
        _key_problem(leaf_key, "the certificate"),
        _signature_problem(leaf, "the certificate"),
    ]
    for number, certificate in enumerate(chain, start=2):
        what = f"chain certificate {number} ({certificate.subject.rfc4514_string()[:80]})"
        problems.append(_key_problem(_public_key(certificate, what), what))
        problems.append(_signature_problem(certificate, what))
    return next((problem for problem in problems if problem), None)


def _spki(key: PublicKeyTypes) -> bytes:
    try:
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateProblem("the key is of a type HAProxy cannot serve") from exc


@lru_cache(maxsize=4096)
def check_certificate(pem: str) -> str | None:
    """None if ``pem`` holds a certificate (its chain after it) and the matching private
    key, both as HAProxy will load them; else the reason.  Pure: parsed in memory."""
    if "-----BEGIN CERTIFICATE-----" not in pem or "PRIVATE KEY-----" not in pem:
        return "tls.crt or tls.key holds no PEM certificate or private key"
    try:
        return _problem(pem)
    except CertificateProblem as exc:
        return str(exc)
    except (ValueError, UnsupportedAlgorithm) as exc:  # a field parsed only when read
        return f"the certificate does not parse ({type(exc).__name__})"


class SecretSource(Protocol):
    """What reads Secrets: the cluster's index, or the builder recording its reads."""

    def secret(self, namespace: str, name: str) -> Object | None: ...


def read_secret(index: SecretSource, namespace: str, name: str, what: str) -> Object:
    """The Secret ``namespace/name``, decoded (decrypted, if encrypted at rest) now:
    only Secrets a route names are; a missing or unreadable one rejects, as ``what``."""
    try:
        secret = index.secret(namespace, name)
    except SecretUnreadable as exc:
        raise Rejected(f"secret {namespace}/{name}: {exc}") from exc
    if secret is None:
        raise Rejected(f"{what} {namespace}/{name} does not exist")
    return secret


def secret_certificate(index: SecretSource, namespace: str, secret_name: str) -> Certificate:
    validate.dns_subdomain(secret_name, "secret name")
    secret = read_secret(index, namespace, secret_name, "TLS secret")
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
    return Certificate(
        certificate_file_name(f"{namespace}_{secret_name}", pem),
        pem,
        f"Secret {namespace}/{secret_name}",
    )


# A namespace (63) and a Secret name (253) make a longer name than a file name takes
# (the renderer allows 251 characters): the readable part is cut, and what was cut is
# kept distinct by a hash of the whole name.
_READABLE_MAX = 200


def certificate_file_name(readable: str, pem: str) -> str:
    """``<readable>_<digest of the PEM>``, at most 218 characters whatever the names."""
    digest = hashlib.sha256(pem.encode()).hexdigest()[:8]
    if len(readable) > _READABLE_MAX:
        whole = hashlib.sha256(readable.encode()).hexdigest()[:8]
        readable = f"{readable[:_READABLE_MAX]}_{whole}"
    return f"{readable}_{digest}"


def plain_pem(tls: object) -> str:
    """A plain route's ``tls`` ({certificate, key}) as one checked PEM text."""
    if not isinstance(tls, Mapping) or not all(
        isinstance(tls.get(k), str) for k in ("certificate", "key")
    ):
        raise Rejected("tls is {certificate, key} in PEM")
    pem = f"{tls['certificate'].strip()}\n{tls['key'].strip()}\n"
    problem = check_certificate(pem)
    if problem:
        raise Rejected(f"tls: {problem}")
    return pem


def plain_certificate(tls: object, name: str, owner: str) -> Certificate:
    pem = plain_pem(tls)
    return Certificate(certificate_file_name(f"route_{name}", pem), pem, owner)


def served_names(pem: str) -> frozenset[str]:
    """The names a certificate may be served for by SNI: its DNS subject alternative
    names and its common name (lower case; both, to be safe about overlaps)."""
    try:
        certificate = _load_certificates(pem)[0]
    except (CertificateProblem, IndexError):
        return frozenset()
    names = [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    ]
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += alternative.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return frozenset(name.lower() for name in names)


# A CA bundle for verifying servers: larger than any real bundle of private CAs, small
# enough that a hostile object cannot fill the generation directory.
MAX_CA_BUNDLE = 256 * 1024
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----[A-Za-z0-9+/=\s]+-----END \1-----")


def ca_bundle(value: object, what: str = "CA bundle") -> str:
    """PEM certificates (only certificates) that HAProxy verifies servers with, checked
    to parse, as one normalised text."""
    if not isinstance(value, str) or not value.strip():
        raise Rejected(f"{what} is empty: PEM certificates are needed")
    if len(value) > MAX_CA_BUNDLE:
        raise Rejected(f"{what} is larger than {MAX_CA_BUNDLE // 1024} KiB")
    blocks = list(_PEM_BLOCK.finditer(value))
    rest = _PEM_BLOCK.sub("", value).strip()
    if not blocks or rest or any(m[1] != "CERTIFICATE" for m in blocks):
        raise Rejected(f"{what} holds something other than PEM certificates")
    pem = "".join(m[0].strip() + "\n" for m in blocks)
    try:
        certificates = _load_certificates(pem)
    except CertificateProblem as exc:
        raise Rejected(f"{what}: {exc}") from exc
    if len(certificates) != len(blocks):
        raise Rejected(f"{what}: a certificate does not parse")
    return pem


def referenced_ca(source: ObjectSource, namespace: str, ref: tuple[str, str]) -> str:
    """The ``ca.crt`` of the Secret or ConfigMap ``ref`` (kind, name) of ``namespace``."""
    kind, name = ref
    what = f"{kind.lower()} {namespace}/{name}"
    if kind == "Secret":
        data = read_secret(source, namespace, name, "secret").get("data") or {}
        try:
            text = base64.b64decode(data.get("ca.crt", ""), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
            raise Rejected(f"{what}: ca.crt undecodable") from exc
    else:
        configmap = source.read("ConfigMap", namespace, name)
        if configmap is None:
            raise Rejected(f"{what} does not exist")
        text = (configmap.get("data") or {}).get("ca.crt", "")
    if not text:
        raise Rejected(f"{what} has no key ca.crt")
    return ca_bundle(text, f"{what} ca.crt")


class ObjectSource(SecretSource, Protocol):
    """What reads Secrets and other objects: the builder, recording its reads."""

    def read(self, kind: str, namespace: str, name: str) -> Object | None: ...
