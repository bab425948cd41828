"""Secrets encrypted at rest, read as the API server reads them (breakwater.k8s.encryption).

Where every vector comes from -- none was made with the decryptor under test:

* aesgcm: Kubernetes' own recorded value, ``TestGCMLegacyDataCompatibility`` in
  kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/aes/
  aes_test.go (commit cb6ff2d8ce3595f88570f82c7d0e6d98910afd3c; the value was recorded
  from NewGCMTransformer at commit 3b1fc60d8010dd8b53e97ba80e4710dbb430beee).
* secretbox: libsodium's known answer, test/default/secretbox_easy.c (commit
  0e559b94d543b6e688dbf2a81afc01f9794a3b65) and its expected output secretbox_easy.exp
  (commit 0f1f8a6ea67620f3a9aa28619dae4257a3c24269), the first 147 bytes: NaCl's
  tag-then-ciphertext, the form Go's ``secretbox.Seal`` writes.
* aescbc: Kubernetes' tests have no fixed value (random IVs).  The ``*_SEALED``
  constants were made by the independent encryptor below (``seal_*``), written from the
  API server's source (aes.go, secretbox.go, transformer.go: prefix, IV or nonce
  layout, padding, the etcd key as GCM's authenticated data).  Its AES-CBC chaining is
  checked against NIST CAVP CBCMMT256 COUNT = 4 (as quoted in aws/aws-sdk-cpp's
  SymmetricCiphersTest.cpp), its XSalsa20-Poly1305 (pure Python here, not PyNaCl)
  against libsodium's answer above; a test holds it to the constants.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from breakwater.config import ConfigError, load_config
from breakwater.k8s.decode import DecodeError, EncryptedValueError, decode
from breakwater.k8s.encryption import (
    NO_ENCRYPTION,
    EncryptionConfigError,
    encryption_for,
    load_encryption_config,
    parse_encryption_config,
)

# --- an independent encryptor, from the API server's source ---------------------------

MASK = 0xFFFFFFFF
SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def _rotl(value: int, count: int) -> int:
    return ((value << count) & MASK) | (value >> (32 - count))


def _salsa20_rounds(state: list[int]) -> list[int]:
    x = list(state)
    for _ in range(10):  # 20 rounds: a column round, then a row round
        for a, b, c, d in (
            *((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11)),
            *((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)),
        ):
            x[b] ^= _rotl((x[a] + x[d]) & MASK, 7)
            x[c] ^= _rotl((x[b] + x[a]) & MASK, 9)
            x[d] ^= _rotl((x[c] + x[b]) & MASK, 13)
            x[a] ^= _rotl((x[d] + x[c]) & MASK, 18)
    return x


def _salsa20_state(key: bytes, middle: bytes) -> list[int]:
    k, m = struct.unpack("<8I", key), struct.unpack("<4I", middle)
    return [SIGMA[0], *k[:4], SIGMA[1], *m, SIGMA[2], *k[4:], SIGMA[3]]


def _xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    rounds = _salsa20_rounds(_salsa20_state(key, nonce[:16]))  # HSalsa20: the subkey
    subkey = struct.pack("<8I", *(rounds[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))
    stream = bytearray()
    for counter in range(0, length // 64 + 1):
        state = _salsa20_state(subkey, nonce[16:] + struct.pack("<Q", counter))
        block = _salsa20_rounds(state)
        stream += struct.pack("<16I", *((a + b) & MASK for a, b in zip(block, state, strict=True)))
    return bytes(stream[:length])


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def seal_secretbox(key: bytes, plain: bytes, nonce: bytes) -> bytes:
    """secretbox.go: the 24-byte nonce, then NaCl's secretbox -- Poly1305 tag (keyed by
    the stream's first 32 bytes), then the XSalsa20 ciphertext.  No authenticated data."""
    stream = _xsalsa20_stream(key, nonce, 32 + len(plain))
    ciphertext = _xor(plain, stream[32:])
    return nonce + Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def seal_aescbc(key: bytes, plain: bytes, iv: bytes) -> bytes:
    """aes.go's cbc: the 16-byte IV, then CBC over PKCS#7 padding (1 to 16 bytes), chained
    here by hand over single AES blocks.  Not authenticated."""
    count = 16 - len(plain) % 16
    padded = plain + bytes([count]) * count
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out, previous = [iv], iv
    for start in range(0, len(padded), 16):
        previous = block.update(_xor(padded[start : start + 16], previous))
        out.append(previous)
    return b"".join(out)


def seal_aesgcm(key: bytes, plain: bytes, nonce: bytes, etcd_key: str) -> bytes:
    """aes.go's gcm: the 12-byte nonce, then ciphertext and tag; the etcd key is the
    authenticated data (etcd3/store.go: authenticatedDataString(preparedKey))."""
    return nonce + AESGCM(key).encrypt(nonce, plain, etcd_key.encode())


# --- the vectors -----------------------------------------------------------------------

# Kubernetes' aes_test.go, TestGCMLegacyDataCompatibility: key "snorlax_awesomes",
# authenticated data "bamboo".  The Go literal, byte for byte (\u05c8 is UTF-8 d7 88).
K8S_GCM_KEY = b"snorlax_awesomes"
K8S_GCM_SEALED = (
    b"\x9f'\xc8\xfc\xea\x8aX\xc4g\xd8\xe47\xdb\xf2\xd8YU\xf9\xb4\xbd\x91/N\xf9g\xd7\x88\xa0"
    b"\xcb\ay}\xac\n?\n\bE`\\\xa8Z\xc8V+J\xe1"
)
K8S_GCM_PLAIN = b"pandas are the best"

# libsodium's secretbox_easy: firstkey, nonce, m (131 bytes) and the expected box.
SODIUM_KEY = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
SODIUM_NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
SODIUM_PLAIN = bytes.fromhex(
    "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d4"
    "5e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a"
    "024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705"
)
SODIUM_BOX = bytes.fromhex(
    "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c5"
    "31a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8a"
    "b932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de56244a9e88d5f9b37973f622"
    "a43d14a6599b1f654cb45a74e355a5"
)

# NIST CAVP CBCMMT256, COUNT = 4 (no padding: a check of the chaining alone).
NIST_KEY = bytes.fromhex("9adc8fbd506e032af7fa20cf5343719de6d1288c158c63d6878aaf64ce26ca85")
NIST_IV = bytes.fromhex("11958dc6ab81e1c7f01631e9944e620f")
NIST_PLAIN = bytes.fromhex(
    "c7917f84f747cd8c4b4fedc2219bdbc5f4d07588389d8248854cf2c2f89667a2d7bcf53e73d32684535f4231"
    "8e24cd45793950b3825e5d5c5c8fcd3e5dda4ce9246d18337ef3052d8b21c5561c8b660e"
)
NIST_CIPHER = bytes.fromhex(
    "9c99e68236bb2e929db1089c7750f1b356d39ab9d0c40c3e2f05108ae9d0c30b04832ccdbdc08ebfa426b7f5"
    "efde986ed05784ce368193bb3699bc691065ac62e258b9aa4cc557e2b45b49ce05511e65"
)

# A Secret as the API server stores it (JSON form), and where.
ETCD_KEY = "/registry/secrets/shop/www-tls"
PLAIN = (
    b'{"kind":"Secret","apiVersion":"v1","metadata":{"name":"www-tls","namespace":"shop"},'
    b'"type":"Opaque","data":{"k":"dmFsdWU="}}'
)
AESCBC_KEY1, AESCBC_KEY2 = bytes(range(0, 32)), bytes(range(32, 64))
AESGCM_KEY1, SECRETBOX_KEY1 = bytes(range(64, 80)), bytes(range(96, 128))
IV1, IV2 = bytes(range(0xA0, 0xB0)), bytes(range(0xB0, 0xC0))
NONCE12, NONCE24 = bytes(range(0xC0, 0xCC)), bytes(range(0xD0, 0xE8))

# Made once by the seal_* functions above (test_the_constants_are_the_encryptors).
AESCBC_KEY1_SEALED = bytes.fromhex(
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafda54e881eafae68f34aa2ddb00e56b52372721a55a897321873ece06"
    "f719cdc86edf6e6f0765b15f45e8e9b2c532d312fa9498503a7bf887b5857c13f7ed206f196f60352137577c"
    "149e9f50b3121da9ea40d02d7ede2dd19a983faae34ee8cfcb575a0eb64f6757334ce9eb399db8852536e54c"
    "5c6824f80ec1f95508a37686"
)
AESCBC_KEY2_SEALED = bytes.fromhex(
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf0cfe6e3c6eb90019a8b358e50c06a2844c22e8002826d2669022c459"
    "0d502ca840cf17d1ab83a25f39a980e15167cd4c6efc8712745efb7205ad49c131d3abdcff8c156b9f4cf9e1"
    "72ac95644edace3e3086135fdead1c130179504ab39df1ccd43c4819fe522e9a6606b779125eaf7159650d32"
    "8db680228dce4f41befec884"
)
AESGCM_KEY1_SEALED = bytes.fromhex(
    "c0c1c2c3c4c5c6c7c8c9cacb9b1085744f1d18553bcc7a8e57b70f20ae67616d4aec6304aebb012e9624c6d2"
    "0d3f65658df88a951de3d795f914a01ede89b386f6ecebe9f58ccd5dd4c5d12ca2c6f29104486a22fde1b1b9"
    "dacb11a1ba54284a71db1656085bbb0dc0c095aa12cc566c6ad810b2be41da38bb122e80e7c9d77ca16b7703"
    "36a11f914518301d1bced416e0017fa8a1124519"
)
SECRETBOX_KEY1_SEALED = bytes.fromhex(
    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e73f5c92416d61ea822c2ca396536a36581374083e"
    "dce5ccc60368e127535174fb17767cb1a5751f15f94f253f1d6ffa865daf868d5654dee8f1412bf6ed04f44c"
    "849372a2bdac9966c9b2ef2c6df44e53fec9201790a9084bcafbb7650722c01f323fbbd19a54576c51182970"
    "f5589334fdd609c909b80fbf4264bd900f198e76b2ae6ed20c2774ad9f4810a4"
)
AESCBC_KEY1_VALUE = b"k8s:enc:aescbc:v1:key1:" + AESCBC_KEY1_SEALED
AESCBC_KEY2_VALUE = b"k8s:enc:aescbc:v1:key2:" + AESCBC_KEY2_SEALED
AESGCM_KEY1_VALUE = b"k8s:enc:aesgcm:v1:key1:" + AESGCM_KEY1_SEALED
SECRETBOX_KEY1_VALUE = b"k8s:enc:secretbox:v1:key1:" + SECRETBOX_KEY1_SEALED


def b64(material: bytes) -> str:
    return base64.b64encode(material).decode()


def config_text(providers: list[dict[str, object]], resources: list[str] | None = None) -> str:
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": resources or ["secrets"], "providers": providers}],
    }
    return json.dumps(document)


def keys(*pairs: tuple[str, bytes]) -> dict[str, object]:
    return {"keys": [{"name": name, "secret": b64(material)} for name, material in pairs]}


ALL = [
    {"aescbc": keys(("key1", AESCBC_KEY1), ("key2", AESCBC_KEY2))},
    {"aesgcm": keys(("key1", AESGCM_KEY1))},
    {"secretbox": keys(("key1", SECRETBOX_KEY1))},
    {"identity": {}},
]


def reason(config_text_or_config: object, value: bytes, key: str = ETCD_KEY) -> str:
    config = (
        parse_encryption_config(config_text_or_config, "enc.yaml")
        if isinstance(config_text_or_config, str)
        else config_text_or_config
    )
    with pytest.raises(EncryptedValueError) as error:
        config.decrypt(key, value)  # type: ignore[attr-defined]
    assert error.value.key == key
    return error.value.reason


# --- the vectors' provenance -------------------------------------------------------------


def test_the_independent_encryptor_gives_the_published_answers() -> None:
    assert seal_secretbox(SODIUM_KEY, SODIUM_PLAIN, SODIUM_NONCE) == SODIUM_NONCE + SODIUM_BOX
    assert seal_aescbc(NIST_KEY, NIST_PLAIN, NIST_IV)[16:96] == NIST_CIPHER
    assert seal_aesgcm(K8S_GCM_KEY, K8S_GCM_PLAIN, K8S_GCM_SEALED[:12], "bamboo") == K8S_GCM_SEALED


def test_the_constants_are_the_encryptors() -> None:
    assert seal_aescbc(AESCBC_KEY1, PLAIN, IV1) == AESCBC_KEY1_SEALED
    assert seal_aescbc(AESCBC_KEY2, PLAIN, IV2) == AESCBC_KEY2_SEALED
    assert seal_aesgcm(AESGCM_KEY1, PLAIN, NONCE12, ETCD_KEY) == AESGCM_KEY1_SEALED
    assert seal_secretbox(SECRETBOX_KEY1, PLAIN, NONCE24) == SECRETBOX_KEY1_SEALED


# --- reading ------------------------------------------------------------------------------


def test_kubernetes_own_gcm_value_with_its_authenticated_data() -> None:
    config = parse_encryption_config(config_text([{"aesgcm": keys(("k", K8S_GCM_KEY))}]), "x")
    assert config.decrypt("bamboo", b"k8s:enc:aesgcm:v1:k:" + K8S_GCM_SEALED) == K8S_GCM_PLAIN
    # The same value under another etcd key: GCM's authenticated data refuses it.
    assert "copied from another etcd key" in reason(
        config, b"k8s:enc:aesgcm:v1:k:" + K8S_GCM_SEALED
    )


def test_libsodium_secretbox_value() -> None:
    config = parse_encryption_config(config_text([{"secretbox": keys(("k", SODIUM_KEY))}]), "x")
    value = b"k8s:enc:secretbox:v1:k:" + SODIUM_NONCE + SODIUM_BOX
    assert config.decrypt("/registry/secrets/a/b", value) == SODIUM_PLAIN


@pytest.mark.parametrize(
    "value",
    [AESCBC_KEY1_VALUE, AESCBC_KEY2_VALUE, AESGCM_KEY1_VALUE, SECRETBOX_KEY1_VALUE, PLAIN],
    ids=["aescbc-key1", "aescbc-key2", "aesgcm", "secretbox", "identity"],
)
def test_every_provider_gives_the_stored_secret(value: bytes) -> None:
    config = parse_encryption_config(config_text(ALL), "enc.yaml")
    plain = config.decrypt(ETCD_KEY, value)
    assert plain == PLAIN
    secret = decode(ETCD_KEY, plain)
    assert (secret["metadata"]["name"], secret["data"]) == ("www-tls", {"k": "dmFsdWU="})


def test_cbc_and_secretbox_do_not_authenticate_the_key_as_the_api_server_does_not() -> None:
    config = parse_encryption_config(config_text(ALL), "enc.yaml")
    for value in (AESCBC_KEY1_VALUE, SECRETBOX_KEY1_VALUE):
        assert config.decrypt("/registry/secrets/other/copy", value) == PLAIN


def test_keys_are_matched_by_name_in_order_across_providers() -> None:
    # Rotation as the API server documents it: the new key first, the old one after,
    # possibly in another provider entry of the same kind (overlapping prefixes).
    providers = [
        {"aescbc": keys(("key9", AESCBC_KEY2))},
        {"aesgcm": keys(("key1", AESGCM_KEY1))},
        {"aescbc": keys(("key1", AESCBC_KEY1), ("key2", AESCBC_KEY2))},
    ]
    config = parse_encryption_config(config_text(providers), "enc.yaml")
    assert config.decrypt(ETCD_KEY, AESCBC_KEY1_VALUE) == PLAIN
    assert config.decrypt(ETCD_KEY, AESCBC_KEY2_VALUE) == PLAIN
    # The same name twice: the first that opens it wins, a failing one does not stop the rest.
    twice = [{"aescbc": keys(("key1", AESCBC_KEY2))}, {"aescbc": keys(("key1", AESCBC_KEY1))}]
    config = parse_encryption_config(config_text(twice), "enc.yaml")
    assert config.decrypt(ETCD_KEY, AESCBC_KEY1_VALUE) == PLAIN


@pytest.mark.parametrize(
    ("value", "wrong"),
    [
        (AESCBC_KEY1_VALUE, {"aescbc": keys(("key1", AESCBC_KEY2))}),
        (AESGCM_KEY1_VALUE, {"aesgcm": keys(("key1", bytes(16)))}),
        (SECRETBOX_KEY1_VALUE, {"secretbox": keys(("key1", bytes(32)))}),
    ],
    ids=["aescbc", "aesgcm", "secretbox"],
)
def test_a_wrong_key_under_the_right_name_is_a_clear_rejection(
    value: bytes, wrong: dict[str, object]
) -> None:
    why = reason(config_text([wrong, {"identity": {}}]), value)
    kind = next(iter(wrong))
    assert why.startswith(f"{kind} key 'key1' does not open it")
    assert "another key under that name" in why


def test_a_key_the_configuration_does_not_hold() -> None:
    why = reason(config_text(ALL), b"k8s:enc:aesgcm:v1:old:" + AESGCM_KEY1_SEALED)
    assert why == (
        "encrypted with aesgcm key 'old', which enc.yaml does not hold (aesgcm keys: key1)"
    )
    no_provider = config_text([{"aescbc": keys(("key1", AESCBC_KEY1))}, {"identity": {}}])
    why = reason(no_provider, SECRETBOX_KEY1_VALUE)
    assert "has no secretbox provider for secrets (it has aescbc (key1), identity)" in why


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AESGCM_KEY1_VALUE[:47], "aesgcm key 'key1' cannot open it: truncated (24 bytes"),
        (AESCBC_KEY1_VALUE[:-5], "aescbc key 'key1' cannot open it: truncated (139 bytes"),
        (SECRETBOX_KEY1_VALUE[:60], "secretbox key 'key1' cannot open it: truncated (34 bytes"),
        (AESGCM_KEY1_VALUE[:-1], "aesgcm key 'key1' does not open it: the tag does not verify"),
        (AESCBC_KEY1_VALUE[:-16], "aescbc key 'key1' does not open it: the padding is wrong"),
        (b"k8s:enc:aesgcm:v1:key1", "truncated: the value ends inside its k8s:enc:aesgcm:v1:"),
        (b"k8s:enc:secretbox", "truncated: the value ends inside its k8s:enc: prefix"),
        (b"k8s:enc:", "truncated: the value ends inside its k8s:enc: prefix"),
    ],
)
def test_a_truncated_value_is_a_clear_rejection(value: bytes, expected: str) -> None:
    assert reason(config_text(ALL), value).startswith(expected)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"k8s:enc:foo:v1:key1:abc", "k8s:enc:foo:v1"),
        (b"k8s:enc:aesgcm:v2:key1:abc", "k8s:enc:aesgcm:v2"),
        (b"k8s:enc:rot13", "k8s:enc:rot13"),
    ],
)
def test_an_unknown_provider_is_a_clear_rejection(value: bytes, shown: str) -> None:
    assert reason(config_text(ALL), value).startswith(f"unknown provider prefix {shown!r}")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_kms_values_are_reported_never_half_read(version: str) -> None:
    kms = {"kms": {"apiVersion": version, "name": "vault", "endpoint": "unix:///kms.sock"}}
    value = f"k8s:enc:kms:{version}:vault:".encode() + os.urandom(64)
    for config in (config_text([kms, {"identity": {}}]), config_text(ALL), NO_ENCRYPTION):
        why = reason(config, value)
        assert why.startswith(f"encrypted by the KMS {version} provider 'vault'")
        assert "cannot reach" in why


def test_identity_reads_unencrypted_values_only_when_listed() -> None:
    assert NO_ENCRYPTION.decrypt(ETCD_KEY, PLAIN) == PLAIN
    without_identity = config_text([{"aesgcm": keys(("key1", AESGCM_KEY1))}])
    assert "no identity provider for secrets" in reason(without_identity, PLAIN)
    assert "set etcd.encryption_config" not in reason(NO_ENCRYPTION, AESGCM_KEY1_VALUE)
    assert reason(NO_ENCRYPTION, AESGCM_KEY1_VALUE).startswith(
        "encrypted at rest (aesgcm key 'key1'), and etcd.encryption_config is not set"
    )


def test_random_bytes_behind_every_prefix_are_a_rejection_never_anything_else() -> None:
    config = parse_encryption_config(config_text(ALL), "enc.yaml")
    rng = random.Random(13)
    prefixes = [b"k8s:enc:", b"k8s:enc:aescbc:v1:key1:", b"k8s:enc:aesgcm:v1:key1:"]
    prefixes += [b"k8s:enc:secretbox:v1:key1:", b"k8s:enc:kms:v2:x:", b"k8s:enc:aescbc:v1:"]
    for prefix in prefixes:
        for length in (0, 1, 15, 16, 17, 31, 32, 40, 48, 64, 200):
            for _ in range(5):
                value = prefix + bytes(rng.randrange(256) for _ in range(length))
                with pytest.raises(EncryptedValueError):
                    config.decrypt(ETCD_KEY, value)


def test_the_error_is_a_decode_error_naming_the_key() -> None:
    with pytest.raises(DecodeError, match=r"^/registry/secrets/shop/www-tls: encrypted at rest"):
        NO_ENCRYPTION.decrypt(ETCD_KEY, AESCBC_KEY1_VALUE)


# --- the configuration file ------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "rule"),
    [
        (["configmaps", "secrets"], "secrets"),
        (["*."], "*."),
        (["*.*"], "*.*"),
    ],
)
def test_the_entry_for_secrets_as_the_api_server_picks_it(resources: list[str], rule: str) -> None:
    config = parse_encryption_config(config_text(ALL, resources), "enc.yaml")
    assert config.rule == rule
    assert config.decrypt(ETCD_KEY, AESGCM_KEY1_VALUE) == PLAIN


def test_the_exact_resource_wins_over_wildcards_and_no_entry_is_identity() -> None:
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {"resources": ["secrets"], "providers": [{"aesgcm": keys(("key1", AESGCM_KEY1))}]},
            {"resources": ["*.*"], "providers": [{"identity": {}}]},
        ],
    }
    config = parse_encryption_config(json.dumps(document), "enc.yaml")
    assert config.rule == "secrets" and "identity" not in config.describe()
    configmaps_only = parse_encryption_config(config_text(ALL, ["configmaps"]), "enc.yaml")
    assert configmaps_only.rule is None and configmaps_only.decrypt(ETCD_KEY, PLAIN) == PLAIN
    assert "has no aesgcm provider" in reason(configmaps_only, AESGCM_KEY1_VALUE)


def test_yaml_as_the_api_server_documents_it(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\n"
        "kind: EncryptionConfiguration\n"
        "resources:\n"
        "  - resources:\n"
        "      - secrets\n"
        "    providers:\n"
        "      - aescbc:\n"
        "          keys:\n"
        f"            - name: key1\n              secret: {b64(AESCBC_KEY1)}\n"
        "      - identity: {}\n"
    )
    config = load_encryption_config(str(path))
    assert config.decrypt(ETCD_KEY, AESCBC_KEY1_VALUE) == PLAIN
    assert (
        config.describe()
        == f"{path}: Secrets read by aescbc (key1), identity (its entry 'secrets')"
    )
    assert b64(AESCBC_KEY1) not in config.describe() + repr(config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "neither YAML nor JSON"),
        ("a: [", "neither YAML nor JSON"),
        ("[]", "expected an object"),
        (
            '{"apiVersion": "v1", "kind": "EncryptionConfig", "resources": []}',
            "expected apiVersion apiserver.config.k8s.io/v1 and kind EncryptionConfiguration",
        ),
        (config_text([]), "providers: expected a list with at least one item"),
        (config_text([{"aesgcm": {"keys": []}}]), "expected a list with at least one item"),
        (
            config_text([{"aesgcm": keys(("key1", b"short"))}]),
            "is 5 bytes, expected 16 or 24 or 32",
        ),
        (config_text([{"secretbox": keys(("key1", bytes(16)))}]), "is 16 bytes, expected 32"),
        (
            config_text([{"aesgcm": {"keys": [{"name": "k", "secret": "not base64!"}]}}]),
            "the secret of key 'k' is not base64",
        ),
        (config_text([{"aesgcm": {"keys": [{"name": "", "secret": "AA=="}]}}]), "needs a name"),
        (config_text([{"aesgcm": {"keys": [{"name": "k"}]}}]), "key 'k' has no secret"),
        (config_text([{"aes-gcm": {}}]), "unknown field 'aes-gcm'"),
        (config_text([{"identity": None}]), "expected exactly one of"),
        (
            config_text([{"identity": {}, "aesgcm": keys(("k", AESGCM_KEY1))}]),
            "expected exactly one of aesgcm, aescbc, secretbox, identity, kms, "
            "got aesgcm, identity",
        ),
        (config_text([{"kms": {"apiVersion": "v3", "name": "x"}}]), "'v3' is not v1 or v2"),
        (config_text([{"kms": {"apiVersion": "v2"}}]), "a KMS provider needs a name"),
        (config_text(ALL, ["*.", "secrets"]), "'secrets' is masked by the earlier rule '*.'"),
    ],
)
def test_a_configuration_that_cannot_be_used_is_refused_with_the_place(
    text: str, expected: str
) -> None:
    with pytest.raises(EncryptionConfigError) as error:
        parse_encryption_config(text, "enc.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("enc.yaml")
    assert b64(AESGCM_KEY1) not in str(error.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="No such file"):
        load_encryption_config(str(tmp_path / "absent.yaml"))
    (tmp_path / "empty.yaml").write_text("\n")
    with pytest.raises(EncryptionConfigError, match="the file is empty"):
        load_encryption_config(str(tmp_path / "empty.yaml"))


def test_an_unreadable_configuration_still_reads_unencrypted_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert encryption_for("") is NO_ENCRYPTION and encryption_for(None) is NO_ENCRYPTION
    path = str(tmp_path / "absent.yaml")
    with caplog.at_level(logging.ERROR):
        config = encryption_for(path)
    assert "encryption configuration not read" in caplog.text
    assert config.decrypt(ETCD_KEY, PLAIN) == PLAIN
    assert reason(config, AESGCM_KEY1_VALUE).startswith(
        "encrypted at rest (aesgcm key 'key1'); the encryption configuration is not readable"
    )


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "enc.json"
    path.write_text(config_text(ALL))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        encryption_for(str(path))
    assert "is mode 0644: it holds decryption keys, make it 0600" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert encryption_for(str(path)).decrypt(ETCD_KEY, SECRETBOX_KEY1_VALUE) == PLAIN
    assert "0600" not in caplog.text


def test_the_fingerprint_changes_with_the_keys_not_with_a_reread(tmp_path: Path) -> None:
    path = tmp_path / "enc.json"
    path.write_text(config_text(ALL))
    first = encryption_for(str(path)).fingerprint()
    assert encryption_for(str(path)).fingerprint() == first
    path.write_text(config_text([{"aesgcm": keys(("key1", bytes(16)))}, *ALL[:1]]))
    assert encryption_for(str(path)).fingerprint() != first


def test_the_watchers_configuration_checks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.json"
    path.write_text(config_text([{"aesgcm": keys(("key1", b"short"))}]))
    overrides = {"etcd.encryption_config": str(path)}
    with pytest.raises(ConfigError, match=r"^etcd\.encryption_config: .*is 5 bytes"):
        load_config(environ={}, overrides=overrides)
    path.write_text(config_text(ALL))
    assert load_config(environ={}, overrides=overrides).etcd.encryption_config == str(path)
    # A controller rendering for a node does not hold the node's file.
    absent = {"etcd.encryption_config": str(tmp_path / "absent")}
    assert load_config(environ={}, overrides=absent, check_files=False).etcd.encryption_config
