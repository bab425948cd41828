"""The frontend's rules for Gateway API routes that a map lookup cannot decide alone:
conditioned matches (method, headers, query parameters, a regular expression, the
listener's scheme) and weighted backends (the filters' rules are the backends':
:mod:`.filters`).  Nothing here is rendered for a route
without them: plain routes are one map lookup, as they always were.

A route with conditions carries, in its map value's last field, the key of its chain;
one with weights, the key of its split.  bw_public sends those requests, and only
those, to the frontend bw_gateway_<shard> of the key's second character (a unix
socket; the client's address in a PROXY header), where these rules are: plain routes
never evaluate them, and a conditioned request only its shard's
(:func:`~breakwater.render.maps.gateway_shards`).  Each alternative
of a chain is one rule that, when its conditions hold, replaces the route's map value
with the alternative's: the rules after it then fail at their first comparison (the
value no longer ends with the chain's key), and the rest of the frontend (redirects,
canaries, splits, ``use_backend``) reads the new value as if the map had given it.
What is quoted was validated (``breakwater.validate``) and is single-quoted, where
HAProxy reads no escape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from breakwater.catalog import Route
from breakwater.catalog.model import Conditions, Split
from breakwater.render.maps import map_value
from breakwater.render.words import quoted as _quoted


def _test(key: str) -> str:
    return f"{{ var(txn.bw_route) -m end ;{key} }}"


def condition_acls(conditions: Conditions) -> list[str]:
    """Anonymous ACLs, all of which hold when a request meets ``conditions``."""
    acls = []
    # The scheme bw_public saw (it sets X-Forwarded-Proto on TLS, drops a client's).
    if conditions.scheme == "https":
        acls.append("{ req.hdr(x-forwarded-proto) -m str https }")
    elif conditions.scheme == "http":
        acls.append("!{ req.hdr(x-forwarded-proto) -m str https }")
    if conditions.method:
        acls.append(f"{{ method {conditions.method} }}")
    if conditions.path_regex:
        acls.append(f"{{ path -m reg -- {_quoted(f'^(?:{conditions.path_regex})$')} }}")
    for name, kind, value in conditions.headers:
        # fhdr: the whole header, never split at commas; each occurrence is compared.
        how = "reg" if kind == "regex" else "str"
        acls.append(f"{{ req.fhdr({name}) -m {how} -- {_quoted(value)} }}")
    for name, kind, value in conditions.query:
        how = "reg" if kind == "regex" else "str"
        acls.append(f"{{ urlp({name}) -m {how} -- {_quoted(value)} }}")
    return acls


def chain_lines(routes: Iterable[Route]) -> str:
    """The rules of the routes' chains (each route one chain: see the module)."""
    lines = []
    for route in routes:
        key = route.key()
        assert key is not None
        test = _test(key)
        for conditions, alternative in route.chain:
            acls = " ".join(condition_acls(conditions))
            lines.append(
                f"http-request set-var(txn.bw_route) str({map_value(alternative)}) if {test} {acls}"
            )
        rest = replace(route, chain=())
        if rest.key() is not None:  # what is left has rules of its own (a split)
            lines.append(f"http-request set-var(txn.bw_route) str({map_value(rest)}) if {test}")
    return "".join(f"    {line}\n" for line in lines)


def split_lines(splits: Iterable[Split]) -> str:
    """Weighted backends: each rule takes its share of what the ones before left (a
    draw of its own: the chances multiply to the weights); the last backend is the
    route's own, which ``use_backend`` takes."""
    lines = []
    for split in splits:
        test = _test(split.key())
        left = sum(weight for _name, weight in split.backends)
        for name, weight in split.backends[:-1]:
            lines.append(f"use_backend {name} if {test} {{ rand({left}) -m int lt {weight} }}")
            left -= weight
    return "".join(f"    {line}\n" for line in lines)
