"""Secrets encrypted at rest, read as the API server reads them.

The API server encrypts the resources its ``EncryptionConfiguration`` file names
(``--encryption-provider-config``) and stores each value as
``k8s:enc:<provider>:v1:<key name>:<ciphertext>``.  This module reads that same file
(or a copy holding only the entry for ``secrets``) and turns a stored Secret back into
the plain storage value -- the protobuf or JSON that :mod:`breakwater.k8s.decode` reads.

What it follows, from the API server's sources (``k8s.io/apiserver``):

* which providers apply to Secrets: the entry naming ``secrets``, else ``*.`` (every
  resource of the core group), else ``*.*``; with none, ``identity`` alone
  (``encryptionconfig/config.go``);
* every provider of that list is tried in order, and within a provider every key
  whose ``<name>:`` the value carries, in order; a failure never stops the search
  (``storage/value/transformer.go``); ``identity`` reads any value that does not
  start with ``k8s:enc:``;
* ``aescbc``: a 16-byte IV, then AES-CBC with PKCS#7 padding -- not authenticated;
  ``aesgcm``: a 12-byte nonce, then AES-GCM's ciphertext and 16-byte tag, with the
  etcd key as authenticated data (``value.DefaultContext(key)``, so a value copied
  under another key does not open); ``secretbox``: a 24-byte nonce, then NaCl's
  secretbox (XSalsa20 and Poly1305), without authenticated data
  (``encrypt/aes/aes.go``, ``encrypt/secretbox/secretbox.go``);
* ``kms`` (v1 and v2): the data key is sealed by a KMS plugin the edge cannot reach.
  Such a value is reported with its provider's name, never half-read.

Errors say which key and provider a value names and why it is not read; the caller
names the Secret.  The primitives are ``cryptography``'s and PyNaCl's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.secret
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from breakwater.k8s.decode import ENCRYPTED_PREFIX, PROTOBUF_MAGIC, EncryptedValueError

log = logging.getLogger("breakwater.encryption")

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"

#: The providers whose values the edge decrypts, and the key sizes the API server
#: accepts for each (``validation_encryption.go``).
KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}
KNOWN_PREFIXES = frozenset(
    {("aescbc", "v1"), ("aesgcm", "v1"), ("secretbox", "v1"), ("kms", "v1"), ("kms", "v2")}
)

_CBC_IV, _BLOCK = 16, 16
_GCM_NONCE, _GCM_TAG = 12, 16
_SECRETBOX_NONCE, _SECRETBOX_TAG = 24, 16


class EncryptionConfigError(ValueError):
    """The encryption configuration file cannot be used; the message names the file and
    the entry, never a key's secret."""


class _NotOpened(Exception):
    """One key did not open a value; the message says why."""


@dataclass(frozen=True)
class Key:
    """One named key of a provider; ``cipher`` is made once, at load."""

    name: str
    cipher: Any = field(repr=False, compare=False)
    digest: str = field(repr=False)  # of the secret, to tell two configurations apart


@dataclass(frozen=True)
class Provider:
    kind: str  # aescbc, aesgcm, secretbox, identity, kms
    keys: tuple[Key, ...] = ()
    kms_name: str = ""
    kms_api_version: str = ""

    @property
    def prefix(self) -> bytes:
        if self.kind == "identity":
            return b""
        if self.kind == "kms":
            return b"k8s:enc:kms:%s:%s:" % (
                self.kms_api_version.encode(),
                self.kms_name.encode(),
            )
        return b"k8s:enc:%s:v1:" % self.kind.encode()

    def describe(self) -> str:
        if self.kind == "kms":
            return f"kms {self.kms_api_version} {self.kms_name!r}"
        if self.keys:
            return f"{self.kind} ({', '.join(key.name for key in self.keys)})"
        return self.kind


IDENTITY = Provider("identity")


@dataclass(frozen=True)
class EncryptionConfig:
    """The providers that read Secrets, in the API server's order.

    ``origin``: the file they came from (None: no encryption configuration).
    ``unavailable``: why the configuration could not be read, if it could not; then
    only unencrypted Secrets are read and encrypted ones say why.
    """

    providers: tuple[Provider, ...] = (IDENTITY,)
    origin: str | None = None
    rule: str | None = None  # the resources entry that applies to Secrets
    unavailable: str | None = None

    def describe(self) -> str:
        """What reads Secrets, without key material (for the log)."""
        if self.origin is None:
            return "no encryption configuration: Secrets encrypted at rest are not read"
        if self.unavailable is not None:
            return self.unavailable
        used = ", ".join(provider.describe() for provider in self.providers)
        rule = f"its entry {self.rule!r}" if self.rule else "no entry for secrets (identity)"
        return f"{self.origin}: Secrets read by {used} ({rule})"

    def fingerprint(self) -> str:
        """Changes when what reads Secrets changes (a key added, removed or replaced)."""
        parts = [self.origin or "", self.rule or "", self.unavailable or ""]
        for provider in self.providers:
            keys = ",".join(f"{key.name}={key.digest}" for key in provider.keys)
            parts.append(f"{provider.kind}:{provider.kms_api_version}:{provider.kms_name}:{keys}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def decrypt(self, key: str, value: bytes) -> bytes:
        """The plain storage value of the Secret stored under etcd ``key``.

        Raises :class:`EncryptedValueError` (a :class:`DecodeError` naming ``key``)
        when no provider reads it; the reason says which provider and key the value
        names and why none of the configuration's opened it.
        """
        if not value.startswith(ENCRYPTED_PREFIX):
            if IDENTITY in self.providers:
                return value
            raise EncryptedValueError(
                key,
                "stored unencrypted, but the encryption configuration has no identity "
                "provider for secrets (the API server cannot read it either)",
            )
        provider_name, version, key_name = _stored_prefix(key, value)
        named = f"{provider_name} key {key_name!r}"
        if provider_name == "kms":
            raise EncryptedValueError(
                key,
                f"encrypted by the KMS {version} provider {key_name!r}: its data key is "
                "sealed by that KMS plugin, which the edge cannot reach; only aescbc, "
                "aesgcm, secretbox and identity are read here",
            )
        if self.origin is None:
            raise EncryptedValueError(
                key,
                f"encrypted at rest ({named}), and etcd.encryption_config is not set: "
                "point it at the API server's encryption configuration to read it",
            )
        if self.unavailable is not None:
            raise EncryptedValueError(key, f"encrypted at rest ({named}); {self.unavailable}")
        candidates = [p for p in self.providers if p.kind == provider_name]
        if not candidates:
            raise EncryptedValueError(
                key,
                f"encrypted with {named}, but {self.origin} has no {provider_name} provider "
                f"for secrets (it has {', '.join(p.describe() for p in self.providers)})",
            )
        failures = []
        for provider in candidates:
            rest = value[len(provider.prefix) :]
            for candidate in provider.keys:
                label = candidate.name.encode() + b":"
                if not rest.startswith(label):
                    continue
                try:
                    return _open(provider.kind, candidate, rest[len(label) :], key.encode())
                except _NotOpened as exc:
                    failures.append(f"{provider.kind} key {candidate.name!r} {exc}")
        if failures:
            raise EncryptedValueError(key, "; ".join(dict.fromkeys(failures)))
        held = ", ".join(dict.fromkeys(k.name for p in candidates for k in p.keys))
        raise EncryptedValueError(
            key,
            f"encrypted with {named}, which {self.origin} does not hold "
            f"({provider_name} keys: {held})",
        )


NO_ENCRYPTION = EncryptionConfig()


def _stored_prefix(key: str, value: bytes) -> tuple[str, str, str]:
    """(provider, version, key name) of a ``k8s:enc:`` value; raises for a prefix the
    API server never writes, or a value that ends inside its prefix."""
    parts = value[len(ENCRYPTED_PREFIX) :].split(b":", 3)
    shown = [part.decode("ascii", "replace")[:40] for part in parts[:3]]
    if len(parts) >= 2 and (shown[0], shown[1]) in KNOWN_PREFIXES:
        if len(parts) < 4:
            raise EncryptedValueError(
                key, f"truncated: the value ends inside its k8s:enc:{shown[0]}:{shown[1]}: prefix"
            )
        return shown[0], shown[1], shown[2]
    if len(parts) < 2 and shown[0] in {"", *(name for name, _version in KNOWN_PREFIXES)}:
        raise EncryptedValueError(key, "truncated: the value ends inside its k8s:enc: prefix")
    prefix = ":".join(["k8s:enc", *shown[:2]])
    raise EncryptedValueError(
        key,
        f"unknown provider prefix {prefix!r}: the edge reads aescbc, aesgcm and secretbox "
        "(v1) and reports kms (v1, v2)",
    )


def _open(kind: str, key: Key, sealed: bytes, authenticated: bytes) -> bytes:
    if kind == "aesgcm":
        return _open_gcm(key, sealed, authenticated)
    if kind == "aescbc":
        return _open_cbc(key, sealed)
    return _open_secretbox(key, sealed)


def _too_short(kind: str, sealed: bytes, minimum: int, layout: str) -> _NotOpened:
    return _NotOpened(
        f"cannot open it: truncated ({len(sealed)} bytes after the prefix; {kind} needs "
        f"at least {minimum}: {layout})"
    )


def _open_gcm(key: Key, sealed: bytes, authenticated: bytes) -> bytes:
    minimum = _GCM_NONCE + _GCM_TAG
    if len(sealed) < minimum:
        raise _too_short("aesgcm", sealed, minimum, "a 12-byte nonce and a 16-byte tag")
    try:
        plain: bytes = key.cipher.decrypt(sealed[:_GCM_NONCE], sealed[_GCM_NONCE:], authenticated)
    except InvalidTag as exc:
        raise _NotOpened(
            "does not open it: the tag does not verify (another key under that name, a "
            "value truncated or altered, or copied from another etcd key)"
        ) from exc
    return plain


def _open_cbc(key: Key, sealed: bytes) -> bytes:
    minimum = _CBC_IV + _BLOCK
    if len(sealed) < minimum or len(sealed) % _BLOCK:
        raise _too_short("aescbc", sealed, minimum, "a 16-byte IV, then whole 16-byte blocks")
    decryptor = Cipher(key.cipher, modes.CBC(sealed[:_CBC_IV])).decryptor()
    padded = decryptor.update(sealed[_CBC_IV:]) + decryptor.finalize()
    # PKCS#7 as the API server checks it: 1 to len(padded) bytes, all equal to the count.
    count = padded[-1]
    if count == 0 or count > len(padded) or padded[-count:] != bytes([count]) * count:
        raise _NotOpened(
            "does not open it: the padding is wrong (another key under that name, or a "
            "value truncated or altered)"
        )
    plain = padded[:-count]
    # CBC is not authenticated: a wrong key passes the padding check about once in 256.
    if not (plain.startswith(PROTOBUF_MAGIC) or plain.lstrip()[:1] == b"{"):
        raise _NotOpened(
            "does not open it: what it gives is not a Kubernetes value (another key "
            "under that name, or an altered value)"
        )
    return plain


def _open_secretbox(key: Key, sealed: bytes) -> bytes:
    minimum = _SECRETBOX_NONCE + _SECRETBOX_TAG
    if len(sealed) < minimum:
        raise _too_short("secretbox", sealed, minimum, "a 24-byte nonce and a 16-byte tag")
    try:
        plain: bytes = key.cipher.decrypt(sealed[_SECRETBOX_NONCE:], sealed[:_SECRETBOX_NONCE])
    except nacl.exceptions.CryptoError as exc:
        raise _NotOpened(
            "does not open it: the tag does not verify (another key under that name, or a "
            "value truncated or altered)"
        ) from exc
    return plain


# --- the configuration file ------------------------------------------------------------


def _group_resource(resource: str) -> tuple[str, str]:
    """(group, resource) as ``schema.ParseGroupResource`` splits it: at the first dot."""
    name, dot, group = resource.partition(".")
    return (group, name) if dot else ("", resource)


def _mapping(value: object, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EncryptionConfigError(f"{where}: expected an object")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise EncryptionConfigError(
            f"{where}: unknown field {unknown[0]!r} (expected {', '.join(allowed)})"
        )
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise EncryptionConfigError(f"{where}: expected a list with at least one item")
    return value


def _keys(kind: str, value: object, where: str) -> tuple[Key, ...]:
    keys = []
    for number, item in enumerate(_list(_mapping(value, where, ["keys"]).get("keys"), where)):
        at = f"{where}.keys[{number}]"
        entry = _mapping(item, at, ["name", "secret"])
        name, secret = entry.get("name"), entry.get("secret")
        if not isinstance(name, str) or not name:
            raise EncryptionConfigError(f"{at}.name: a key needs a name")
        if not isinstance(secret, str) or not secret:
            raise EncryptionConfigError(f"{at}: key {name!r} has no secret")
        try:
            material = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EncryptionConfigError(f"{at}: the secret of key {name!r} is not base64") from exc
        if len(material) not in KEY_SIZES[kind]:
            sizes = " or ".join(str(size) for size in KEY_SIZES[kind])
            raise EncryptionConfigError(
                f"{at}: the secret of {kind} key {name!r} is {len(material)} bytes, "
                f"expected {sizes}"
            )
        cipher: Any
        if kind == "aesgcm":
            cipher = AESGCM(material)
        elif kind == "aescbc":
            cipher = algorithms.AES(material)
        else:
            cipher = nacl.secret.SecretBox(material)
        keys.append(Key(name, cipher, hashlib.sha256(material).hexdigest()))
    return tuple(keys)


def _provider(value: object, where: str) -> Provider:
    kinds = ["aesgcm", "aescbc", "secretbox", "identity", "kms"]
    entry = _mapping(value, where, kinds)
    present = [kind for kind in kinds if entry.get(kind) is not None]
    if len(present) != 1:
        raise EncryptionConfigError(
            f"{where}: expected exactly one of {', '.join(kinds)}, got "
            f"{', '.join(present) or 'none'}"
        )
    kind = present[0]
    at = f"{where}.{kind}"
    if kind == "identity":
        _mapping(entry[kind], at, [])
        return IDENTITY
    if kind == "kms":
        kms = _mapping(entry[kind], at, ["apiVersion", "name", "endpoint", "cachesize", "timeout"])
        name, version = kms.get("name"), kms.get("apiVersion", "v1")
        if not isinstance(name, str) or not name:
            raise EncryptionConfigError(f"{at}.name: a KMS provider needs a name")
        if version not in ("v1", "v2"):
            raise EncryptionConfigError(f"{at}.apiVersion: {version!r} is not v1 or v2")
        return Provider("kms", kms_name=name, kms_api_version=version)
    return Provider(kind, _keys(kind, entry[kind], at))


def parse_encryption_config(text: str | bytes, origin: str) -> EncryptionConfig:
    """The providers that read Secrets, from an ``EncryptionConfiguration`` (YAML or JSON)."""
    try:
        json_text = text.lstrip()[:1] in ("{", b"{")
        document = json.loads(text) if json_text else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EncryptionConfigError(f"{origin}: neither YAML nor JSON ({first})") from exc
    top = _mapping(document, origin, ["apiVersion", "kind", "resources"])
    if (top.get("apiVersion"), top.get("kind")) != (API_VERSION, KIND):
        raise EncryptionConfigError(
            f"{origin}: expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{top.get('apiVersion')!r} and {top.get('kind')!r}"
        )
    chains: dict[tuple[str, str], list[Provider]] = {}
    rules: dict[tuple[str, str], str] = {}
    for number, item in enumerate(_list(top.get("resources"), f"{origin}: resources")):
        where = f"{origin}: resources[{number}]"
        entry = _mapping(item, where, ["resources", "providers"])
        resources = _list(entry.get("resources"), f"{where}.resources")
        providers = [
            _provider(provider, f"{where}.providers[{index}]")
            for index, provider in enumerate(_list(entry.get("providers"), f"{where}.providers"))
        ]
        for resource in resources:
            if not isinstance(resource, str) or not resource:
                raise EncryptionConfigError(f"{where}.resources: {resource!r} is not a resource")
            group_resource = _group_resource(resource)
            for masking in ((group_resource[0], "*"), ("*", "*")):
                if masking in chains:
                    raise EncryptionConfigError(
                        f"{where}: resource {resource!r} is masked by the earlier rule "
                        f"{rules[masking]!r}"
                    )
            chains.setdefault(group_resource, []).extend(providers)
            rules.setdefault(group_resource, resource)
    for rule in (("", "secrets"), ("", "*"), ("*", "*")):
        if rule in chains:
            return EncryptionConfig(tuple(chains[rule]), origin, rules[rule])
    return EncryptionConfig((IDENTITY,), origin)


def load_encryption_config(path: str) -> EncryptionConfig:
    """:func:`parse_encryption_config` of the file at ``path``."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise EncryptionConfigError(f"{path}: {exc.strerror or exc}") from exc
    if not text.strip():
        raise EncryptionConfigError(f"{path}: the file is empty")
    return parse_encryption_config(text, path)


def loose_permissions(path: str) -> str | None:
    """Why the key file is too open (group or others may read it), or None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return f"{path} is mode {mode:04o}: it holds decryption keys, make it 0600"
    return None


# The last configuration summary logged (said once, and when it changes).
_last_described: str | None = None


def encryption_for(path: str | None) -> EncryptionConfig:
    """The encryption configuration named by ``etcd.encryption_config``; never raises.

    Empty: none.  A file that cannot be read or parsed (the watcher's configuration
    check refuses it, so this is a file changed since, or a controller that does not
    hold the node's file) gives a configuration that reads unencrypted Secrets and
    says why the encrypted ones are not read -- everything else keeps serving.
    """
    if not path:
        return NO_ENCRYPTION
    try:
        loaded = load_encryption_config(path)
    except EncryptionConfigError as exc:
        log.error("encryption configuration not read: %s", exc)
        return EncryptionConfig(
            origin=path, unavailable=f"the encryption configuration is not readable ({exc})"
        )
    loose = loose_permissions(path)
    if loose is not None:
        log.warning("%s", loose)
    # Read at start, at every full list and at SIGHUP: said once, and when it changes.
    global _last_described
    described = loaded.describe()
    log.log(logging.DEBUG if described == _last_described else logging.INFO, "%s", described)
    _last_described = described
    return loaded
