"""Encode objects as the API server stores them in etcd (the inverse of :mod:`.decode`).

Used by tests, the lab and the benchmarks to write what a real cluster writes."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping
from typing import Any

from breakwater.k8s.decode import PROTOBUF_MAGIC, UnknownKindError
from breakwater.k8s.descriptors import SCALARS, ZERO_TIME_SECONDS, message_classes, split_type
from breakwater.k8s.schema import KINDS, MESSAGES


def _time_from_json(text: Any, target: Any) -> None:
    if text is None:
        target.seconds, target.nanos = ZERO_TIME_SECONDS, 0
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
        shape, element = split_type(field.type)
        value = obj if "i" in field.flags else obj.get(field.json_name)
        is_scalar = element in SCALARS
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
    classes = message_classes()
    body = classes[type_name]()
    _message_from_json(type_name, obj, body)
    envelope: Any = classes["Unknown"](
        raw=body.SerializeToString(deterministic=True), contentEncoding="", contentType=""
    )
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    serialized: bytes = envelope.SerializeToString(deterministic=True)
    return PROTOBUF_MAGIC + serialized
