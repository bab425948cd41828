"""What the Ansible plugins ask of Breakwater, in one place.

The lookups and modules are thin faces over these functions, which call the same
source, decode, catalog and render code the watcher runs -- so the first
configuration a role writes is byte for byte what the watcher would write.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aetcd import rpc
from aetcd.utils import prefix_range_end

from breakwater import validate
from breakwater.catalog import Catalog, build_catalog
from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.plain_routes import API_VERSION, KIND, encode_route
from breakwater.cluster.source import EtcdSource
from breakwater.cluster.state import ClusterState, read_cluster
from breakwater.config import Config, as_dict, load_config
from breakwater.k8s.decode import decode
from breakwater.render.haproxy import render_haproxy
from breakwater.render.slots import assign_slots, layout_from_config
from breakwater.render.vcl import render_vcl

ETCD_OPTIONS = ("endpoints", "ca_file", "cert_file", "key_file", "prefix", "routes_prefix")


def edge_config(
    settings: Mapping[str, Any] | None, etcd: Mapping[str, Any] | None = None
) -> Config:
    """The watcher's configuration from ``settings`` (watcher.yml as a mapping), with
    the etcd connection options of the caller (the controller's own paths) on top."""
    overrides = {
        f"etcd.{key}": value
        for key, value in (etcd or {}).items()
        if key in ETCD_OPTIONS and value not in (None, "", [])
    }
    # The settings name the node's files; only the controller's etcd files are here.
    controller_files = any(f"etcd.{key}" in overrides for key in ETCD_OPTIONS[1:4])
    return load_config(
        document=settings or {}, environ={}, overrides=overrides, check_files=controller_files
    )


def cluster(config: Config) -> ClusterState:
    return asyncio.run(read_cluster(config.etcd))


def haproxy_files(config: Config, catalog: Catalog, current_config: str | None) -> dict[str, Any]:
    """haproxy.cfg and its generation directory, keeping the slots of ``current_config``."""
    previous = layout_from_config(current_config) if current_config else {}
    layout = assign_slots(catalog, previous, config.haproxy.min_slots)
    varnish = config.varnish if config.varnish.enabled else None
    rendered = render_haproxy(catalog, layout, config.haproxy, varnish=varnish)
    return {
        "config": rendered.config,
        "generation_dir": rendered.generation_dir,
        "files": [
            {"name": name, "content": text, "secret": name in rendered.secret_files}
            for name, text in sorted(rendered.generation_files.items())
        ],
    }


def edge_view(
    settings: Mapping[str, Any] | None,
    etcd: Mapping[str, Any] | None = None,
    output: str = "catalog",
    current_config: str | None = None,
) -> dict[str, Any]:
    """The routing model (``catalog``), HAProxy's files (``haproxy``) or the VCL (``vcl``).

    Every answer also carries ``settings``: the effective configuration.
    """
    config = edge_config(settings, etcd)
    result: dict[str, Any] = {"settings": as_dict(config)}
    if output == "vcl":
        result["vcl"] = render_vcl(config.varnish)
        return result
    state = cluster(config)
    catalog = state.catalog(config)
    result["revision"] = state.revision
    if output == "haproxy":
        result.update(haproxy_files(config, catalog, current_config))
    else:
        result["catalog"] = catalog.as_dict()
    return result


# --- reading etcd ---------------------------------------------------------------------

_SELECTOR_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9./_-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [*terms, current] if current.strip() else terms


def label_matcher(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Kubernetes' label selector syntax: ``a=b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``."""
    # (key, accepted values or None for "present", whether the term must hold)
    terms: list[tuple[str, frozenset[str] | None, bool]] = []
    for term in _split_selector(selector or ""):
        match = _SELECTOR_TERM.match(term)
        if match is None:
            raise ValueError(f"label selector term {term.strip()!r} is not understood")
        if match["setop"]:
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            terms.append((match["key"], values, match["setop"] == "in"))
        elif match["op"]:
            terms.append((match["key"], frozenset({match["value"]}), match["op"] != "!="))
        else:
            terms.append((match["key"], None, not match["neg"]))

    def matches(labels: Mapping[str, str]) -> bool:
        for key, values, positive in terms:
            held = key in labels if values is None else labels.get(key) in values
            if held != positive:
                return False
        return True

    return matches


def k8s_objects(
    etcd: Mapping[str, Any],
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    selector: str | None = None,
    reveal_secrets: bool = False,
) -> list[dict[str, Any]]:
    """Decoded objects of one kind, filtered; Secret values are redacted unless asked."""
    directories = {k: d for d, k in RESOURCES.items()}
    if kind not in directories:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(sorted(directories))}")
    config = edge_config({}, etcd)
    directory = directories[kind]
    if namespace:
        directory += validate.dns_label(namespace, "namespace") + "/"
        if name:
            directory += validate.dns_subdomain(name, "name")
    settings = dataclasses.replace(config.etcd, routes_prefix="")
    values = asyncio.run(_list(EtcdSource(settings, [directory])))
    matches = label_matcher(selector)
    found = []
    for key, value in sorted(values.items()):
        obj = decode(key, value)
        metadata = obj.get("metadata") or {}
        if name and metadata.get("name") != name:
            continue
        if not matches(metadata.get("labels") or {}):
            continue
        if kind == "Secret" and not reveal_secrets:
            for field in ("data", "stringData"):
                if field in obj:
                    obj[field] = {k: REDACTED for k in obj[field]}
        found.append(obj)
    return found


REDACTED = "<redacted>"


async def _list(source: EtcdSource) -> dict[str, bytes]:
    try:
        return (await source.list_all())[1]
    finally:
        await source.disconnect()


def etcd_keys(etcd: Mapping[str, Any], keys: Sequence[str], prefix: bool) -> list[dict[str, Any]]:
    """Raw keys (or every key under each prefix): key, value (text or base64), revisions."""
    config = edge_config({}, etcd)

    async def read() -> list[dict[str, Any]]:
        source = EtcdSource(config.etcd, [])
        client = await source.connect()
        found = []
        try:
            for key in keys:
                range_end = prefix_range_end(key.encode()) if prefix else b""
                response = await client.kvstub.Range(
                    rpc.RangeRequest(key=key.encode(), range_end=range_end),
                    timeout=config.etcd.timeout,
                )
                for kv in response.kvs:
                    found.append(_kv_dict(kv))
        finally:
            await source.disconnect()
        return found

    return asyncio.run(read())


def _kv_dict(kv: Any) -> dict[str, Any]:
    try:
        value, encoding = kv.value.decode("utf-8"), "utf-8"
        if not value.isprintable() and not all(c.isprintable() or c in "\n\t\r" for c in value):
            raise UnicodeDecodeError("utf-8", kv.value, 0, 1, "control characters")
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(kv.value).decode("ascii"), "base64"
    return {
        "key": kv.key.decode(errors="replace"),
        "value": value,
        "encoding": encoding,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    }


# --- plain routes ----------------------------------------------------------------------


def route_key(etcd: Mapping[str, Any], name: str) -> tuple[Config, str]:
    config = edge_config({}, etcd)
    if not config.etcd.routes_prefix:
        raise ValueError("plain routes are turned off (etcd.routes_prefix is empty)")
    return config, config.etcd.routes_prefix + validate.dns_label(name, "route name")


def read_route(etcd: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    config, key = route_key(etcd, name)

    async def read() -> dict[str, Any] | None:
        source = EtcdSource(config.etcd, [])
        client = await source.connect()
        try:
            found = await client.get(key.encode())
        finally:
            await source.disconnect()
        return None if found is None else dict(json.loads(found.value))

    return asyncio.run(read())


def check_route(name: str, spec: Mapping[str, Any]) -> list[str]:
    """Why the catalog would reject this route; empty when it would serve it."""
    obj = {"kind": KIND, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec}
    catalog = build_catalog([obj])
    return [rejection.reason for rejection in catalog.rejected]


def write_route(etcd: Mapping[str, Any], name: str, spec: Mapping[str, Any] | None) -> None:
    """Store (or, with ``spec=None``, delete) a plain route."""
    config, key = route_key(etcd, name)

    async def write() -> None:
        source = EtcdSource(config.etcd, [])
        client = await source.connect()
        try:
            if spec is None:
                await client.delete(key.encode())
            else:
                await client.put(key.encode(), encode_route(spec))
        finally:
            await source.disconnect()

    asyncio.run(write())
