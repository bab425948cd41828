"""FRR through ``vtysh``: announce or withdraw the VIPs, graceful shutdown, sessions.

vtysh is FRR's own interface to a running bgpd (its configuration commands apply at
once, in the running configuration only); there is no maintained Python client for
it, and frr.conf names no ``network`` for the VIPs: what is announced is what
``breakwater edge-health`` decides, asserted again after FRR restarts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class FRRError(Exception):
    """vtysh failed; the message says which command and what it printed."""


@dataclass(frozen=True)
class Announcement:
    """What bgpd's running configuration announces for this node."""

    prefixes: frozenset[str]
    graceful_shutdown: bool


def _family(prefix: str) -> str:
    return "ipv6" if ipaddress.ip_network(prefix).version == 6 else "ipv4"


def parse_running(text: str, asn: int) -> Announcement:
    """The ``network`` statements and ``bgp graceful-shutdown`` under ``router bgp
    <asn>`` in ``show running-config``."""
    prefixes: set[str] = set()
    gshut = False
    inside = False
    for line in text.splitlines():
        if not line.startswith(" "):
            words = line.split()
            inside = words[:2] == ["router", "bgp"] and words[2:3] == [str(asn)] and len(words) == 3
            continue
        if not inside:
            continue
        words = line.split()
        if words[:1] == ["network"] and len(words) >= 2:
            prefixes.add(str(ipaddress.ip_network(words[1], strict=False)))
        elif words == ["bgp", "graceful-shutdown"]:
            gshut = True
    return Announcement(frozenset(prefixes), gshut)


def parse_summary(text: str) -> list[dict[str, Any]]:
    """The peers of ``show bgp summary json``, both families, one entry a peer."""
    try:
        loaded = json.loads(text or "{}")
    except ValueError as exc:
        raise FRRError(f"show bgp summary json: not JSON: {exc}") from exc
    peers: dict[str, dict[str, Any]] = {}
    for family, table in sorted(loaded.items()) if isinstance(loaded, dict) else ():
        if not isinstance(table, dict):
            continue
        for address, peer in (table.get("peers") or {}).items():
            entry = peers.setdefault(
                address,
                {
                    "peer": address,
                    "remote_as": peer.get("remoteAs"),
                    "state": peer.get("state"),
                    "uptime": peer.get("peerUptime"),
                    "prefixes_sent": {},
                    "prefixes_received": {},
                },
            )
            entry["prefixes_sent"][family] = peer.get("pfxSnt", 0)
            entry["prefixes_received"][family] = peer.get("pfxRcd", 0)
    return list(peers.values())


class FRR:
    """One bgpd, reached with ``vtysh`` (a command line: ``/usr/bin/vtysh -N lb1``)."""

    def __init__(self, vtysh: str, asn: int, prefixes: Sequence[str], timeout: float = 5.0):
        self.command = shlex.split(vtysh)
        self.asn = asn
        self.prefixes = frozenset(str(ipaddress.ip_network(p)) for p in prefixes)
        self.timeout = timeout

    async def run(self, *lines: str) -> str:
        args = [*self.command]
        for line in lines:
            args += ["-c", line]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise FRRError(f"{self.command[0]}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise FRRError(
                f"vtysh {' / '.join(lines)}: no answer in {self.timeout:.0f} s"
            ) from None
        if process.returncode:
            printed = (err or out).decode(errors="replace").strip()
            raise FRRError(f"vtysh {' / '.join(lines)}: {printed or process.returncode}")
        return out.decode(errors="replace")

    async def running(self) -> Announcement:
        return parse_running(await self.run("show running-config"), self.asn)

    def commands(self, now: Announcement, announce: bool, gshut: bool) -> list[str]:
        """The configuration lines that take ``now`` to what is wanted (empty: none)."""
        wanted = self.prefixes if announce else frozenset()
        lines: list[str] = []
        for family in ("ipv4", "ipv6"):
            add = sorted(p for p in wanted - now.prefixes if _family(p) == family)
            # only the VIPs are ever taken back: a network someone else configured stays
            drop = sorted(
                p for p in (now.prefixes & self.prefixes) - wanted if _family(p) == family
            )
            if add or drop:
                lines.append(f"address-family {family} unicast")
                lines += [f"network {p}" for p in add] + [f"no network {p}" for p in drop]
                lines.append("exit-address-family")
        if gshut != now.graceful_shutdown:
            lines.append("bgp graceful-shutdown" if gshut else "no bgp graceful-shutdown")
        return lines

    async def apply(self, announce: bool, gshut: bool) -> list[str]:
        """Make bgpd announce the VIPs (or not), with GRACEFUL_SHUTDOWN (or not);
        returns the lines it had to run (empty when it already did)."""
        lines = self.commands(await self.running(), announce, gshut)
        if lines:
            await self.run("configure terminal", f"router bgp {self.asn}", *lines)
        return lines

    async def summary(self) -> list[dict[str, Any]]:
        return parse_summary(await self.run("show bgp summary json"))
