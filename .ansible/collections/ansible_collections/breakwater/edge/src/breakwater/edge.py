"""What the Ansible plugins ask of Breakwater, in one place: their one face.

The lookups and modules call nothing else of the package.  These functions are
thin: they call the same source, decode, catalog, render and staging code the
watcher runs -- so the first configuration a role writes is byte for byte what the
watcher would write, and written the way the watcher writes it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from breakwater import operations, validate
from breakwater.catalog import Catalog, build_catalog
from breakwater.catalog.live import full_catalog
from breakwater.cluster import access
from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.plain_routes import API_VERSION, KIND, encode_route
from breakwater.cluster.source import EtcdSettings, EtcdSource, KeyValue
from breakwater.cluster.state import ClusterState, read_cluster
from breakwater.config import Config, as_dict, load_config, read_prefixes, read_resources
from breakwater.ha.release import wait_released
from breakwater.k8s.decode import decode
from breakwater.k8s.encryption import encryption_for
from breakwater.render.haproxy import RenderedConfig, render_shaped
from breakwater.render.shape import place, shape_from_config
from breakwater.render.slots import layout_from_config
from breakwater.render.vcl import render_vcl
from breakwater.targets.haproxy_api import RuntimeSession
from breakwater.targets.invalidate import ban_expression, invalidate, node_secret

T = TypeVar("T")

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
    return asyncio.run(read_cluster(config.etcd, read_resources(config)))


def haproxy_files(config: Config, catalog: Catalog, current_config: str | None) -> dict[str, Any]:
    """haproxy.cfg and its generation directory, keeping the slots of ``current_config``
    and the spares the watcher gave to new Services in it (the watcher's own render of
    the same objects); afresh, every backend under its own name, when it would take a
    spare or keep a section (what is written here is then reloaded anyway)."""
    previous = layout_from_config(current_config) if current_config else {}
    shape = None
    if current_config:
        current = shape_from_config(current_config)
        placed = place(catalog, current)
        if placed is not None and placed.serving == current.serving and not placed.kept:
            shape = placed
    varnish = config.varnish if config.varnish.enabled else None
    rendered, _layout = render_shaped(catalog, shape, previous, config.haproxy, varnish)
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
    """The routing model (``catalog``), HAProxy's files (``haproxy``), the VCL (``vcl``)
    or nothing more (``settings``: no etcd read).

    Every answer carries ``settings``: the effective configuration.
    """
    config = edge_config(settings, etcd)
    result: dict[str, Any] = {"settings": as_dict(config)}
    if output == "settings":
        return result
    if output == "vcl":
        result["vcl"] = render_vcl(config.varnish)
        return result
    state = cluster(config)
    catalog = full_catalog(state, config.catalog)
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
    _revision, values = _with_source(settings, [directory], lambda source: source.list_all())
    matches = label_matcher(selector)
    found = []
    # Secrets encrypted at rest are read with the configuration's keys, or refused
    # with why (the lookups carry none: they say which provider and key).
    encryption = encryption_for(config.etcd.encryption_config) if kind == "Secret" else None
    for key, value in sorted(values.items()):
        obj = decode(key, encryption.decrypt(key, value) if encryption else value)
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


def _with_source(
    settings: EtcdSettings,
    resources: Sequence[str],
    action: Callable[[EtcdSource], Awaitable[T]],
) -> T:
    """``action`` on a source connected for this call alone."""

    async def run() -> T:
        source = EtcdSource(settings, resources)
        try:
            return await action(source)
        finally:
            await source.disconnect()

    return asyncio.run(run())


def etcd_keys(etcd: Mapping[str, Any], keys: Sequence[str], prefix: bool) -> list[dict[str, Any]]:
    """Raw keys (or every key under each prefix): key, value (text or base64), revisions."""
    config = edge_config({}, etcd)

    async def read(source: EtcdSource) -> list[KeyValue]:
        return [kv for key in keys for kv in await source.range(key, prefix)]

    return [_kv_dict(kv) for kv in _with_source(config.etcd, [], read)]


def etcd_access(
    etcd: Mapping[str, Any],
    settings: Mapping[str, Any] | None,
    user: str,
    role: str,
    present: bool = True,
    check_mode: bool = False,
) -> dict[str, Any]:
    """The edge's etcd user and read-only role, for the watcher configuration
    ``settings`` (what it reads: config.read_prefixes), made so with the caller's
    etcd account (``etcd``, e.g. root).  before, after, and the prefixes."""
    config = edge_config(settings, etcd)
    prefixes = read_prefixes(config)

    async def ensure(source: EtcdSource) -> tuple[access.Access, access.Access]:
        return await access.ensure_access(
            source, user, role, prefixes if present else None, check_mode
        )

    before, after = _with_source(config.etcd, [], ensure)
    return {
        "before": before.as_dict(user, role),
        "after": after.as_dict(user, role),
        "prefixes": prefixes,
    }


def _kv_dict(kv: KeyValue) -> dict[str, Any]:
    try:
        value, encoding = kv.value.decode("utf-8"), "utf-8"
        if not value.isprintable() and not all(c.isprintable() or c in "\n\t\r" for c in value):
            raise UnicodeDecodeError("utf-8", kv.value, 0, 1, "control characters")
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(kv.value).decode("ascii"), "base64"
    return {
        "key": kv.key,
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
    found = _with_source(config.etcd, [], lambda source: source.get(key))
    return None if found is None else dict(json.loads(found.value))


def check_route(name: str, spec: Mapping[str, Any]) -> list[str]:
    """Why the catalog would reject this route; empty when it would serve it."""
    obj = {"kind": KIND, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec}
    catalog = build_catalog([obj])
    return [rejection.reason for rejection in catalog.rejected]


def write_route(etcd: Mapping[str, Any], name: str, spec: Mapping[str, Any] | None) -> None:
    """Store (or, with ``spec=None``, delete) a plain route."""
    config, key = route_key(etcd, name)

    async def write(source: EtcdSource) -> None:
        if spec is None:
            await source.delete(key)
        else:
            await source.put(key, encode_route(spec))

    _with_source(config.etcd, [], write)


# --- on an LB node: HAProxy's files and runtime API (the modules run there) ------------


def install_haproxy_config(
    config_file: str,
    config: str,
    generation_dir: str,
    files: Mapping[str, str],
    secret_files: Mapping[str, str],
    check_mode: bool = False,
) -> dict[str, Any]:
    """Put the catalog lookup's ``haproxy`` output in place as the watcher would: the
    generation directory, ``node-state.map``, haproxy.cfg staged, checked and swapped,
    older generations pruned.  Says what changed (or would, in ``check_mode``)."""
    both = set(files) & set(secret_files)
    if both:
        raise ValueError(f"{', '.join(sorted(both))}: in both files and secret_files")
    rendered = RenderedConfig(
        config=config,
        generation_dir=generation_dir,
        generation_files={**files, **secret_files},
        secret_files=frozenset(secret_files),
    )
    change = asyncio.run(operations.install_haproxy_config(config_file, rendered, check_mode))
    return {**dataclasses.asdict(change), "changed": change.changed}


def set_server_state(
    socket: str,
    backend: str,
    server: str | None,
    state: operations.AdminState,
    wait: bool = False,
    timeout: float = 300.0,
    check_mode: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Drain, ready or maintenance for one server or a backend: (before, after)."""
    before, after = asyncio.run(
        operations.set_server_state(socket, backend, server, state, wait, timeout, check_mode)
    )
    return [dataclasses.asdict(s) for s in before], [dataclasses.asdict(s) for s in after]


def set_node_rotation(
    socket: str,
    config_dir: str,
    in_rotation: bool,
    wait: bool = False,
    timeout: float = 300.0,
    check_mode: bool = False,
) -> tuple[bool, bool]:
    """The node in or out of rotation: (was in rotation, is in rotation)."""
    return asyncio.run(
        operations.set_node_rotation(
            socket, config_dir, in_rotation, wait, timeout, check_mode=check_mode
        )
    )


def wait_for_release(
    vips: Sequence[str], health_file: str | None, bgp: bool | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """A drain's first wait: until the node holds none of ``vips`` and edge-health says
    its BGP announcement is withdrawn (docs/ha.md)."""
    return asyncio.run(wait_released(vips, health_file, bgp, timeout))


def wait_for_sessions(socket: str, timeout: float = 300.0, frontend: str = "bw_public") -> int:
    """A drain's last wait: until the public frontend has no session; seconds waited."""

    async def wait() -> float:
        runtime = RuntimeSession(socket)
        try:
            return await operations.wait_no_sessions(runtime, timeout, frontend)
        finally:
            await runtime.close()

    return round(asyncio.run(wait()))


def edge_info(
    socket: str,
    status_file: str | None,
    health_file: str | None = "/run/breakwater/edge-health.json",
    vrrp_dir: str | None = "/run/breakwater/vrrp",
    vtysh: str | None = "/usr/bin/vtysh",
) -> dict[str, Any]:
    """The watcher's status, HAProxy's live servers, and the node's HA state: the
    edge-health verdict, keepalived's VRRP instances, FRR's BGP peers (docs/ha.md)."""
    return asyncio.run(operations.edge_info(socket, status_file, health_file, vrrp_dir, vtysh))


# --- Varnish ---------------------------------------------------------------------------


def varnish_ban(
    nodes: Sequence[str],
    secret_file: str,
    host: str,
    path: str,
    purge: bool,
    check_mode: bool = False,
) -> list[dict[str, Any]]:
    """Ban (or purge) on every node at once; one result per node, failures included.
    The expression and the secret are checked first, also in ``check_mode``."""
    ban_expression(host, path, purge)  # raises on a bad host or pattern
    secret = node_secret(secret_file)
    if check_mode:
        return [{"node": node, "ok": True, "detail": "check mode"} for node in nodes]
    results = asyncio.run(invalidate(nodes, secret, host, path, purge))
    return [dataclasses.asdict(result) for result in results]
