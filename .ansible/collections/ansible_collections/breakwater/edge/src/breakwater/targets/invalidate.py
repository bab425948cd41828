"""Bans and purges on every edge's Varnish at once, through the management CLI.

A ban matches the host and a path pattern, both validated before they reach a
Varnish: the expression is built from words, never from a string a caller wrote.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from breakwater import validate
from breakwater.targets.varnish_cli import VarnishCLI, VarnishError, read_secret


def _regex(value: str, what: str) -> str:
    if not value or len(value) > 1024 or not value.isprintable():
        raise validate.InvalidValue(f"{what} {value!r} must be a printable regular expression")
    try:
        re.compile(value)
    except re.error as exc:
        raise validate.InvalidValue(f"{what} {value!r} is not a regular expression: {exc}") from exc
    return value


def ban_expression(host: str, path_pattern: str, lurker: bool) -> list[str]:
    """CLI words of a ban on ``host`` and URLs matching ``path_pattern``.

    ``lurker``: match on object headers (``obj.http.*``) so Varnish's ban lurker
    removes the objects in the background -- a purge by pattern.  Otherwise match on
    the request (``req.*``): objects are dropped when next requested.
    """
    host = validate.hostname(host)
    pattern = _regex(path_pattern, "path pattern")
    if lurker:
        return [
            "obj.http.X-Breakwater-Host",
            "==",
            host,
            "&&",
            "obj.http.X-Breakwater-Url",
            "~",
            pattern,
        ]
    return ["req.http.host", "==", host, "&&", "req.url", "~", pattern]


@dataclass(frozen=True)
class NodeResult:
    node: str
    ok: bool
    detail: str


async def invalidate(
    nodes: Sequence[str],
    secret: bytes,
    host: str,
    path_pattern: str,
    purge: bool,
    timeout: float = 10.0,
) -> list[NodeResult]:
    """Ban (or purge) on every node at once; one result per node, failures included."""
    words = ["ban", *ban_expression(host, path_pattern, lurker=purge)]

    async def one(node: str) -> NodeResult:
        try:
            async with VarnishCLI(node, secret, timeout) as cli:
                await cli.command(*words)
        except VarnishError as exc:
            return NodeResult(node, False, str(exc))
        return NodeResult(node, True, "purged" if purge else "banned")

    return list(await asyncio.gather(*(one(node) for node in nodes)))


def node_secret(path: str) -> bytes:
    if not os.path.exists(path):
        raise VarnishError(f"secret file {path} does not exist")
    return read_secret(path)
