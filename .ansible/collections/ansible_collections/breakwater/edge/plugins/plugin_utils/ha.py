# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The address arithmetic and the checks behind the keepalived and bgp roles.

Plain Python (the ipaddress module, no netaddr): the filters breakwater.edge.vrrp_instances,
vrrp_problems, bgp_problems and host_prefix call it. Every problem is one sentence that
names the host, the instance or peer, and what to change in the inventory.
"""

from __future__ import annotations

import ipaddress
import re

INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$")
INSTANCE_KEYS = {
    "name", "interface", "virtual_router_id", "priority", "vips", "advert_int", "nopreempt",
    "state", "unicast_peers", "unicast_src_ip", "auth_pass",
}
PEER_KEYS = {
    "address", "remote_as", "password", "keepalive", "hold", "bfd", "description",
    "address_families",
}


def fact_key(interface):
    """The key of an interface's facts (Ansible replaces "-", ":" and "." with "_")."""
    return re.sub(r"[-:.]", "_", str(interface))


def interface_networks(facts, interface, exclude=()):
    """The networks of an interface's addresses (link-local IPv6 left out), from facts."""
    info = (facts or {}).get(fact_key(interface)) or {}
    excluded = {str(address) for address in exclude}
    networks = []
    entries = []
    if info.get("ipv4"):
        entries.append((info["ipv4"].get("address"), info["ipv4"].get("netmask")))
    for extra in info.get("ipv4_secondaries") or []:
        entries.append((extra.get("address"), extra.get("netmask")))
    for address, netmask in entries:
        if address and netmask and address not in excluded:
            networks.append(ipaddress.ip_interface(f"{address}/{netmask}"))
    for entry in info.get("ipv6") or []:
        address = entry.get("address")
        if not address or entry.get("scope") == "link" or address in excluded:
            continue
        interface_address = ipaddress.ip_interface(f"{address}/{entry.get('prefix', 128)}")
        if not interface_address.ip.is_link_local:
            networks.append(interface_address)
    return networks


def own_addresses(facts):
    """Every address on the node's interfaces but the loopback."""
    found = set()
    for name in (facts or {}).get("interfaces") or []:
        if name == "lo":
            continue
        for network in interface_networks(facts, name):
            found.add(network.ip)
    return found


def parse_address(text):
    """An address given as '192.0.2.10' or '192.0.2.10/24': (ip_interface, had a prefix)."""
    value = str(text).strip()
    return ipaddress.ip_interface(value), "/" in value


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _advert_int(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def vrrp_instances(instances, facts, priority=100, advert_int=1, nopreempt=False,
                   garp_master_delay=1, garp_master_refresh=60):
    """The inventory's instances as keepalived instances: one per instance and address
    family (keepalived runs IPv4 and IPv6 VIPs in separate instances), VIPs with the
    prefix length of the interface network holding them, unicast peers of the family
    but the node's own addresses, and the VRRP version the instance needs (3 with IPv6
    or an advertisement interval under a second or fractional)."""
    rendered = []
    own = {str(address) for address in own_addresses(facts)}
    for instance in instances or []:
        vips = [parse_address(vip)[0].ip for vip in instance.get("vips") or []]
        networks = interface_networks(facts, instance.get("interface"), exclude=vips)
        interval = _advert_int(instance.get("advert_int", advert_int))
        for family in (4, 6):
            family_vips = [vip for vip in instance.get("vips") or [] if parse_address(vip)[0].version == family]
            if not family_vips:
                continue
            addresses = []
            for vip in family_vips:
                address, had_prefix = parse_address(vip)
                if not had_prefix:
                    holding = [net for net in networks if address.ip in net.network]
                    if holding:
                        address = ipaddress.ip_interface(f"{address.ip}/{holding[0].network.prefixlen}")
                addresses.append(str(address))
            peers = [
                str(ipaddress.ip_address(peer)) for peer in instance.get("unicast_peers") or []
                if ipaddress.ip_address(peer).version == family and str(ipaddress.ip_address(peer)) not in own
            ]
            source = instance.get("unicast_src_ip")
            if source and ipaddress.ip_address(source).version != family:
                source = None
            if peers and not source:
                candidates = [net.ip for net in networks if net.version == family]
                source = str(candidates[0]) if candidates else None
            version = 3 if family == 6 or interval is None or interval != int(interval) else 2
            if instance.get("auth_pass"):
                version = 2
            rendered.append({
                "name": f"{instance.get('name')}_v{family}",
                "instance": instance.get("name"),
                "family": family,
                "interface": instance.get("interface"),
                "virtual_router_id": instance.get("virtual_router_id"),
                "priority": instance.get("priority", priority),
                "advert_int": int(interval) if interval is not None and interval == int(interval) else interval,
                "version": version,
                "state": str(instance.get("state", "BACKUP")).upper(),
                "nopreempt": bool(instance.get("nopreempt", nopreempt)),
                "vips": addresses,
                "unicast_src_ip": source if peers else None,
                "unicast_peers": peers,
                "auth_pass": instance.get("auth_pass") or None,
                "garp_master_delay": garp_master_delay,
                "garp_master_refresh": garp_master_refresh,
            })
    return rendered


def _vip_set(instance):
    try:
        return tuple(sorted(str(parse_address(vip)[0].ip) for vip in instance.get("vips") or []))
    except ValueError:
        return ()


def vrrp_problems(instances, facts, host, group=None, priority=100, advert_int=1):
    """What is wrong with a host's VRRP instances (and, given the group's instances by
    host, with their agreement across the group)."""
    problems = []
    if not isinstance(instances, list) or not instances:
        return [f"{host}: keepalived_instances is empty: list the VRRP instances, each with"
                " name, interface, virtual_router_id and vips"]
    interfaces = set((facts or {}).get("interfaces") or [])
    seen_names = set()
    seen_vrids = {}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            problems.append(f"{host}: keepalived_instances[{index}] is not a mapping")
            continue
        name = instance.get("name")
        where = f"{host}: VRRP instance {name or index}"
        unknown = sorted(set(instance) - INSTANCE_KEYS)
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(INSTANCE_KEYS))})")
        if not isinstance(name, str) or not INSTANCE_NAME.match(name):
            problems.append(f"{where}: give it a name of letters, digits, '_', '.' or '-' (up to 31 characters)")
        elif name in seen_names:
            problems.append(f"{where}: two instances are named {name}: rename one")
        seen_names.add(name)
        interface = instance.get("interface")
        if not interface:
            problems.append(f"{where}: set interface (the one facing the VIPs' network)")
        elif interfaces and interface not in interfaces:
            problems.append(f"{where}: interface {interface} is not on the node (it has {', '.join(sorted(interfaces))})")
        vrid = instance.get("virtual_router_id")
        if not isinstance(vrid, int) or isinstance(vrid, bool) or not 1 <= vrid <= 255:
            problems.append(f"{where}: virtual_router_id {vrid!r} must be a whole number from 1 to 255")
        elif interface:
            other = seen_vrids.get((interface, vrid))
            if other is not None:
                problems.append(f"{where}: virtual_router_id {vrid} is used by instance {other} on {interface} too:"
                                " give each instance on an interface its own virtual_router_id")
            seen_vrids[(interface, vrid)] = name
        prio = instance.get("priority", priority)
        if not isinstance(prio, int) or isinstance(prio, bool) or not 1 <= prio <= 254:
            problems.append(f"{where}: priority {prio!r} must be from 1 to 254 (255 is the address owner's)")
        interval = _advert_int(instance.get("advert_int", advert_int))
        if interval is None or not 0.01 <= interval <= 40.95 or round(interval * 100) != interval * 100:
            problems.append(f"{where}: advert_int {instance.get('advert_int', advert_int)!r} must be seconds from"
                            " 0.01 to 40.95 in hundredths (e.g. 1 or 0.5)")
        state = str(instance.get("state", "BACKUP")).upper()
        if state not in ("BACKUP", "MASTER"):
            problems.append(f"{where}: state {state} must be BACKUP or MASTER")
        nopreempt = instance.get("nopreempt", False)
        if nopreempt and state != "BACKUP":
            problems.append(f"{where}: nopreempt needs state BACKUP: remove state MASTER or nopreempt")
        vips = instance.get("vips")
        if not isinstance(vips, list) or not vips:
            problems.append(f"{where}: list its VIPs under vips (IPv4 and/or IPv6 addresses)")
            vips = []
        parsed = []
        for vip in vips:
            try:
                parsed.append(parse_address(vip)[0])
            except ValueError:
                problems.append(f"{where}: VIP {vip!r} is not an IP address")
        networks = interface_networks(facts, interface, exclude=[address.ip for address in parsed]) if interface else []
        for address in parsed:
            if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified or address.ip.is_link_local:
                problems.append(f"{where}: VIP {address.ip} is a loopback, multicast, link-local or unspecified"
                                " address: use an address of the interface's network")
                continue
            if interface and interfaces and not any(address.ip in net.network for net in networks):
                have = ", ".join(dict.fromkeys(str(net.network) for net in networks)) or "no address"
                problems.append(f"{where}: VIP {address.ip} is outside the networks of {interface} ({have}):"
                                " pick a VIP inside one of them, or the interface that has its network")
            primary = ((facts or {}).get(fact_key(interface)) or {}).get("ipv4") or {}
            if str(address.ip) == primary.get("address"):
                problems.append(f"{where}: VIP {address.ip} is the node's own address on {interface}:"
                                " a VIP must be an address no node has")
        auth = instance.get("auth_pass")
        if auth:
            if not isinstance(auth, str) or len(auth) > 8:
                problems.append(f"{where}: auth_pass must be text of up to 8 characters (VRRPv2 PASS)")
            if any(address.version == 6 for address in parsed):
                problems.append(f"{where}: auth_pass is VRRPv2 only, which has no IPv6: move the IPv6 VIPs to"
                                " an instance without auth_pass, or drop auth_pass")
            if interval is not None and interval != int(interval):
                problems.append(f"{where}: auth_pass is VRRPv2 only, whose advert_int is whole seconds: drop"
                                " auth_pass or use a whole advert_int")
        peers = instance.get("unicast_peers") or []
        if not isinstance(peers, list):
            problems.append(f"{where}: unicast_peers must be a list of the other nodes' addresses")
            peers = []
        families = set()
        for peer in peers:
            try:
                families.add(ipaddress.ip_address(peer).version)
            except ValueError:
                problems.append(f"{where}: unicast peer {peer!r} is not an IP address")
        source = instance.get("unicast_src_ip")
        if source:
            try:
                ipaddress.ip_address(source)
            except ValueError:
                problems.append(f"{where}: unicast_src_ip {source!r} is not an IP address")
        if peers:
            for family in sorted({address.version for address in parsed}):
                if family not in families:
                    problems.append(f"{where}: it has IPv{family} VIPs and unicast peers, but no IPv{family} peer:"
                                    f" add the other nodes' IPv{family} addresses to unicast_peers")
                elif not any(net.version == family for net in networks) and not source:
                    problems.append(f"{where}: no IPv{family} address on {interface} to send unicast VRRP from:"
                                    " set unicast_src_ip")
    if group:
        problems.extend(vrrp_group_problems(group))
    return problems


def vrrp_group_problems(group):
    """Across the group: an instance has one VRID and one VIP set on every host, and two
    different VIP sets never share a VRID."""
    problems = []
    by_name = {}
    by_vrid = {}
    for node, instances in sorted((group or {}).items()):
        for instance in instances or []:
            if not isinstance(instance, dict):
                continue
            name, vrid, vips = instance.get("name"), instance.get("virtual_router_id"), _vip_set(instance)
            by_name.setdefault(name, []).append((node, vrid, vips))
            by_vrid.setdefault(vrid, {}).setdefault(vips, set()).add(node)
    for name, uses in sorted(by_name.items(), key=lambda item: str(item[0])):
        vrids = {use[1] for use in uses}
        if len(vrids) > 1:
            detail = ", ".join(f"{node} {vrid}" for node, vrid, vips in uses)
            problems.append(f"VRRP instance {name} has different virtual_router_ids across the group ({detail}):"
                            " give it the same virtual_router_id on every node")
        vip_sets = {use[2] for use in uses}
        if len(vip_sets) > 1:
            detail = "; ".join(f"{node}: {', '.join(vips)}" for node, vrid, vips in uses)
            problems.append(f"VRRP instance {name} carries different VIPs across the group ({detail}):"
                            " give it the same vips on every node")
    for vrid, sets in sorted(by_vrid.items(), key=lambda item: str(item[0])):
        if len(sets) > 1:
            detail = "; ".join(f"{', '.join(vips)} on {', '.join(sorted(nodes))}" for vips, nodes in sets.items())
            problems.append(f"virtual_router_id {vrid} carries different VIP sets ({detail}):"
                            " give each VIP set its own virtual_router_id")
    return problems


def host_prefix(address):
    """'198.19.0.10' -> '198.19.0.10/32', '2001:db8::10' -> '2001:db8::10/128'."""
    network = ipaddress.ip_network(str(address).strip(), strict=True)
    if network.prefixlen != network.max_prefixlen:
        raise ValueError(f"{address} is not a host address (/32 or /128)")
    return str(network)


def bgp_problems(asn, peers, vips, facts, host, accept_prefixes=None, router_id=None):
    """What is wrong with a host's BGP settings."""
    problems = []
    where = f"{host}: "
    if not is_number(asn) or isinstance(asn, float) or not 1 <= asn <= 4294967295:
        problems.append(f"{where}bgp_asn {asn!r} must be this node's AS number, 1 to 4294967295"
                        " (a private one is 64512-65534 or 4200000000-4294967294)")
    if not isinstance(peers, list) or not peers:
        problems.append(f"{where}bgp_peers is empty: list the upstream routers, each with address and remote_as")
        peers = []
    seen = set()
    for index, peer in enumerate(peers):
        if not isinstance(peer, dict):
            problems.append(f"{where}bgp_peers[{index}] is not a mapping with address and remote_as")
            continue
        label = f"{where}BGP peer {peer.get('address', index)}"
        unknown = sorted(set(peer) - PEER_KEYS)
        if unknown:
            problems.append(f"{label}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(PEER_KEYS))})")
        try:
            address = ipaddress.ip_address(str(peer.get("address")))
        except ValueError:
            problems.append(f"{label}: set address to the router's IP address")
            address = None
        if address is not None:
            if address in seen:
                problems.append(f"{label}: listed twice in bgp_peers: keep one")
            seen.add(address)
        remote = peer.get("remote_as")
        if remote in ("internal", "external"):
            pass
        elif not is_number(remote) or isinstance(remote, float) or not 1 <= remote <= 4294967295:
            problems.append(f"{label}: set remote_as to the router's AS number (1 to 4294967295,"
                            " or internal / external)")
        password = peer.get("password")
        if password is not None and (not isinstance(password, str) or not password or re.search(r"\s", password)
                                     or len(password) > 80):
            problems.append(f"{label}: password must be text of 1 to 80 characters without spaces")
        keepalive, hold = peer.get("keepalive"), peer.get("hold")
        for key, value in (("keepalive", keepalive), ("hold", hold)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535):
                problems.append(f"{label}: {key} must be seconds from 0 to 65535")
        families = peer.get("address_families")
        if families is not None and (not isinstance(families, list) or not set(families) <= {"ipv4", "ipv6"}
                                     or not families):
            problems.append(f"{label}: address_families must list ipv4 and/or ipv6")
    if not isinstance(vips, list) or not vips:
        problems.append(f"{where}bgp_vips is empty: list the VIPs this node announces (/32 or /128)")
        vips = []
    own = own_addresses(facts)
    for vip in vips:
        try:
            prefix = ipaddress.ip_network(str(vip).strip(), strict=True)
        except ValueError:
            problems.append(f"{where}bgp VIP {vip!r} is not an IP address or host prefix")
            continue
        if prefix.prefixlen != prefix.max_prefixlen:
            problems.append(f"{where}bgp VIP {vip} is a network: announce host prefixes only"
                            f" ({prefix.network_address}/{prefix.max_prefixlen})")
            continue
        address = prefix.network_address
        if address.is_loopback or address.is_multicast or address.is_unspecified or address.is_link_local:
            problems.append(f"{where}bgp VIP {vip} is a loopback, multicast, link-local or unspecified address")
        if address in own:
            problems.append(f"{where}bgp VIP {vip} is the node's own address on one of its interfaces:"
                            " a VIP must be an address no node has")
    for entry in accept_prefixes or []:
        text = str(entry).split()
        try:
            ipaddress.ip_network(text[0], strict=True)
        except (ValueError, IndexError):
            problems.append(f"{where}bgp_accept_prefixes entry {entry!r} must start with a prefix such as"
                            " 0.0.0.0/0 (optionally followed by 'le 24' or 'ge 8')")
    if router_id is not None and router_id != "":
        try:
            if ipaddress.ip_address(str(router_id)).version != 4:
                raise ValueError
        except ValueError:
            problems.append(f"{where}bgp_router_id {router_id!r} must be an IPv4 address (a 32-bit identifier)")
    return problems
