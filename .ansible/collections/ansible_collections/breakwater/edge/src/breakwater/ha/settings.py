"""The ``ha`` section of the settings: how ``breakwater edge-health`` judges this node
and what it tells keepalived and FRR (docs/ha.md)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class HASettings:
    interval: float = 0.5  # seconds between checks
    fall: int = 3  # failed checks in a row that make the node unhealthy
    rise: int = 2  # good checks in a row that make it healthy again
    heartbeat_max_age: float = 10.0  # oldest watcher heartbeat still taken as alive
    check_timeout: float = 1.0  # each probe (master socket, monitor) gives up after this
    track_file: str = "/run/breakwater/edge-health.track"  # keepalived's track_file
    state_file: str = "/run/breakwater/edge-health.json"  # the verdict, for edge_info
    bgp_asn: int = 0  # this node's ASN; 0: no BGP
    bgp_prefixes: tuple[str, ...] = ()  # host prefixes announced while healthy
    # A planned drain holds the VIPs this long while HAProxy closes HTTP/1 keep-alive
    # connections (after their next response; idle ones at timeout http-keep-alive, 10 s)
    drain_close_seconds: float = 11.0
    graceful_shutdown_seconds: float = 10.0  # planned drain, BGP: GSHUT this long, then withdraw
    reassert_interval: float = 5.0  # FRR's running config checked against the verdict
    vtysh: str = "/usr/bin/vtysh"


def ha_problems(settings: HASettings) -> list[str]:
    """What is wrong with the ``ha`` section, each naming the key."""
    problems = []
    if settings.interval <= 0:
        problems.append("ha.interval must be more than 0")
    if settings.fall < 1 or settings.rise < 1:
        problems.append("ha.fall and ha.rise must be at least 1")
    if settings.check_timeout <= 0:
        problems.append("ha.check_timeout must be more than 0")
    if settings.bgp_asn > 4294967295:
        problems.append(f"ha.bgp_asn {settings.bgp_asn} is not an ASN (1 to 4294967295)")
    if settings.bgp_asn and not settings.bgp_prefixes:
        problems.append("ha.bgp_asn is set but ha.bgp_prefixes names nothing to announce")
    for prefix in settings.bgp_prefixes:
        try:
            network = ipaddress.ip_network(prefix)
        except ValueError:
            problems.append(f"ha.bgp_prefixes: {prefix!r} is not an IP prefix")
            continue
        if network.prefixlen != network.max_prefixlen:
            problems.append(
                f"ha.bgp_prefixes: {prefix} is not a host prefix (/32 or /128):"
                " an edge node announces its VIPs, never a network"
            )
    return problems
