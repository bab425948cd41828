"""The route maps: host + path keys, and the value HAProxy splits into backend, flags
and cache policy; which lookups the routes need."""

from __future__ import annotations

from dataclasses import dataclass

from breakwater.catalog import Canary, Route
from breakwater.catalog.gateway import STATUS_500
from breakwater.catalog.model import Split
from breakwater.render.features import canaries


def map_key(route: Route) -> str:
    return f"{route.host}{route.path}"


def map_value(route: Route) -> str:
    """``backend;flags;ttl;grace;cookies[;canary]`` -- HAProxy splits it with ``field()``.

    Flags: ``r`` redirect to HTTPS, ``c`` cacheable.  The cache policy fields are
    sent to Varnish as request headers; every part is validated (names, integers).
    ``canary``: the key of the route's chain, split or canary, which the frontend's
    rules test (absent without one).
    """
    flags = ("r" if route.https_redirect else "") + ("c" if route.cache else "")
    cache = route.cache
    policy = (
        [
            str(cache.ttl if cache.ttl is not None else "-"),
            str(cache.grace if cache.grace is not None else "-"),
            "strip" if cache.strip_cookies else "keep",
        ]
        if cache
        else ["-", "-", "-"]
    )
    key = route.key()
    return ";".join([route.backend, flags or "-", *policy, *([key] if key else [])])


_HOST = "req.hdr(host),field(1,:),lower"  # the Host header without port, lower case


@dataclass(frozen=True)
class GatewayShard:
    """One frontend ``bw_gateway_<name>``: the requests whose route's key (a chain's or
    a split's) has ``name`` as its second character come to it, and meet only the rules
    they may need -- the chains of those keys, and the splits and canaries those routes
    and their alternatives use -- so that a conditioned request runs a sixteenth of the
    chains' rules, not all of them."""

    name: str  # a hexadecimal digit
    chains: tuple[Route, ...]
    splits: tuple[Split, ...]
    canaries: tuple[Canary, ...]


def gateway_shards(routes: list[Route]) -> tuple[GatewayShard, ...]:
    """The shards the routes' chain and split keys name, each with its rules."""
    found: dict[str, tuple[dict[str, Route], dict[str, Split], dict[str, Canary]]] = {}
    for route in routes:
        key = route.key()
        if key is None or key[0] not in "cw":
            continue  # no key, or a canary's: decided in bw_public
        chains, used_splits, used_canaries = found.setdefault(key[1], ({}, {}, {}))
        if route.chain:
            chains[key] = route
        # What a request here may become: the route itself (what is left after its
        # chain), or one of its chain's alternatives.
        for candidate in (route, *(alternative for _c, alternative in route.chain)):
            if candidate.split is not None:
                used_splits[candidate.split.key()] = candidate.split
            if candidate.canary is not None:
                used_canaries[candidate.canary.key()] = candidate.canary
    return tuple(
        GatewayShard(
            name,
            tuple(chains[key] for key in sorted(chains)),
            tuple(used_splits[key] for key in sorted(used_splits)),
            tuple(used_canaries[key] for key in sorted(used_canaries)),
        )
        for name, (chains, used_splits, used_canaries) in sorted(found.items())
    )


@dataclass(frozen=True)
class RouteLookup:
    """Which map lookups the routes need, in order; the template leaves out the rest."""

    sources: list[str]  # HAProxy samples giving the host part of the map key
    exact: bool  # the exact map is looked up
    prefix: bool  # the prefix map is looked up
    redirect: bool  # some route redirects plain HTTP to HTTPS
    exact_hosts: bool  # some route names a host (not a wildcard, not any host)
    canaries: tuple[Canary, ...] = ()  # the canaries routes use, for the frontend's rules
    # Routes with Gateway API conditions or weights: decided in the bw_gateway frontends.
    shards: tuple[GatewayShard, ...] = ()
    status_500: bool = False  # some route answers 500 (the section bw_status_500)

    @property
    def gateway(self) -> bool:
        """Some route is decided in a bw_gateway frontend (a chain or a split)."""
        return bool(self.shards)


def route_lookup(routes: list[Route], exact_map: str, prefix_map: str) -> RouteLookup:
    hosts = {route.host for route in routes}
    exact_hosts = any(not host.startswith("*") for host in hosts)
    sources = [_HOST] if exact_hosts else []
    if any(host.startswith("*.") for host in hosts):
        sources.append(_HOST + ",regsub(^[^.]*,*)")
    # Gateway API wildcards (**.domain: any name under domain): the request's host cut
    # to the domain's number of labels, longest domains first.
    depths = {host.count(".") for host in hosts if host.startswith("**.")}
    for depth in sorted(depths, reverse=True):
        labels = "[.]".join(["[^.]+"] * depth)
        sources.append(f'\'{_HOST},regsub("^.+[.]({labels})$","**.\\1")\'')
    if "*" in hosts:
        sources.append("str(*)")
    redirect = any(route.https_redirect for route in routes)
    # Both maps are looked up whenever there are routes, even while one is empty: a
    # route that fills it then changes the map alone, at runtime, not the file.
    routed = bool(routes)
    return RouteLookup(
        sources,
        routed,
        routed,
        redirect,
        exact_hosts,
        canaries(routes),
        gateway_shards(routes),
        any(STATUS_500 in route.backends for route in routes),
    )


# The key and value of each route of the last call, by identity (the route is kept, so
# its id is not reused): routes are shared between catalogs, and a route change renders
# the maps again with a handful of new ones.  Replaced whole at each call.
_entries: dict[int, tuple[Route, str, str]] = {}


def route_maps(routes: list[Route]) -> tuple[str, str]:
    """(exact map, prefix map) text.

    Exact routes and the exact form of each prefix ("/foo" serves "/foo") go to the
    exact map; each prefix "/foo" also goes to the prefix map as "/foo/", so that
    "/foobar" is not served.  HAProxy's map_beg returns the longest prefix.
    """
    global _entries
    known, entries = _entries, {}
    exact: dict[str, str] = {}
    prefix: dict[str, str] = {}
    for route in routes:
        entry = known.get(id(route))
        if entry is None or entry[0] is not route:
            entry = (route, map_key(route), map_value(route))
        entries[id(route)] = entry
        if route.match == "exact":
            exact[entry[1]] = entry[2]
    for route, key, value in entries.values():
        if route.match != "prefix":
            continue
        if route.path == "/":
            prefix.setdefault(key, value)
        else:
            exact.setdefault(key, value)
            prefix.setdefault(f"{key}/", value)
    _entries = entries
    return (
        "".join(f"{key} {value}\n" for key, value in sorted(exact.items())),
        "".join(f"{key} {value}\n" for key, value in sorted(prefix.items())),
    )
