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

# Kubernetes' Service and endpoint port protocols (supportedPortProtocols); HAProxy
# proxies TCP only.
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
# Kubernetes' Service types (supportedServiceType); absent is ClusterIP (its default).
SERVICE_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"})


def _protocol(entry: Mapping[str, Any], what: str) -> str:
    """A port's protocol: TCP, UDP or SCTP (absent or empty: TCP, as Kubernetes defaults
    it before storing)."""
    protocol = entry.get("protocol")
    if protocol is None or protocol == "":
        return "TCP"
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise Rejected(f"{what} protocol {validate.show(protocol)} is not TCP, UDP or SCTP")
    return protocol


def _service_port(service: Object, port: int | str) -> Mapping[str, Any]:
    """The TCP port of the Service that ``port`` (a name or a number) names, checked as
    Kubernetes checks a Service port (``validateServicePort``)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not isinstance(ports, list):
        raise Rejected("spec.ports of the service is not a list")
    other = None
    for candidate in ports:
        if not isinstance(candidate, Mapping):
            raise Rejected("spec.ports of the service holds a non-object")
        if candidate.get("name", "") == port or candidate.get("port") == port:
            protocol = _protocol(candidate, "service port")
            if protocol == "TCP":
                validate.port_number(candidate.get("port"), "service port")
                return candidate
            other = other or protocol
    if other is not None:
        raise Rejected(f"service port {port!r} is {other}; HAProxy proxies TCP only")
    raise Rejected(f"service has no port {port!r}")


def _port_label(service_port: Mapping[str, Any]) -> str:
    """The port's name (an RFC 1123 label) or number: part of the backend's name."""
    name = service_port.get("name")
    if name:
        return validate.dns_label(name, "service port name")
    return str(validate.port_number(service_port.get("port"), "service port"))


def _condition(conditions: Mapping[str, Any], name: str, unset: bool) -> bool:
    """An endpoint condition: a boolean, or absent (null too) for ``unset``."""
    value = conditions.get(name)
    if value is None:
        return unset
    if not isinstance(value, bool):
        raise Rejected(f"endpoint condition {name} {validate.show(value)} is not a boolean")
    return value


def _endpoint_state(endpoint: Mapping[str, Any]) -> ServerState | None:
    conditions = endpoint.get("conditions") or {}
    if not isinstance(conditions, Mapping):
        raise Rejected("endpoint conditions is not an object")
    # As the API documents them: nil ready is ready, nil serving defers to ready, nil
    # terminating is not terminating.
    ready = _condition(conditions, "ready", True)
    serving = _condition(conditions, "serving", ready)
    terminating = _condition(conditions, "terminating", False)
    if ready and not terminating:
        return "ready"
    if serving and terminating:
        return "drain"
    return None


def _slice_port(endpoint_slice: Object, port_name: str) -> int | None:
    """The number of the slice's TCP port named ``port_name`` (None: the slice has none).

    Every port is checked as Kubernetes checks it (``validatePorts``: a name is an RFC
    1123 label, unique; the protocol TCP, UDP or SCTP).  Kubernetes leaves the number
    unchecked; the one HAProxy is given must be 1-65535, and present.
    """
    ports = endpoint_slice.get("ports") or []
    if not isinstance(ports, list):
        raise Rejected("ports is not a list")
    names: set[str] = set()
    found: Mapping[str, Any] | None = None
    for candidate in ports:
        if not isinstance(candidate, Mapping):
            raise Rejected("ports holds a non-object")
        name = candidate.get("name") or ""
        if name:
            validate.dns_label(name, "port name")
        if name in names:
            raise Rejected(f"port name {name!r} is listed twice")
        names.add(name)
        protocol = _protocol(candidate, f"port {name!r}")
        if name == port_name and protocol == "TCP":
            found = candidate
    if found is None:
        return None
    if found.get("port") is None:
        raise Rejected(f"endpoint port {port_name!r} has no port number")
    return validate.port_number(found.get("port"), "endpoint port")


def _slice_servers(
    endpoint_slice: Object, port_name: str, allow_special: bool
) -> list[tuple[str, int, ServerState]]:
    """The servers one EndpointSlice lists for a port; raises for a malformed slice."""
    address_type = endpoint_slice.get("addressType")
    if address_type == "FQDN":
        return []  # names, not addresses: the edge has no resolver for them
    if address_type not in ("IPv4", "IPv6"):
        raise Rejected(f"addressType {address_type!r} is not IPv4, IPv6 or FQDN")
    number = _slice_port(endpoint_slice, port_name)
    endpoints = endpoint_slice.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise Rejected("endpoints is not a list")
    servers = []
    for endpoint in endpoints:
        state = _endpoint_state(endpoint)
        addresses = endpoint.get("addresses") or []
        if not isinstance(addresses, list):
            raise Rejected("endpoint addresses is not a list")
        for address in addresses:
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


def _subset_port(subset: Mapping[str, Any], port_name: str) -> int | None:
    """The number of an Endpoints subset's TCP port named ``port_name``, or None.

    Every port is checked as Kubernetes checks it (``validateEndpointPort``: a name is
    an RFC 1123 label, the number 1-65535, the protocol TCP, UDP or SCTP).
    """
    number = None
    for candidate in subset.get("ports") or []:
        name = candidate.get("name") or ""
        if name:
            validate.dns_label(name, "port name")
        port = validate.port_number(candidate.get("port"), "endpoint port")
        protocol = _protocol(candidate, f"port {name!r}")
        if number is None and name == port_name and protocol == "TCP":
            number = port
    return number


def _servers_from_endpoints(
    endpoints: Object, namespace: str, port_name: str, allow_special: bool, problems: Problems
) -> list[Server]:
    servers: dict[tuple[str, int], Server] = {}
    try:
        for subset in endpoints.get("subsets") or []:
            number = _subset_port(subset, port_name)
            for address in subset.get("addresses") or []:
                ip = validate.ip_address(address.get("ip"), None, allow_special)
                if number is not None:
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
            unschedulable = (node.get("spec") or {}).get("unschedulable")
            if unschedulable is not None and not isinstance(unschedulable, bool):
                raise Rejected(
                    f"spec.unschedulable {validate.show(unschedulable)} is not a boolean"
                )
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
    service_type = (service.get("spec") or {}).get("type")
    if service_type is not None and service_type not in SERVICE_TYPES:
        shown = validate.show(service_type)
        raise Rejected(f"service {namespace}/{service_name} is of an unknown type {shown}")
    if service_type == "ExternalName":
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
