"""Servers of a Service port: from EndpointSlices, Endpoints, or Nodes in NodePort mode.

A malformed slice, Endpoints object or Node is a problem of its own, named; the
Service's other sources of servers keep serving."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakwater import validate
from breakwater.catalog.model import (
    CatalogSettings,
    Problems,
    Rejected,
    Server,
    ServerState,
    describe,
)
from breakwater.cluster.index import (
    ClusterIndex,
    Object,
)
from breakwater.validate import reason_of


def _service_port(service: Object, port: int | str) -> Mapping[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    if not isinstance(ports, list):
        raise Rejected("spec.ports of the service is not a list")
    for candidate in ports:
        if not isinstance(candidate, Mapping):
            raise Rejected("spec.ports of the service holds a non-object")
        if candidate.get("name", "") == port or candidate.get("port") == port:
            return candidate
    raise Rejected(f"service has no port {port!r}")


def _port_label(service_port: Mapping[str, Any]) -> str:
    """The port's name (an RFC 1123 label) or number: part of the backend's name."""
    name = service_port.get("name")
    if name:
        return validate.dns_label(name, "service port name")
    return str(validate.port_number(service_port.get("port"), "service port"))


def _endpoint_state(endpoint: Mapping[str, Any]) -> ServerState | None:
    conditions = endpoint.get("conditions") or {}
    ready = conditions.get("ready", True)  # nil means ready (API docs)
    serving = conditions.get("serving", ready)
    terminating = conditions.get("terminating", False)
    if ready and not terminating:
        return "ready"
    if serving and terminating:
        return "drain"
    return None


def _slice_servers(
    endpoint_slice: Object, port_name: str, allow_special: bool
) -> list[tuple[str, int, ServerState]]:
    """The servers one EndpointSlice lists for a port; raises for a malformed slice."""
    address_type = endpoint_slice.get("addressType")
    if address_type == "FQDN":
        return []  # names, not addresses: the edge has no resolver for them
    if address_type not in ("IPv4", "IPv6"):
        raise Rejected(f"addressType {address_type!r} is not IPv4, IPv6 or FQDN")
    port = None
    for candidate in endpoint_slice.get("ports") or []:
        name = candidate.get("name") or ""
        if name:
            validate.dns_label(name, "port name")
        if port is None and name == port_name and candidate.get("protocol", "TCP") == "TCP":
            port = candidate.get("port")
    number = validate.port_number(port, "endpoint port") if port is not None else None
    servers = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        state = _endpoint_state(endpoint)
        for address in endpoint.get("addresses") or []:
            ip = validate.ip_address(address, address_type, allow_special)
            if state is not None and number is not None:
                servers.append((ip, number, state))
    return servers


def _servers_from_slices(
    slices: Mapping[str, Object],
    namespace: str,
    port_name: str,
    allow_special: bool,
    problems: Problems,
) -> list[Server]:
    servers: dict[tuple[str, int], Server] = {}
    for name in sorted(slices):
        try:
            found = _slice_servers(slices[name], port_name, allow_special)
        except Exception as exc:
            problems[describe("EndpointSlice", (namespace, name))] = reason_of(exc)
            continue
        for address, port, state in found:
            current = servers.get((address, port))
            if current is None or (current.state == "drain" and state == "ready"):
                servers[(address, port)] = Server(address, port, state)
    return list(servers.values())


def _servers_from_endpoints(
    endpoints: Object, namespace: str, port_name: str, allow_special: bool, problems: Problems
) -> list[Server]:
    servers: dict[tuple[str, int], Server] = {}
    try:
        for subset in endpoints.get("subsets") or []:
            port = next(
                (
                    p.get("port")
                    for p in subset.get("ports") or []
                    if p.get("name", "") == port_name
                ),
                None,
            )
            for address in subset.get("addresses") or []:
                ip = validate.ip_address(address.get("ip"), None, allow_special)
                if port is not None:
                    number = validate.port_number(port, "endpoint port")
                    servers[(ip, number)] = Server(ip, number, "ready")
    except Exception as exc:
        name = str((endpoints.get("metadata") or {}).get("name"))
        problems[describe("Endpoints", (namespace, name))] = reason_of(exc)
        return []
    return list(servers.values())


def node_addresses(
    index: ClusterIndex, allow_special: bool, problems: Problems
) -> list[tuple[str, ServerState]]:
    """(InternalIP, state) of every ready Node; a malformed Node is a problem of its own."""
    nodes: list[tuple[str, ServerState]] = []
    for ident, node in index.all("Node"):
        try:
            status = node.get("status") or {}
            conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if conditions.get("Ready") != "True":
                continue
            address = next(
                (
                    a.get("address")
                    for a in status.get("addresses") or []
                    if a.get("type") == "InternalIP"
                ),
                None,
            )
            if address is None:
                continue
            ip = validate.ip_address(address, None, allow_special)
            deleting = (node.get("metadata") or {}).get("deletionTimestamp")
            unschedulable = (node.get("spec") or {}).get("unschedulable", False)
        except Exception as exc:
            problems[describe("Node", ident)] = reason_of(exc)
            continue
        state: ServerState = "drain" if deleting or unschedulable else "ready"
        nodes.append((ip, state))
    return nodes


def backend_servers(
    index: ClusterIndex,
    namespace: str,
    service_name: str,
    port: int | str,
    settings: CatalogSettings,
    problems: Problems,
    nodes: list[tuple[str, ServerState]] | None = None,
) -> tuple[str, tuple[Server, ...]]:
    """(port label, servers) of one Service port; raises :class:`Rejected`.

    Malformed EndpointSlices, Endpoints (and, in NodePort mode, Nodes given in
    ``nodes``) are left out and named in ``problems``; the others keep serving.
    """
    service = index.get("Service", namespace, service_name)
    if service is None:
        raise Rejected(f"service {namespace}/{service_name} does not exist")
    if (service.get("spec") or {}).get("type") == "ExternalName":
        raise Rejected(f"service {namespace}/{service_name} is of type ExternalName")
    service_port = _service_port(service, port)
    port_label = _port_label(service_port)
    allow_special = settings.allow_special_addresses
    servers: list[Server]
    if settings.mode == "nodeport":
        node_port = service_port.get("nodePort")
        if not node_port:
            raise Rejected(
                f"service {namespace}/{service_name} port {port} has no nodePort "
                "(NodePort mode needs a Service of type NodePort or LoadBalancer)"
            )
        number = validate.port_number(node_port, "nodePort")
        if nodes is None:
            nodes = node_addresses(index, allow_special, problems)
        servers = [Server(address, number, state) for address, state in nodes]
    else:
        slices = index.slices_by_service.get((namespace, service_name))
        port_name = str(service_port.get("name", ""))
        if slices:
            servers = _servers_from_slices(slices, namespace, port_name, allow_special, problems)
        else:
            endpoints = index.get("Endpoints", namespace, service_name)
            servers = (
                _servers_from_endpoints(endpoints, namespace, port_name, allow_special, problems)
                if endpoints
                else []
            )
    if len(servers) > settings.max_servers_per_backend:
        raise Rejected(
            f"service {namespace}/{service_name} has {len(servers)} endpoints, more than "
            f"catalog.max_servers_per_backend ({settings.max_servers_per_backend})"
        )
    servers.sort(key=lambda s: (s.address, s.port))
    return port_label, tuple(servers)


def backend_name(namespace: str, service: str, port_label: str) -> str:
    # '_' cannot occur in Kubernetes names, so the name is unambiguous.
    return f"be_{namespace}_{service}_{port_label}"
