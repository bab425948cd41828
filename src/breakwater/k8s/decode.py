"""Decode Kubernetes objects as the API server stores them in etcd.

A stored value is one of:

* JSON -- it starts with ``{``;
* protobuf -- the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` envelope
  (``typeMeta``, ``raw``, ``contentEncoding``, ``contentType``) whose ``raw`` is the
  object's own message;
* encrypted at rest -- it starts with ``k8s:enc:<provider>:<version>:<key>:``.  The
  watcher has no keys; such a value is reported, never half-read.

Every kind decodes to the dictionary Kubernetes' own JSON encoding gives for the same
object, so the catalog only ever sees one form.

Decoding is total: whatever the bytes, :func:`decode` returns a dict holding only
what JSON holds (str keys, str values valid UTF-8, finite numbers) or raises a
:class:`DecodeError` naming the key -- never anything else.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NamedTuple

from google.protobuf import message
from google.protobuf.message import DecodeError as ProtobufDecodeError

from breakwater.k8s.descriptors import (
    LEAN_SKIPPED,
    ZERO_TIME_SECONDS,
    message_classes,
    split_type,
)
from breakwater.k8s.jsontext import JSONTextError, load_json, short
from breakwater.k8s.schema import JSON_KINDS, KINDS, MESSAGES, SPECIAL_TYPES

PROTOBUF_MAGIC = b"k8s\x00"


ENCRYPTED_PREFIX = b"k8s:enc:"


class DecodeError(Exception):
    """A stored value that cannot be turned into an object; names the etcd key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class EncryptedValueError(DecodeError):
    """The value is encrypted at rest (``k8s:enc:``); the edge cannot read it."""


class CorruptValueError(DecodeError):
    """The value is truncated, corrupt, or not a Kubernetes storage value at all."""


class UnknownKindError(DecodeError):
    """The value is a kind Breakwater has no schema for."""


def _time_to_json(value: Any) -> str | None:
    if value.seconds == ZERO_TIME_SECONDS and value.nanos == 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value.seconds))


def _int_or_string_to_json(value: Any) -> int | str:
    return str(value.strVal) if value.type == 1 else int(value.intVal)


def _fields_v1_to_json(value: Any) -> Any:
    if not value.Raw:
        return {}
    try:
        return load_json(value.Raw)
    except JSONTextError as exc:
        raise JSONTextError(f"fieldsV1 is not valid JSON: {exc}") from exc


_SPECIAL_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "Time": _time_to_json,
    "IntOrString": _int_or_string_to_json,
    "Quantity": lambda value: str(value.string),
    "FieldsV1": _fields_v1_to_json,
    "bytes": lambda value: base64.b64encode(value).decode("ascii"),
}


class _FieldPlan(NamedTuple):
    """How one field turns into JSON, worked out once per message type."""

    name: str
    shape: str  # single, repeated, map, inline
    element: str
    convert: Callable[[Any], Any] | None  # None: the value as it is
    keep_zero: bool  # a pointer or a field without omitempty
    keep_empty: bool  # a list or map without omitempty


class _TypePlan(NamedTuple):
    fields: dict[str, _FieldPlan]  # by protobuf field name (the JSON name)
    empty: tuple[tuple[str, str], ...]  # (name, shape): lists and maps kept when empty
    by_descriptor: dict[Any, _FieldPlan]  # the same, by field descriptor, filled as met


@cache
def _plan(type_name: str, lean: bool) -> _TypePlan:
    plans = {}
    for field in MESSAGES[type_name]:
        shape, element = split_type(field.type)
        if "i" in field.flags:
            shape = "inline"
        convert: Callable[[Any], Any] | None
        if element in MESSAGES:
            convert = _message_converter(element, lean)
        else:
            convert = _SPECIAL_CONVERTERS.get(element)
        struct = element in MESSAGES or element in SPECIAL_TYPES
        keep_zero = struct or "p" in field.flags or "k" in field.flags
        plans[field.json_name] = _FieldPlan(
            field.json_name, shape, element, convert, keep_zero, "k" in field.flags
        )
    empty = tuple(
        (p.name, p.shape) for p in plans.values() if p.keep_empty and p.shape in ("repeated", "map")
    )
    return _TypePlan(plans, empty, {})


def _message_converter(type_name: str, lean: bool) -> Callable[[Any], dict[str, Any]]:
    """The converter of one message type, its plan looked up once (plans are recursive)."""
    plan: _TypePlan | None = None

    def convert(value: Any) -> dict[str, Any]:
        nonlocal plan
        if plan is None:
            plan = _plan(type_name, lean)
        return _convert(plan, value, lean)

    return convert


def _message_to_json(type_name: str, value: Any, lean: bool = False) -> dict[str, Any]:
    return _convert(_plan(type_name, lean), value, lean)


def _convert(plan: _TypePlan, value: Any, lean: bool) -> dict[str, Any]:
    # ListFields() names only the fields present on the wire: most of a message's
    # fields are absent, so the walk visits those alone (the hot loop of a full list).
    out: dict[str, Any] = {}
    if plan.empty:
        for name, shape in plan.empty:
            out[name] = [] if shape == "repeated" else {}
    by_descriptor = plan.by_descriptor
    for descriptor, item in value.ListFields():
        field = by_descriptor.get(descriptor)
        if field is None:
            field = by_descriptor[descriptor] = plan.fields[descriptor.name]
        name, shape, element, convert, keep_zero, _keep_empty = field
        if shape == "single":
            converted = convert(item) if convert else item
            if converted or keep_zero:
                out[name] = converted
        elif shape == "repeated":
            out[name] = [convert(v) for v in item] if convert else list(item)
        elif shape == "map":
            out[name] = {k: (convert(item[k]) if convert else item[k]) for k in sorted(item)}
        elif shape == "inline":
            out.update(_message_to_json(element, item, lean))
    return out


def _invalid_utf8_field(type_name: str, data: bytes, lean: bool) -> str | None:
    """The path of the first string field of ``data`` that is not UTF-8, if that is
    why it does not parse: the error path only, so it may be slow."""
    obj: Any = message_classes(lean, check_utf8=False)[type_name]()
    try:
        obj.ParseFromString(data)
    except (ProtobufDecodeError, UnicodeDecodeError):
        return None  # corrupt in some other way (or a parser that checks UTF-8 anyway)
    return _find_bytes(obj, "")


def _find_bytes(value: Any, path: str) -> str | None:
    for descriptor, item in value.ListFields():
        name = f"{path}.{descriptor.name}" if path else descriptor.name
        is_string = descriptor.type == descriptor.TYPE_STRING
        entry = descriptor.message_type
        if entry is not None and entry.GetOptions().map_entry:
            keys = list(item)
            bad_keys = [k for k in keys if not isinstance(k, str)]
            if bad_keys:
                return f"{name} (key {short(repr(bad_keys[0]), 40)})"
            is_string = entry.fields_by_name["value"].type == descriptor.TYPE_STRING
            elements = [(f"{name}[{short(k, 40)}]", item[k]) for k in keys]
        elif isinstance(item, (str, bytes, message.Message)):
            elements = [(name, item)]
        elif isinstance(item, (int, float, bool)):
            continue
        else:
            elements = [(f"{name}[{index}]", element) for index, element in enumerate(item)]
        for element_path, element in elements:
            if is_string and isinstance(element, bytes):
                return element_path
            if isinstance(element, message.Message):
                found = _find_bytes(element, element_path)
                if found:
                    return found
    return None


def _parse(key: str, classes: Mapping[str, Any], type_name: str, data: bytes, lean: bool) -> Any:
    obj = classes[type_name]()
    try:
        obj.ParseFromString(data)
    except ProtobufDecodeError as exc:
        what = "protobuf envelope" if type_name == "Unknown" else type_name
        field = _invalid_utf8_field(type_name, data, lean)
        if field is not None:
            raise CorruptValueError(
                key, f"invalid UTF-8 in string field {field} of {what}"
            ) from exc
        raise CorruptValueError(key, f"truncated or corrupt {what} ({short(exc)})") from exc
    except UnicodeDecodeError as exc:  # the pure-Python protobuf checks UTF-8 itself
        raise CorruptValueError(key, f"invalid UTF-8 in a string field ({short(exc)})") from exc
    return obj


def decode_protobuf(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
    """Decode a ``k8s\\x00`` protobuf storage value into Kubernetes' JSON form."""
    classes = message_classes(lean)
    envelope = _parse(key, classes, "Unknown", value[len(PROTOBUF_MAGIC) :], lean)
    if not envelope.HasField("raw"):
        raise CorruptValueError(key, "protobuf envelope carries no object")
    if envelope.contentEncoding:
        encoding = short(repr(envelope.contentEncoding), 80)
        raise CorruptValueError(key, f"unsupported contentEncoding {encoding}")
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    type_name = KINDS.get((api_version, kind))
    if type_name is None:
        raise _unknown_kind(key, kind, api_version)
    obj = _parse(key, classes, type_name, envelope.raw, lean)
    try:
        body = _message_to_json(type_name, obj, lean)
    except (ValueError, OverflowError, OSError) as exc:
        raise CorruptValueError(key, f"corrupt {kind} ({short(exc)})") from exc
    return {"kind": kind, "apiVersion": api_version, **body}


def _unknown_kind(key: str, kind: object, api_version: object) -> UnknownKindError:
    return UnknownKindError(
        key,
        f"unknown kind {short(repr(kind), 80)} of apiVersion {short(repr(api_version), 80)}",
    )


def decode_json(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
    """Decode a JSON storage value; the kind must be one Breakwater knows."""
    try:
        obj = load_json(value)
    except JSONTextError as exc:
        raise CorruptValueError(key, f"truncated or corrupt JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise CorruptValueError(key, "JSON value is not an object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise CorruptValueError(key, "JSON object has no kind and apiVersion")
    if (api_version, kind) in JSON_KINDS:
        return obj
    if (api_version, kind) not in KINDS:
        raise _unknown_kind(key, kind, api_version)
    if lean:
        _drop_lean_skipped(KINDS[(api_version, kind)], obj)
    return obj


def _drop_lean_skipped(type_name: str, obj: dict[str, Any]) -> None:
    """:data:`LEAN_SKIPPED` out of an object decoded from JSON, in place."""
    for field in MESSAGES.get(type_name, ()):
        shape, element = split_type(field.type)
        if "i" in field.flags:
            _drop_lean_skipped(element, obj)  # inlined: its fields are the owner's
            continue
        value = obj.get(field.json_name)
        if value is None:
            continue
        if (type_name, field.json_name) in LEAN_SKIPPED:
            del obj[field.json_name]
            continue
        if element not in MESSAGES:
            continue
        if shape == "repeated":
            items = value if isinstance(value, list) else []
        elif shape == "map":
            items = list(value.values()) if isinstance(value, dict) else []
        else:
            items = [value]
        for item in items:
            if isinstance(item, dict):
                _drop_lean_skipped(element, item)


def decode(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
    """Decode one etcd value stored by the Kubernetes API server.

    ``key`` is only used to name the object in errors.  Raises a subclass of
    :class:`DecodeError` for encrypted, corrupt or unknown values, and nothing else
    (but :class:`MemoryError`).  ``lean`` leaves out :data:`LEAN_SKIPPED` (the
    watcher's form: less memory, faster lists).
    """
    try:
        if value.startswith(ENCRYPTED_PREFIX):
            provider = value[len(ENCRYPTED_PREFIX) :].split(b":", 2)[:2]
            name = short(":".join(part.decode("ascii", "replace") for part in provider), 80)
            raise EncryptedValueError(
                key,
                f"value is encrypted at rest (provider {name}); Breakwater reads only "
                "unencrypted resources, exclude this resource from the encryption configuration",
            )
        if value.startswith(PROTOBUF_MAGIC):
            return decode_protobuf(key, value, lean)
        if value.lstrip()[:1] == b"{":
            return decode_json(key, value, lean)
    except (DecodeError, MemoryError):
        raise
    except Exception as exc:
        # The last line of defence: whatever was not foreseen is still a bad value.
        reason = f"cannot decode ({type(exc).__name__}: {short(exc)})"
        raise CorruptValueError(key, reason) from exc
    raise CorruptValueError(key, "not a Kubernetes storage value (neither JSON nor k8s protobuf)")
