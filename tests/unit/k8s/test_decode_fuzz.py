"""The storage decoder is total: any bytes give a JSON-clean dict or a DecodeError.

Property tests (Hypothesis) over random bytes, random JSON and mutated fixtures, and
one regression test per defect found from outside.  Profiles: ``ci`` (default, a few
seconds) and ``release`` (``HYPOTHESIS_PROFILE=release``, many more examples).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import breakwater.k8s.decode as decode_module
from breakwater.cli import main
from breakwater.k8s.decode import CorruptValueError, DecodeError, decode
from breakwater.k8s.schema import KINDS

# Registered unconditionally (idempotent): Hypothesis ships a "ci" profile of its own
# (100 examples, derandomized), which a register-if-absent would silently keep.
for _name, _examples in (("ci", 300), ("release", 20000)):
    settings.register_profile(
        _name,
        max_examples=_examples,
        deadline=None,
        derandomize=False,  # random, and a failure prints how to replay it (print_blob)
        database=None,  # no .hypothesis directory in the tree
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
# Hypothesis's caches stay out of the tree: tests/conftest.py.
# Applied per test rather than loaded globally: other modules keep their own settings.
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "k8s"
FIXTURE_VALUES = {
    path.name: path.read_bytes()
    for path in sorted(FIXTURES.glob("*.pb")) + sorted(FIXTURES.glob("*.json"))
}
KEY = "/registry/fuzz/ns/name"


# --- the property --------------------------------------------------------------------


def _assert_json_clean(value: Any) -> None:
    """Only the types JSON has, str keys, and every str valid UTF-8."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            key.encode("utf-8")
            _assert_json_clean(item)
    elif isinstance(value, list):
        for item in value:
            _assert_json_clean(item)
    elif type(value) is str:
        value.encode("utf-8")
    elif type(value) is float:
        assert math.isfinite(value)
    else:
        assert value is None or type(value) in (bool, int), type(value)


def _event(name: str) -> None:
    """For ``--hypothesis-show-statistics``: how far the values get."""
    if currently_in_test_context():
        event(name)


def _decode_totally(value: bytes, lean: bool) -> dict[str, Any] | None:
    """Decode; a DecodeError naming the key is fine, anything else fails the test."""
    try:
        result = decode(KEY, value, lean=lean)
    except DecodeError as exc:
        _event(type(exc).__name__)
        assert exc.key == KEY
        assert len(exc.reason) < 500, "error messages must not carry huge values"
        return None
    _event("decoded")
    assert type(result) is dict
    _assert_json_clean(result)
    text = json.dumps(result, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert json.loads(text) == result
    return result


# --- random bytes ----------------------------------------------------------------------


def _envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return b"k8s\x00" + _ld(1, _ld(1, api_version) + _ld(2, kind)) + _ld(2, raw) + _ld(3, b"")


KNOWN_KINDS = sorted(KINDS)
PREFIXES = [
    b"",
    b"k8s\x00",
    b"{",
    b" \n{",
    b'{"kind":"Service","apiVersion":"v1","metadata":',
    b'{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"},"status":',
    b"k8s:enc:",
]


@PROFILE
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=1500), lean=st.booleans())
def test_random_bytes_decode_or_raise_a_decode_error(
    prefix: bytes, rest: bytes, lean: bool
) -> None:
    _decode_totally(prefix + rest, lean)


@PROFILE
@given(kind=st.sampled_from(KNOWN_KINDS), raw=st.binary(max_size=1500), lean=st.booleans())
def test_random_object_in_a_valid_envelope(kind: tuple[str, str], raw: bytes, lean: bool) -> None:
    """Past the envelope: random bytes as the object of every known kind."""
    _decode_totally(_envelope(kind[0].encode(), kind[1].encode(), raw), lean)


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and infinities included: they must be rejected
    | st.text(st.characters(exclude_categories=()), max_size=20)  # lone surrogates too
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=8), children, max_size=4
        )
    ),
    max_leaves=20,
)


def _strictly_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


@PROFILE
@given(kind=st.sampled_from(KNOWN_KINDS), extra=_json_values, lean=st.booleans())
def test_random_json_decodes_exactly_or_is_rejected(
    kind: tuple[str, str], extra: Any, lean: bool
) -> None:
    obj = {"apiVersion": kind[0], "kind": kind[1], "metadata": {"name": "x"}, "zz": extra}
    stored = json.dumps(obj).encode()  # ASCII: lone surrogates become \udXXX escapes
    result = _decode_totally(stored, lean)
    if _strictly_json(extra):
        assert result == obj
    else:
        assert result is None


# --- mutated fixtures ------------------------------------------------------------------


@st.composite
def _mutated(draw: st.DrawFn, original: bytes) -> bytes:
    value = bytearray(original)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=max(len(value) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if operation == "flip" and value:
            value[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif operation == "set" and value:
            value[at] = draw(st.integers(min_value=0, max_value=255))
        elif operation == "insert":
            value[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del value[at : at + draw(st.integers(min_value=1, max_value=8))]
        elif operation == "truncate":
            del value[at:]
    return bytes(value)


@PROFILE
@given(name=st.sampled_from(sorted(FIXTURE_VALUES)), data=st.data(), lean=st.booleans())
def test_mutated_fixture_decodes_or_raises_a_decode_error(
    name: str, data: st.DataObject, lean: bool
) -> None:
    _decode_totally(data.draw(_mutated(FIXTURE_VALUES[name]), label="value"), lean)


@pytest.mark.parametrize("name", sorted(FIXTURE_VALUES))
def test_fixtures_themselves_decode_cleanly(name: str) -> None:
    for lean in (False, True):
        assert _decode_totally(FIXTURE_VALUES[name], lean) is not None


# --- regressions: one per defect found from outside ----------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if not number:
            return bytes([*out, low])
        out.append(low | 0x80)


def _ld(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (string, bytes, message, map entry)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _service(metadata: bytes) -> bytes:
    """A stored v1 Service whose ObjectMeta (field 1) is ``metadata``, wire format."""
    return _envelope(b"v1", b"Service", _ld(1, metadata))


def _label(key: bytes, value: bytes) -> bytes:
    return _ld(11, _ld(1, key) + _ld(2, value))  # ObjectMeta.labels map entry


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize(
    "text",
    [b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000, b"[" * 100_000],
    ids=["list-1000", "object-1000", "list-100000-unclosed"],
)
def test_deeply_nested_json_is_corrupt(text: bytes, lean: bool) -> None:
    value = b'{"kind":"Service","apiVersion":"v1","x":' + text + b"}"
    with pytest.raises(CorruptValueError, match="nested too deeply") as error:
        decode(KEY, value, lean=lean)
    assert error.value.key == KEY


def test_json_integer_over_the_conversion_limit_is_corrupt() -> None:
    value = b'{"kind":"Service","apiVersion":"v1","x":' + b"7" * 5000 + b"}"
    with pytest.raises(CorruptValueError) as error:
        decode(KEY, value)
    assert "7777777" not in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize(
    "number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"], ids=bytes.decode
)
def test_json_non_finite_numbers_are_corrupt(number: bytes) -> None:
    value = b'{"kind":"Service","apiVersion":"v1","x":[' + number + b"]}"
    with pytest.raises(CorruptValueError, match="JSON"):
        decode(KEY, value)


@pytest.mark.parametrize(
    "text",
    [b'"\\ud800"', b'"a\\uDFFFb"', b'{"\\udc80": 1}', b'"\xed\xa0\x80"', b'"\xff"'],
    ids=["escape", "escape-upper", "escaped-key", "utf8-surrogate", "invalid-byte"],
)
def test_json_strings_that_are_not_utf8_are_corrupt(text: bytes) -> None:
    value = b'{"kind":"Service","apiVersion":"v1","x":' + text + b"}"
    with pytest.raises(CorruptValueError):
        decode(KEY, value)


def test_json_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    value = b'{"kind":"Service","apiVersion":"v1","x":["\\ud83d\\ude00", "\\\\ud800"]}'
    assert decode(KEY, value)["x"] == ["\N{GRINNING FACE}", "\\ud800"]


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize(
    "labels",
    [
        _label(b"good", b"v") + _label(b"\xff\xfe", b"v"),  # mixed keys: sort raised TypeError
        _label(b"\xff\xfe", b"v"),
        _label(b"good", b"\xff"),
    ],
    ids=["valid-and-invalid-key", "invalid-key", "invalid-value"],
)
def test_protobuf_map_with_invalid_utf8_is_corrupt_naming_the_field(
    labels: bytes, lean: bool
) -> None:
    with pytest.raises(CorruptValueError, match=r"metadata\.labels") as error:
        decode(KEY, _service(_ld(1, b"svc") + labels), lean=lean)
    assert error.value.key == KEY


def _managed_fields(raw: bytes) -> bytes:
    """ObjectMeta.managedFields (17) with one entry whose fieldsV1 (7) Raw (1) is ``raw``."""
    return _ld(17, _ld(1, b"kubectl") + _ld(7, _ld(1, raw)))


@pytest.mark.parametrize(
    "raw",
    [b'{"f:a":' * 2000 + b"{}" + b"}" * 2000, b"[" * 1000 + b"]" * 1000],
    ids=["object-2000", "list-1000"],
)
def test_deep_managed_fields_are_corrupt_in_a_full_decode(raw: bytes) -> None:
    value = _service(_ld(1, b"svc") + _managed_fields(raw))
    with pytest.raises(CorruptValueError, match="fieldsV1") as error:
        decode(KEY, value)  # the CLI's and the Ansible lookups' form
    assert error.value.key == KEY
    # A lean decode never reads managedFields.
    assert decode(KEY, value, lean=True)["metadata"] == {"name": "svc"}


@pytest.mark.parametrize(
    "raw", [b'{"f:a":' + b"9" * 5000 + b"}", b'{"f:\xff":{}}', b'{"\\udc00":{}}', b"NaN"]
)
def test_bad_managed_fields_json_is_corrupt(raw: bytes) -> None:
    with pytest.raises(CorruptValueError, match="fieldsV1"):
        decode(KEY, _service(_ld(1, b"svc") + _managed_fields(raw)))


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        (_ld(1, b"a\xffb"), "metadata.name"),
        (_ld(14, b"ok") + _ld(14, b"\xc0\xaf"), "metadata.finalizers"),
        (_ld(12, _ld(1, b"k") + _ld(2, b"\xed\xa0\x80")), "metadata.annotations"),
    ],
    ids=["name", "finalizers", "annotation-surrogate"],
)
def test_protobuf_string_with_invalid_utf8_is_corrupt_naming_the_field(
    metadata: bytes, field: str, lean: bool
) -> None:
    if lean and field == "metadata.finalizers":
        # Left out of a lean decode, so never read: a lean decode is fine.
        assert decode(KEY, _service(metadata), lean=True)["kind"] == "Service"
        return
    with pytest.raises(CorruptValueError, match=field.replace(".", r"\.")):
        decode(KEY, _service(metadata), lean=lean)


def test_cli_decode_of_invalid_utf8_reports_corrupt_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "service.pb"
    stored.write_bytes(_service(_ld(1, b"a\xffb")))
    assert main(["decode", str(stored), "--key", "/registry/services/specs/ns/a"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "CorruptValueError" in captured.err
    assert "/registry/services/specs/ns/a" in captured.err and "metadata.name" in captured.err


def test_cli_decode_of_json_with_a_lone_surrogate_reports_corrupt_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    value = b'{"kind":"Service","apiVersion":"v1","metadata":{"name":"\\ud800"}}'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(value)))
    assert main(["decode", "-"]) == 1
    assert "CorruptValueError" in capsys.readouterr().err


def test_huge_unknown_kind_is_named_briefly() -> None:
    with pytest.raises(DecodeError) as error:
        decode(KEY, _envelope(b"v1", b"K" * 100_000, b""))
    assert len(str(error.value)) < 500
    with pytest.raises(DecodeError) as error:
        decode(KEY, json.dumps({"kind": "K" * 100_000, "apiVersion": "v1"}).encode())
    assert len(str(error.value)) < 500


def test_any_other_failure_becomes_a_corrupt_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: an unforeseen exception is reported, briefly."""

    def broken(*_args: Any) -> Any:
        raise KeyError("x" * 10_000)

    monkeypatch.setattr(decode_module, "_message_to_json", broken)
    with pytest.raises(CorruptValueError, match=r"cannot decode \(KeyError: ") as error:
        decode(KEY, FIXTURE_VALUES["core.v1.Service.pb"])
    assert error.value.key == KEY and len(error.value.reason) < 300
