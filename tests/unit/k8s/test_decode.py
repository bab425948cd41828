"""Decoding storage values: Kubernetes' own fixtures, and every way a value can be bad."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import builders
import pytest

from breakwater.catalog import Catalog, CatalogSettings, build_catalog
from breakwater.k8s.decode import (
    CorruptValueError,
    EncryptedValueError,
    UnknownKindError,
    decode,
)
from breakwater.k8s.encode import encode_protobuf

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "k8s"
PB_FILES = sorted(FIXTURES.glob("*.pb"))


def test_every_kind_has_a_fixture() -> None:
    assert len(PB_FILES) == 9, f"fixtures not found in {FIXTURES}"


@pytest.mark.parametrize("pb", PB_FILES, ids=lambda p: p.stem)
def test_protobuf_fixture_decodes_to_its_json(pb: Path) -> None:
    expected = json.loads(pb.with_suffix(".json").read_text())
    assert decode(str(pb), pb.read_bytes()) == expected


@pytest.mark.parametrize("pb", PB_FILES, ids=lambda p: p.stem)
def test_encoding_the_json_gives_the_api_servers_bytes(pb: Path) -> None:
    expected = json.loads(pb.with_suffix(".json").read_text())
    assert encode_protobuf(expected) == pb.read_bytes()


@pytest.mark.parametrize("pb", PB_FILES, ids=lambda p: p.stem)
def test_json_storage_value_decodes_to_itself(pb: Path) -> None:
    text = pb.with_suffix(".json").read_bytes()
    assert decode("/registry/x", text) == json.loads(text)


@pytest.mark.parametrize("pb", PB_FILES, ids=lambda p: p.stem)
def test_truncated_protobuf_is_reported_with_its_key(pb: Path) -> None:
    data = pb.read_bytes()
    # The envelope ends with two empty fields (contentEncoding, contentType): cutting
    # anywhere before them cuts the object.
    for cut in range(5, len(data) - 4, 7):
        with pytest.raises(CorruptValueError) as error:
            decode("/registry/ingress/ns/cut", data[:cut])
        assert error.value.key == "/registry/ingress/ns/cut"
        assert "/registry/ingress/ns/cut" in str(error.value)


def test_encrypted_value_names_key_and_provider() -> None:
    with pytest.raises(EncryptedValueError) as error:
        decode("/registry/secrets/ns/tls", b"k8s:enc:aescbc:v1:key1:\x8f\x00\x12garbage")
    assert "aescbc:v1" in str(error.value)
    assert error.value.key == "/registry/secrets/ns/tls"


def test_unknown_kind_is_a_typed_error() -> None:
    pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}
    with pytest.raises(UnknownKindError, match="'Pod'"):
        decode("/registry/pods/ns/p", json.dumps(pod).encode())
    envelope = encode_protobuf({"kind": "Service", "apiVersion": "v1", "metadata": {}})
    forged = envelope.replace(b"\x07Service", b"\x07Serpent")
    with pytest.raises(UnknownKindError, match="Serpent"):
        decode("/registry/services/specs/ns/s", forged)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x01\x02", b"{not json", b"[1, 2]", b'{"kind": "Service"}', b"k8s\x00\xff\xff"],
)
def test_garbage_is_corrupt(value: bytes) -> None:
    with pytest.raises(CorruptValueError):
        decode("/registry/services/specs/ns/bad", value)


def test_pointer_false_is_kept_and_omitempty_zero_dropped() -> None:
    endpoint_slice = {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": "s", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": False, "terminating": True}}
        ],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }
    decoded = decode("k", encode_protobuf(endpoint_slice))
    assert decoded["endpoints"][0]["conditions"] == {"ready": False, "terminating": True}
    assert decoded["ports"][0]["name"] == ""  # a pointer to "": kept
    assert "generateName" not in decoded["metadata"]  # written as "", omitted in JSON
    assert decoded == endpoint_slice


def _is_part_of(small: object, big: object) -> bool:
    """Every key of ``small`` is in ``big`` with a value that is part of big's."""
    if isinstance(small, dict) and isinstance(big, dict):
        return all(key in big and _is_part_of(value, big[key]) for key, value in small.items())
    if isinstance(small, list) and isinstance(big, list):
        return len(small) == len(big) and all(map(_is_part_of, small, big))
    return small == big


@pytest.mark.parametrize("pb", PB_FILES, ids=lambda p: p.stem)
def test_lean_decode_leaves_out_only_what_the_catalog_never_reads(pb: Path) -> None:
    full = json.loads(pb.with_suffix(".json").read_text())
    lean = decode("/registry/x", pb.read_bytes(), lean=True)
    assert lean == decode("/registry/x", pb.with_suffix(".json").read_bytes(), lean=True)
    assert _is_part_of(lean, full)
    assert lean != full
    for gone in ("managedFields", "uid", "ownerReferences", "finalizers"):
        assert gone in full["metadata"] and gone not in lean["metadata"]
    assert {"name", "namespace", "labels", "annotations"} <= set(lean["metadata"])
    if full["kind"] == "EndpointSlice":
        assert "targetRef" in full["endpoints"][0] and "targetRef" not in lean["endpoints"][0]
        assert lean["endpoints"][0]["conditions"] == full["endpoints"][0]["conditions"]
    if full["kind"] == "Node":
        assert "images" not in lean["status"] and lean["status"]["addresses"]


def _catalogs(values: list[bytes], settings: CatalogSettings) -> tuple[Catalog, Catalog]:
    full = [decode("/registry/x", value) for value in values]
    lean = [decode("/registry/x", value, lean=True) for value in values]
    return build_catalog(full, settings), build_catalog(lean, settings)


@pytest.mark.parametrize("mode", ["pods", "nodeport"])
def test_the_catalog_of_a_lean_decode_equals_the_catalog_of_a_full_one(mode: str) -> None:
    """What a lean decode leaves out is never read by the catalog: the watcher (lean)
    and the lookups (full) serve the same routes, servers, certificates, rejections."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
    from scale import cluster_objects  # objects shaped as the API server stores them

    from breakwater.lab import storage_value

    generated = [obj for index in range(30) for obj in cluster_objects(index)]
    nodes = [builders.node(f"n{i}", f"10.3.0.{i}", unschedulable=i == 2) for i in (1, 2)]
    for obj in generated:
        if obj["kind"] == "Service":
            obj["spec"]["ports"][0]["nodePort"] = 30000 + len(obj["metadata"]["name"])
    objects = [
        *generated,
        *nodes,
        builders.tls_secret("team1", "www"),
        builders.route_configmap("team1", "svc1", {"hosts": "cm.example.com", "cache": "true"}),
    ]
    values = [storage_value(obj) for obj in objects]
    values += [path.read_bytes() for path in PB_FILES]  # Kubernetes' own, every field set
    settings = CatalogSettings(mode=mode)  # type: ignore[arg-type]
    full, lean = _catalogs(values, settings)
    assert len(full.routes) > 30 and full.backends
    assert all(backend.servers for backend in full.backends.values())
    assert lean == full
    assert lean.certificates == full.certificates
