"""The Gateway API's precedence between matches, and how its candidates and every other
route become the catalog's routes (docs/gateway-api.md).

A *candidate* is one match of an HTTPRoute rule on one host: a path (exact, or a
prefix -- a regular expression's literal prefix), the conditions the rest of the match
asks, and where a request that meets them goes.  :func:`merge` makes one route per
host and path, as the route maps need, carrying in the spec's precedence the
conditioned candidates a request there is tried against (:attr:`Route.chain`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from breakwater.catalog.model import Conditions, MatchType, Route

NO_ROUTE = "bw_no_route"  # the edge's own 404


@dataclass(frozen=True)
class Candidate:
    """One match of an HTTPRoute rule on one host."""

    host: str  # a name, "**.domain" (a Gateway API wildcard: any name under it), or "*"
    path: str
    match: MatchType
    conditions: Conditions
    value: Route  # what a request that meets the conditions is sent to
    order: tuple[Any, ...]  # creationTimestamp, namespace, name, rule, match

    def rank(self) -> tuple[Any, ...]:
        """The spec's precedence: exact path, longest prefix (a regular expression by its
        literal prefix, before a plain prefix as long), method, most header matches,
        most query matches; then the oldest route, and the rule's and match's order."""
        c = self.conditions
        return (
            self.match != "exact",
            -len(self.path),
            c.path_regex is None,
            c.method is None,
            -len(c.headers),
            -len(c.query),
            c.scheme is None,
            self.order,
        )


def _covering_hosts(host: str, hosts: set[str]) -> list[str]:
    """The hosts whose routes a request to ``host`` may fall back to, most specific
    first (as the frontend looks them up): itself, the one-label wildcard, Gateway API
    wildcards from the longest domain, any host."""
    found = [host]
    labels = host.lstrip("*").lstrip(".").split(".")
    if not host.startswith("*"):
        found.append("*." + ".".join(labels[1:]))
        start = 1
    else:
        start = 1 if host.startswith("**.") else 0
    for cut in range(start, len(labels)):
        found.append("**." + ".".join(labels[cut:]))
    found.append("*")
    return [h for h in dict.fromkeys(found) if h in hosts]


def _covers(candidate: Candidate, path: str, match: MatchType) -> bool:
    if candidate.match == "exact":
        return match == "exact" and candidate.path == path
    prefix = candidate.path
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def merge(
    routes: Iterable[Route], candidates: Iterable[Candidate]
) -> tuple[list[Route], list[tuple[str, str]]]:
    """The catalog's routes: ``routes`` (Ingresses, ConfigMaps, plain routes) as they
    are, and one route per host and path of the candidates, each with the conditioned
    candidates a request there is tried against, in the spec's precedence, ending
    with the first unconditioned one (or nothing: 404).  A candidate on a host and
    path another kind of object routes is dropped: returned as (owner, reason)."""
    plain = list(routes)
    taken = {(r.host, r.path, r.match): r for r in plain}
    dropped = []
    by_host: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        key = (candidate.host, candidate.path, candidate.match)
        if key in taken and not candidate.conditions:
            if candidate.value.backend == NO_ROUTE:
                continue  # a listener's bound (see _isolation): the other object's route
            dropped.append(
                (
                    candidate.value.source,
                    f"{candidate.host}{candidate.path} ({candidate.match}) is routed by "
                    f"{taken[key].source}, which keeps it",
                )
            )
            continue
        by_host.setdefault(candidate.host, []).append(candidate)
    for route in plain:  # others' routes: fallbacks of the Gateway API's, never chained
        by_host.setdefault(route.host, []).append(
            Candidate(route.host, route.path, route.match, Conditions(), route, ("",))
        )
    for found in by_host.values():
        found.sort(key=Candidate.rank)
    hosts = set(by_host)
    keys = sorted(
        {(c.host, c.path, c.match) for c in candidates if (c.host, c.path, c.match) not in taken}
    )
    merged = list(plain)
    for host, path, match in keys:
        chain: list[tuple[Conditions, Route]] = []
        fallback: Route | None = None
        for covering in _covering_hosts(host, hosts):
            for candidate in by_host[covering]:
                if not _covers(candidate, path, match):
                    continue
                if not candidate.conditions:
                    fallback = candidate.value
                    break
                chain.append((candidate.conditions, candidate.value))
            if fallback is not None:
                break
        owner = (chain[0][1] if chain else fallback or Route("", "", "prefix", "", "")).source
        if not chain and fallback is not None:
            if (fallback.host, fallback.path, fallback.match) != (host, path, match):
                fallback = replace(fallback, host=host, path=path, match=match)
            merged.append(fallback)  # the candidate's own route, shared: no copy
            continue
        base = fallback or Route(host, path, match, NO_ROUTE, owner)
        merged.append(
            replace(base, host=host, path=path, match=match, source=owner, chain=tuple(chain))
        )
    return merged, dropped
