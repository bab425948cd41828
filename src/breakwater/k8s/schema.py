"""Protobuf schema of the Kubernetes kinds Breakwater reads from etcd.

Kubernetes stores objects in etcd as protobuf (``k8s\\x00`` + ``runtime.Unknown``),
described by the ``generated.proto`` files of ``k8s.io/api``.  Those files import a
dozen others and are written for gogo-protobuf; compiling them would add protoc and
generated code to the build.  Instead this table lists, per message, the fields with
their JSON name (Kubernetes' JSON tags, in Go struct order, which is the order
``kubectl get -o json`` prints), their protobuf field number and their type.
:mod:`breakwater.k8s.descriptors` turns the table into real protobuf descriptors, so the
wire format itself is parsed by the ``protobuf`` library.

Types:
  ``string``, ``int32``, ``int64``, ``bool``, ``bytes`` -- scalars (``bytes`` is base64 in JSON)
  ``Time`` (metav1.Time), ``IntOrString``, ``Quantity``, ``FieldsV1`` -- Kubernetes types
  with their own JSON forms; any other name is a message of this table.
  ``[]T`` is a repeated field, ``{T}`` a ``map<string, T>``.
Flags:
  ``p`` -- a Go pointer: its presence on the wire is its meaning, so a zero value
  (``ready: false``) is kept.  Without it, zero values are dropped as Go's
  ``omitempty`` drops them.  ``k`` -- a field without ``omitempty``: always kept.
  ``i`` -- an embedded (inline) struct: its fields appear in the parent's JSON object.

Field numbers were read from Kubernetes' own compatibility fixtures (the ``.pb``
files of ``api/testdata``), which set every field of a kind.
"""

from __future__ import annotations

from breakwater.k8s import schema_core, schema_networking
from breakwater.k8s.fields import Field
from breakwater.k8s.fields import fields as _fields

MESSAGES: dict[str, tuple[Field, ...]] = {**schema_core.MESSAGES, **schema_networking.MESSAGES}

# (apiVersion, kind) of a stored object -> its top-level message.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Service"): "Service",
    ("v1", "Endpoints"): "Endpoints",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "Node"): "Node",
    ("discovery.k8s.io/v1", "EndpointSlice"): "EndpointSlice",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("networking.k8s.io/v1", "IngressClass"): "IngressClass",
}

# CustomResources, stored as JSON only and read as they are (no schema of ours): the
# Gateway API at the versions its CRDs store -- v1, and v1beta1 for ReferenceGrant
# (v1 served too).  An object still stored at an older version (before a storage
# migration) is rejected by name as of an unknown kind.
JSON_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("gateway.networking.k8s.io/v1", "GatewayClass"),
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
        ("gateway.networking.k8s.io/v1", "ReferenceGrant"),
    }
)

# Kubernetes types with a JSON form of their own; their wire messages are fixed.
SPECIAL_TYPES: dict[str, tuple[Field, ...]] = {
    "Time": _fields(("seconds", 1, "int64"), ("nanos", 2, "int32")),
    "IntOrString": _fields(("type", 1, "int64"), ("intVal", 2, "int32"), ("strVal", 3, "string")),
    "Quantity": _fields(
        ("string", 1, "string"),
    ),
    "FieldsV1": _fields(
        ("Raw", 1, "bytes"),
    ),
}
