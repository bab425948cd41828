"""What the Ansible plugins ask of Breakwater, in one place.

The lookups and modules are thin faces over these functions, which call the same
source, decode, catalog and render code the watcher runs -- so the first
configuration a role writes is byte for byte what the watcher would write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from breakwater.catalog import Catalog
from breakwater.config import Config, as_dict, load_config
from breakwater.render import assign_slots, layout_from_config, render_haproxy, render_vcl
from breakwater.watcher import ClusterState, read_cluster

ETCD_OPTIONS = ("endpoints", "ca_file", "cert_file", "key_file", "prefix")


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
