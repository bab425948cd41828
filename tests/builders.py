"""Builders of Kubernetes objects in their JSON form, for unit and integration tests."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

TLS = Path(__file__).resolve().parent / "fixtures" / "tls"


def meta(
    namespace: str, name: str, created: str = "2026-01-01T00:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "creationTimestamp": created, **extra}


def service(
    namespace: str, name: str, node_port: int | None = None, port_name: str = "http"
) -> dict[str, Any]:
    port: dict[str, Any] = {"name": port_name, "port": 80, "targetPort": 8080, "protocol": "TCP"}
    if node_port:
        port["nodePort"] = node_port
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": meta(namespace, name),
        "spec": {"ports": [port]},
    }


def endpoint_slice(
    namespace: str,
    service_name: str,
    endpoints: list[tuple[str, dict[str, bool]]],
    port: int = 8080,
    suffix: str = "a",
) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": meta(
            namespace,
            f"{service_name}-{suffix}",
            labels={"kubernetes.io/service-name": service_name},
        ),
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "conditions": conditions} for ip, conditions in endpoints
        ],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


READY = {"ready": True, "serving": True, "terminating": False}


def ingress(
    namespace: str,
    name: str,
    rules: list[tuple[str, str, str, str]],
    created: str = "2026-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    tls: list[dict[str, Any]] | None = None,
    default: str | None = None,
) -> dict[str, Any]:
    """rules: (host, path, pathType, service)"""
    spec: dict[str, Any] = {
        "ingressClassName": "breakwater",
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": path,
                            "pathType": path_type,
                            "backend": {"service": {"name": svc, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
            for host, path, path_type, svc in rules
        ],
    }
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {
        "kind": "Ingress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": meta(namespace, name, created=created, annotations=annotations or {}),
        "spec": spec,
    }


def route_configmap(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": meta(namespace, name, labels={"breakwater.io/edge": "true"}),
        "data": data,
    }


def tls_secret(
    namespace: str, name: str, cert: str = "www", key: str | None = None
) -> dict[str, Any]:
    crt = (TLS / f"{cert}.crt").read_bytes()
    pem_key = (TLS / f"{key or cert}.key").read_bytes()
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": meta(namespace, name),
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(pem_key).decode(),
        },
    }


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 certificate for ``host`` (CN and SAN) and its key, in PEM (quick
    to make: one per change in tests and benchmarks)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def node(name: str, ip: str, ready: bool = True, unschedulable: bool = False) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
        },
    }


GATEWAY_API = "gateway.networking.k8s.io/v1"


def gateway_class(
    name: str = "breakwater", controller: str = "breakwater.io/edge"
) -> dict[str, Any]:
    return {
        "kind": "GatewayClass",
        "apiVersion": GATEWAY_API,
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"controllerName": controller},
    }


def gateway(
    namespace: str,
    name: str,
    listeners: list[dict[str, Any]] | None = None,
    class_name: str = "breakwater",
) -> dict[str, Any]:
    """A Gateway; by default one HTTP listener on port 80 taking routes from every namespace."""
    default = [
        {
            "name": "http",
            "port": 80,
            "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        }
    ]
    return {
        "kind": "Gateway",
        "apiVersion": GATEWAY_API,
        "metadata": meta(namespace, name),
        "spec": {"gatewayClassName": class_name, "listeners": listeners or default},
    }


def http_route(
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    hostnames: list[str] | None = None,
    parents: list[dict[str, Any]] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parentRefs": parents or [{"name": "gw", "namespace": "infra"}],
        "rules": rules,
    }
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return {
        "kind": "HTTPRoute",
        "apiVersion": GATEWAY_API,
        "metadata": meta(namespace, name, created),
        "spec": spec,
    }


def rule(
    *backends: tuple[str, int] | tuple[str, int, int],
    path: str = "/",
    path_type: str = "PathPrefix",
    **match: Any,
) -> dict[str, Any]:
    """A rule with one match (a path, and ``headers`` / ``queryParams`` / ``method``)
    sending to ``backends``: (service, port) or (service, port, weight)."""
    refs = [
        {"name": b[0], "port": b[1], **({"weight": b[2]} if len(b) > 2 else {})} for b in backends
    ]
    return {"matches": [{"path": {"type": path_type, "value": path}, **match}], "backendRefs": refs}


def reference_grant(
    namespace: str, name: str, from_namespace: str, to_kind: str = "Service"
) -> dict[str, Any]:
    """A ReferenceGrant letting HTTPRoutes of ``from_namespace`` refer to any object of
    ``to_kind`` in ``namespace`` (v1beta1: the CRD's storage version)."""
    return {
        "kind": "ReferenceGrant",
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "from": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "HTTPRoute",
                    "namespace": from_namespace,
                }
            ],
            "to": [{"group": "", "kind": to_kind}],
        },
    }
