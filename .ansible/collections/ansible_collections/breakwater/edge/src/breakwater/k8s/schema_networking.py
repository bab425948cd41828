"""The schema table (see :mod:`.schema`): discovery.k8s.io/v1 and networking.k8s.io/v1."""

from __future__ import annotations

from breakwater.k8s.fields import Field
from breakwater.k8s.fields import fields as _fields

MESSAGES: dict[str, tuple[Field, ...]] = {
    # --- discovery.k8s.io/v1 EndpointSlice ----------------------------------------
    "EndpointSlice": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("addressType", 4, "string", "k"),
        ("endpoints", 2, "[]Endpoint", "k"),
        ("ports", 3, "[]EndpointPort"),
    ),
    "Endpoint": _fields(
        ("addresses", 1, "[]string", "k"),
        ("conditions", 2, "EndpointConditions"),
        ("hostname", 3, "string", "p"),
        ("targetRef", 4, "ObjectReference", "p"),
        ("deprecatedTopology", 5, "{string}"),
        ("nodeName", 6, "string", "p"),
        ("zone", 7, "string", "p"),
        ("hints", 8, "EndpointHints", "p"),
    ),
    "EndpointConditions": _fields(
        ("ready", 1, "bool", "p"),
        ("serving", 2, "bool", "p"),
        ("terminating", 3, "bool", "p"),
    ),
    "EndpointHints": _fields(
        ("forZones", 1, "[]ForZone"),
        ("forNodes", 2, "[]ForNode"),
    ),
    "ForZone": _fields(
        ("name", 1, "string", "k"),
    ),
    "ForNode": _fields(
        ("name", 1, "string", "k"),
    ),
    "EndpointPort": _fields(
        ("name", 1, "string", "p"),
        ("protocol", 2, "string", "p"),
        ("port", 3, "int32", "p"),
        ("appProtocol", 4, "string", "p"),
    ),
    # --- networking.k8s.io/v1 Ingress, IngressClass --------------------------------
    "Ingress": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("spec", 2, "IngressSpec"),
        ("status", 3, "IngressStatus"),
    ),
    "IngressSpec": _fields(
        ("ingressClassName", 4, "string", "p"),
        ("defaultBackend", 1, "IngressBackend", "p"),
        ("tls", 2, "[]IngressTLS"),
        ("rules", 3, "[]IngressRule"),
    ),
    "IngressBackend": _fields(
        ("service", 4, "IngressServiceBackend", "p"),
        ("resource", 3, "TypedLocalObjectReference", "p"),
    ),
    "IngressServiceBackend": _fields(
        ("name", 1, "string", "k"),
        ("port", 2, "ServiceBackendPort"),
    ),
    "ServiceBackendPort": _fields(
        ("name", 1, "string"),
        ("number", 2, "int32"),
    ),
    "TypedLocalObjectReference": _fields(
        ("apiGroup", 1, "string", "p"),
        ("kind", 2, "string", "k"),
        ("name", 3, "string", "k"),
    ),
    "IngressTLS": _fields(
        ("hosts", 1, "[]string"),
        ("secretName", 2, "string"),
    ),
    "IngressRule": _fields(
        ("host", 1, "string"),
        ("ingressRuleValue", 2, "IngressRuleValue", "i"),
    ),
    "IngressRuleValue": _fields(
        ("http", 1, "HTTPIngressRuleValue", "p"),
    ),
    "HTTPIngressRuleValue": _fields(
        ("paths", 1, "[]HTTPIngressPath", "k"),
    ),
    "HTTPIngressPath": _fields(
        ("path", 1, "string"),
        ("pathType", 3, "string", "p"),
        ("backend", 2, "IngressBackend", "k"),
    ),
    "IngressStatus": _fields(
        ("loadBalancer", 1, "IngressLoadBalancerStatus"),
    ),
    "IngressLoadBalancerStatus": _fields(
        ("ingress", 1, "[]IngressLoadBalancerIngress"),
    ),
    "IngressLoadBalancerIngress": _fields(
        ("ip", 1, "string"),
        ("hostname", 2, "string"),
        ("ports", 4, "[]PortStatus"),
    ),
    "IngressClass": _fields(
        ("metadata", 1, "ObjectMeta"),
        ("spec", 2, "IngressClassSpec"),
    ),
    "IngressClassSpec": _fields(
        ("controller", 1, "string"),
        ("parameters", 2, "IngressClassParametersReference", "p"),
    ),
    "IngressClassParametersReference": _fields(
        ("apiGroup", 1, "string", "p"),
        ("kind", 2, "string", "k"),
        ("name", 3, "string", "k"),
        ("scope", 4, "string", "p"),
        ("namespace", 5, "string", "p"),
    ),
}
