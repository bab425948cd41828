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
import datetime
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError

from breakwater.k8s.schema import KINDS, MESSAGES, SPECIAL_TYPES, Field

PROTOBUF_MAGIC = b"k8s\x00"
ENCRYPTED_PREFIX = b"k8s:enc:"
_PACKAGE = "breakwater.k8s"
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}
# The runtime.Unknown envelope of k8s.io/apimachinery/pkg/runtime.
_ENVELOPE: dict[str, tuple[Field, ...]] = {
    "TypeMeta": (Field("apiVersion", 1, "string"), Field("kind", 2, "string")),
    "Unknown": (
        Field("typeMeta", 1, "TypeMeta"),
        Field("raw", 2, "bytes"),
        Field("contentEncoding", 3, "string"),
        Field("contentType", 4, "string"),
    ),
}
_ZERO_TIME_SECONDS = -62135596800  # Go's time.Time{}.Unix(): JSON null
_MESSAGE_LIMIT = 200  # characters of a value or an exception quoted in an error


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


def _short(value: object, limit: int = _MESSAGE_LIMIT) -> str:
    """``str(value)``, cut to ``limit`` characters: errors never carry huge values."""
    try:
        text = str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _split_type(type_name: str) -> tuple[str, str]:
    """``[]T`` -> ("repeated", T); ``{T}`` -> ("map", T); ``T`` -> ("single", T)."""
    if type_name.startswith("[]"):
        return "repeated", type_name[2:]
    if type_name.startswith("{"):
        return "map", type_name[1:-1]
    return "single", type_name


def _field_proto(
    owner: descriptor_pb2.DescriptorProto, field: Field
) -> descriptor_pb2.FieldDescriptorProto:
    shape, element = _split_type(field.type)
    proto = owner.field.add(name=field.json_name, number=field.number, json_name=field.json_name)
    proto.label = (
        descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
        if shape == "single"
        else descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    )
    if shape == "map":
        entry_name = field.json_name[:1].upper() + field.json_name[1:] + "Entry"
        entry = owner.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        _field_proto(entry, Field("key", 1, "string"))
        _field_proto(entry, Field("value", 2, element))
        proto.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        proto.type_name = f".{_PACKAGE}.{owner.name}.{entry_name}"
    elif element in _SCALARS:
        proto.type = _SCALARS[element]
    else:
        proto.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        proto.type_name = f".{_PACKAGE}.{element}"
    return proto


@cache
def _message_classes(
    lean: bool = False, check_utf8: bool = True
) -> Mapping[str, type[message.Message]]:
    """Build real protobuf descriptors from the schema table, once.

    ``lean``: without the fields of :data:`LEAN_SKIPPED`.  The parser then keeps
    them as unknown fields, raw bytes in C, and no Python object is ever made of
    them -- most of what a lean decode saves.

    ``check_utf8``: the parser rejects a string field that is not valid UTF-8.
    Kubernetes' ``generated.proto`` is proto2, whose parser hands such a string to
    Python as ``bytes`` -- in a map's keys, a name, anywhere.  Edition 2023 keeps
    proto2's semantics (explicit presence, unpacked repeated fields: the same wire
    format both ways) and adds the check, made in C at no measurable cost.  Without
    it (proto2), the classes only serve to find the offending field for an error.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="breakwater/k8s-lean.proto" if lean else "breakwater/k8s.proto",
        package=_PACKAGE,
    )
    if check_utf8:
        file_proto.syntax = "editions"
        file_proto.edition = descriptor_pb2.EDITION_2023
        features = file_proto.options.features
        features.field_presence = descriptor_pb2.FeatureSet.EXPLICIT
        features.repeated_field_encoding = descriptor_pb2.FeatureSet.EXPANDED
        features.utf8_validation = descriptor_pb2.FeatureSet.VERIFY
    else:
        file_proto.syntax = "proto2"
    tables = {**MESSAGES, **SPECIAL_TYPES, **_ENVELOPE}
    for name, fields in tables.items():
        owner = file_proto.message_type.add(name=name)
        for field in fields:
            if not (lean and (name, field.json_name) in LEAN_SKIPPED):
                _field_proto(owner, field)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in tables
    }


def _time_to_json(value: Any) -> str | None:
    if value.seconds == _ZERO_TIME_SECONDS and value.nanos == 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value.seconds))


def _int_or_string_to_json(value: Any) -> int | str:
    return str(value.strVal) if value.type == 1 else int(value.intVal)


class _JSONError(ValueError):
    """A JSON text :func:`_load_json` refuses; the message is short."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError("number out of range")
    return number


# Strict JSON: Python's json also reads NaN and Infinity, and 1e999 as infinity.
_JSON_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)
# A \uXXXX escape of a UTF-16 surrogate: alone, json makes it a str that is not UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _load_json(data: bytes) -> Any:
    """Parse JSON text into values JSON can write back: raises :class:`_JSONError`."""
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16 and surrogates.
        obj = _JSON_DECODER.decode(data.decode("utf-8"))
    except RecursionError as exc:
        raise _JSONError("nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise _JSONError(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except ValueError as exc:  # syntax, NaN/Infinity, integers over 4300 digits
        raise _JSONError(_short(exc)) from exc
    # Rare (Kubernetes writes non-ASCII as UTF-8, not as escapes): check the strings
    # only when the text holds a surrogate escape -- a valid pair passes.
    if b"\\" in data and _SURROGATE_ESCAPE.search(data) is not None:
        try:
            json.dumps(obj, ensure_ascii=False, check_circular=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _JSONError("a string holds a lone surrogate (a \\ud800-\\udfff escape)") from exc
    return obj


def _fields_v1_to_json(value: Any) -> Any:
    if not value.Raw:
        return {}
    try:
        return _load_json(value.Raw)
    except _JSONError as exc:
        raise _JSONError(f"fieldsV1 is not valid JSON: {exc}") from exc


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


#: Fields a lean decode (the watcher's) leaves out: the catalog never reads them, and
#: they are most of a stored object -- managedFields alone is one entry per writer
#: with its whole field set, a Node's image list runs to hundreds of entries.  A
#: unit test holds the catalog to never reading them.
LEAN_SKIPPED = frozenset(
    [
        ("ObjectMeta", name)
        for name in (
            "generateName",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "managedFields",
        )
    ]
    + [
        ("Endpoint", name)
        for name in (
            "hostname",
            "targetRef",
            "deprecatedTopology",
            "nodeName",
            "zone",
            "hints",
        )
    ]
    + [("EndpointAddress", name) for name in ("hostname", "nodeName", "targetRef")]
    + [
        ("NodeStatus", name)
        for name in (
            "capacity",
            "allocatable",
            "daemonEndpoints",
            "nodeInfo",
            "images",
            "volumesInUse",
            "volumesAttached",
            "config",
            "runtimeHandlers",
            "features",
            "declaredFeatures",
        )
    ]
    + [("Service", "status"), ("Ingress", "status")]
)


@cache
def _plan(type_name: str, lean: bool) -> _TypePlan:
    plans = {}
    for field in MESSAGES[type_name]:
        shape, element = _split_type(field.type)
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
    obj: Any = _message_classes(lean, check_utf8=False)[type_name]()
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
                return f"{name} (key {_short(repr(bad_keys[0]), 40)})"
            is_string = entry.fields_by_name["value"].type == descriptor.TYPE_STRING
            elements = [(f"{name}[{_short(k, 40)}]", item[k]) for k in keys]
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
        raise CorruptValueError(key, f"truncated or corrupt {what} ({_short(exc)})") from exc
    except UnicodeDecodeError as exc:  # the pure-Python protobuf checks UTF-8 itself
        raise CorruptValueError(key, f"invalid UTF-8 in a string field ({_short(exc)})") from exc
    return obj


def decode_protobuf(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
    """Decode a ``k8s\\x00`` protobuf storage value into Kubernetes' JSON form."""
    classes = _message_classes(lean)
    envelope = _parse(key, classes, "Unknown", value[len(PROTOBUF_MAGIC) :], lean)
    if not envelope.HasField("raw"):
        raise CorruptValueError(key, "protobuf envelope carries no object")
    if envelope.contentEncoding:
        encoding = _short(repr(envelope.contentEncoding), 80)
        raise CorruptValueError(key, f"unsupported contentEncoding {encoding}")
    api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
    type_name = KINDS.get((api_version, kind))
    if type_name is None:
        raise _unknown_kind(key, kind, api_version)
    obj = _parse(key, classes, type_name, envelope.raw, lean)
    try:
        body = _message_to_json(type_name, obj, lean)
    except (ValueError, OverflowError, OSError) as exc:
        raise CorruptValueError(key, f"corrupt {kind} ({_short(exc)})") from exc
    return {"kind": kind, "apiVersion": api_version, **body}


def _unknown_kind(key: str, kind: object, api_version: object) -> UnknownKindError:
    return UnknownKindError(
        key,
        f"unknown kind {_short(repr(kind), 80)} of apiVersion {_short(repr(api_version), 80)}",
    )


def decode_json(key: str, value: bytes, lean: bool = False) -> dict[str, Any]:
    """Decode a JSON storage value; the kind must be one Breakwater knows."""
    try:
        obj = _load_json(value)
    except _JSONError as exc:
        raise CorruptValueError(key, f"truncated or corrupt JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise CorruptValueError(key, "JSON value is not an object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise CorruptValueError(key, "JSON object has no kind and apiVersion")
    if (api_version, kind) not in KINDS:
        raise _unknown_kind(key, kind, api_version)
    if lean:
        _drop_lean_skipped(KINDS[(api_version, kind)], obj)
    return obj


def _drop_lean_skipped(type_name: str, obj: dict[str, Any]) -> None:
    """:data:`LEAN_SKIPPED` out of an object decoded from JSON, in place."""
    for field in MESSAGES.get(type_name, ()):
        shape, element = _split_type(field.type)
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
            name = _short(":".join(part.decode("ascii", "replace") for part in provider), 80)
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
        reason = f"cannot decode ({type(exc).__name__}: {_short(exc)})"
        raise CorruptValueError(key, reason) from exc
    raise CorruptValueError(key, "not a Kubernetes storage value (neither JSON nor k8s protobuf)")


# --- encoding: the inverse, as the API server writes ---------------------------------


def _time_from_json(text: Any, target: Any) -> None:
    if text is None:
        target.seconds, target.nanos = _ZERO_TIME_SECONDS, 0
        return
    moment = datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    target.seconds, target.nanos = int(moment.timestamp()), 0


def _element_from_json(element: str, value: Any, target: Any) -> None:
    """Fill the message ``target`` of type ``element`` from its JSON form."""
    if element == "Time":
        _time_from_json(value, target)
    elif element == "IntOrString":
        if isinstance(value, str):
            target.type, target.intVal, target.strVal = 1, 0, value
        else:
            target.type, target.intVal, target.strVal = 0, int(value), ""
    elif element == "Quantity":
        target.string = str(value)
    elif element == "FieldsV1":
        target.Raw = json.dumps(value, separators=(",", ":")).encode()
    else:
        _message_from_json(element, value, target)


def _scalar_from_json(element: str, value: Any) -> Any:
    return base64.b64decode(value) if element == "bytes" else value


def _message_from_json(type_name: str, obj: Mapping[str, Any], target: Any) -> None:
    for field in MESSAGES[type_name]:
        shape, element = _split_type(field.type)
        value = obj if "i" in field.flags else obj.get(field.json_name)
        is_scalar = element in _SCALARS
        if shape == "repeated":
            container = getattr(target, field.json_name)
            for item in value or ():
                if is_scalar:
                    container.append(_scalar_from_json(element, item))
                else:
                    _element_from_json(element, item, container.add())
        elif shape == "map":
            entries = getattr(target, field.json_name)
            for key, item in (value or {}).items():
                if is_scalar:
                    entries[key] = _scalar_from_json(element, item)
                else:
                    _element_from_json(element, item, entries[key])
        elif "p" in field.flags and field.json_name not in obj:
            continue  # a nil pointer is not written
        elif is_scalar:
            zero = {"string": "", "bytes": b"", "bool": False}.get(element, 0)
            setattr(
                target,
                field.json_name,
                _scalar_from_json(element, value) if value is not None else zero,
            )
        else:
            # Go writes non-pointer structs even when empty, and zero Times as year 1.
            sub = getattr(target, field.json_name)
            sub.SetInParent()
            if element == "Time":
                _time_from_json(value, sub)
            elif value is not None:
                _element_from_json(element, value, sub)


def encode_protobuf(obj: Mapping[str, Any]) -> bytes:
    """Encode an object (Kubernetes' JSON form) as the API server stores it in etcd.

    Used by tests, the lab and the benchmarks to write what a real cluster writes.
    """
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    type_name = KINDS.get((api_version, kind))
    if type_name is None:
        raise UnknownKindError("<encode>", f"unknown kind {kind!r} of apiVersion {api_version!r}")
    classes = _message_classes()
    body = classes[type_name]()
    _message_from_json(type_name, obj, body)
    envelope: Any = classes["Unknown"](
        raw=body.SerializeToString(deterministic=True), contentEncoding="", contentType=""
    )
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    serialized: bytes = envelope.SerializeToString(deterministic=True)
    return PROTOBUF_MAGIC + serialized
