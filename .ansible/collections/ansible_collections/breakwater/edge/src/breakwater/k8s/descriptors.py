"""Real protobuf message classes built from the schema table (:mod:`.schema`), once:
the full ones, and lean ones without the fields the catalog never reads."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from breakwater.k8s.fields import Field
from breakwater.k8s.schema import MESSAGES, SPECIAL_TYPES

PACKAGE = "breakwater.k8s"


SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}


# The runtime.Unknown envelope of k8s.io/apimachinery/pkg/runtime.
ENVELOPE: dict[str, tuple[Field, ...]] = {
    "TypeMeta": (Field("apiVersion", 1, "string"), Field("kind", 2, "string")),
    "Unknown": (
        Field("typeMeta", 1, "TypeMeta"),
        Field("raw", 2, "bytes"),
        Field("contentEncoding", 3, "string"),
        Field("contentType", 4, "string"),
    ),
}


ZERO_TIME_SECONDS = -62135596800  # Go's time.Time{}.Unix(): JSON null


def split_type(type_name: str) -> tuple[str, str]:
    """``[]T`` -> ("repeated", T); ``{T}`` -> ("map", T); ``T`` -> ("single", T)."""
    if type_name.startswith("[]"):
        return "repeated", type_name[2:]
    if type_name.startswith("{"):
        return "map", type_name[1:-1]
    return "single", type_name


def _field_proto(
    owner: descriptor_pb2.DescriptorProto, field: Field
) -> descriptor_pb2.FieldDescriptorProto:
    shape, element = split_type(field.type)
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
        proto.type_name = f".{PACKAGE}.{owner.name}.{entry_name}"
    elif element in SCALARS:
        proto.type = SCALARS[element]
    else:
        proto.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        proto.type_name = f".{PACKAGE}.{element}"
    return proto


@cache
def message_classes(
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
        package=PACKAGE,
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
    tables = {**MESSAGES, **SPECIAL_TYPES, **ENVELOPE}
    for name, fields in tables.items():
        owner = file_proto.message_type.add(name=name)
        for field in fields:
            if not (lean and (name, field.json_name) in LEAN_SKIPPED):
                _field_proto(owner, field)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in tables
    }


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
