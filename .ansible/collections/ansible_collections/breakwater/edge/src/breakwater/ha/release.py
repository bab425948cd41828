"""A drain's first steps on an LB node: wait until the node holds none of the edge's VIPs
(VRRP) and the health judge says its BGP announcement is withdrawn, then until the
public frontend has no sessions left. The edge_node module runs these after it took the
node out of rotation (its monitor answering 503, which the health judge turns into a
VIP release and a GRACEFUL_SHUTDOWN then withdrawal)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from breakwater.ha.check import read_state

IP_COMMAND = ("ip", "-j", "address", "show")


def node_addresses(output: str) -> set[str]:
    """Every address of ``ip -j address show``'s output, normalised."""
    found = set()
    for link in json.loads(output or "[]"):
        for info in link.get("addr_info", []):
            local = info.get("local")
            if local:
                found.add(str(ipaddress.ip_address(local)))
    return found


def held_vips(vips: Sequence[str], command: Sequence[str] = IP_COMMAND) -> list[str]:
    """The VIPs (addresses, with or without a prefix length) this node holds now."""
    output = subprocess.run(list(command), capture_output=True, text=True, check=True).stdout
    addresses = node_addresses(output)
    wanted = [str(ipaddress.ip_interface(vip).ip) for vip in vips]
    return [vip for vip in wanted if vip in addresses]


def read_health(health_file: str | None) -> dict[str, Any] | None:
    """The health judge's state file, or None when there is none (yet)."""
    return read_state(health_file)


def bgp_announced(health: dict[str, Any] | None) -> bool | None:
    """Whether the judge says the VIPs are announced; None when it runs no BGP."""
    bgp = (health or {}).get("bgp")
    if not isinstance(bgp, dict):
        return None
    return bool(bgp.get("announced"))


async def wait_released(
    vips: Sequence[str],
    health_file: str | None,
    bgp: bool | None,
    timeout: float,
    interval: float = 0.2,
    command: Sequence[str] = IP_COMMAND,
) -> dict[str, Any]:
    """Wait until the node holds none of ``vips`` and, with ``bgp``, the health state
    file says the announcement is withdrawn (``bgp=None``: whenever the state file has a
    ``bgp`` section). Raises TimeoutError naming what is left."""
    started = time.monotonic()
    while True:
        held = held_vips(vips, command) if vips else []
        health = read_health(health_file) if bgp is not False else None
        announced = bgp_announced(health)
        if bgp is None:
            bgp_left = announced is True
        else:
            bgp_left = bgp and (health is None or announced is not False)
        if not held and not bgp_left:
            return {
                "held": [],
                "announced": announced,
                "waited": round(time.monotonic() - started, 3),
                "health": health,
            }
        if time.monotonic() - started > timeout:
            left = []
            if held:
                left.append(f"still holds {', '.join(held)}")
            if bgp_left:
                left.append(
                    f"no health state in {health_file}"
                    if health is None
                    else "the health judge still announces the VIPs over BGP"
                )
            raise TimeoutError(f"after {timeout:.0f}s the node {' and '.join(left)}")
        await asyncio.sleep(interval)
