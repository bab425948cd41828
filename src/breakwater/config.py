"""The watcher's configuration.

Precedence, lowest to highest -- the one place it is written down:

1. defaults (the dataclasses below);
2. the YAML file given with ``--config`` (default ``/etc/breakwater/watcher.yml``
   if it exists);
3. environment variables: ``BREAKWATER_<SECTION>_<KEY>`` for any key
   (``BREAKWATER_ETCD_ENDPOINTS``, ``BREAKWATER_HAPROXY_CONFIG_FILE``,
   ``BREAKWATER_CATALOG_MODE``...), then etcdctl's own ``ETCDCTL_ENDPOINTS``,
   ``ETCDCTL_CACERT``, ``ETCDCTL_CERT`` and ``ETCDCTL_KEY`` for the etcd keys not set
   by a ``BREAKWATER_`` variable;
4. command-line flags (``--etcd-endpoints``, ``--set section.key=value``...).

Lists (``endpoints``, ``http_binds``) are comma-separated in the environment and
in flags.  Unknown sections or keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from breakwater.catalog import CatalogSettings
from breakwater.cluster import keys
from breakwater.cluster.source import EtcdSettings, parse_endpoint
from breakwater.ha.settings import HASettings, ha_problems
from breakwater.k8s.encryption import EncryptionConfigError, load_encryption_config
from breakwater.targets.settings import BACKEND_LOG_LEVELS, HAProxySettings, VarnishSettings
from breakwater.validate import InvalidValue, cidr, listen_address

DEFAULT_CONFIG_FILE = "/etc/breakwater/watcher.yml"
ETCDCTL_FALLBACKS = {
    "endpoints": "ETCDCTL_ENDPOINTS",
    "ca_file": "ETCDCTL_CACERT",
    "cert_file": "ETCDCTL_CERT",
    "key_file": "ETCDCTL_KEY",
}


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the source."""


@dataclass(frozen=True)
class CoalesceSettings:
    quiet_period: float = 0.005  # seconds without a new event before syncing
    max_wait: float = 0.2  # a burst never delays a sync longer than this
    # After servers changed through the runtime API alone, haproxy.cfg (and the
    # status file) are rewritten once no such change came for file_delay seconds,
    # and at the latest file_max_delay after the first: a burst of endpoint events
    # costs one file write, written when the events have stopped.
    file_delay: float = 1.0
    file_max_delay: float = 10.0


@dataclass(frozen=True)
class WatcherSettings:
    status_file: str | None = "/run/breakwater/status.json"
    # A few bytes rewritten every heartbeat_interval seconds: the watcher is alive and
    # synced (breakwater edge-health reads it; the status file is written on changes).
    heartbeat_file: str | None = "/run/breakwater/heartbeat.json"
    heartbeat_interval: float = 2.0
    log_level: str = "INFO"
    # Prometheus metrics (/metrics) on this address; "" turns them off.
    metrics_listen: str = "127.0.0.1:9406"


@dataclass(frozen=True)
class Config:
    etcd: EtcdSettings = field(default_factory=EtcdSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    haproxy: HAProxySettings = field(default_factory=HAProxySettings)
    varnish: VarnishSettings = field(default_factory=VarnishSettings)
    coalesce: CoalesceSettings = field(default_factory=CoalesceSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    ha: HASettings = field(default_factory=HASettings)


def read_resources(config: Config) -> list[str]:
    """What this configuration reads under etcd's key prefix (cluster.keys)."""
    catalog = config.catalog
    return keys.read_resources(
        catalog.mode, catalog.secret_namespaces, catalog.configmap_namespaces, catalog.gateway_api
    )


def read_prefixes(config: Config) -> list[str]:
    """Every etcd key prefix this configuration reads, plain routes included."""
    etcd = config.etcd
    return keys.read_prefixes(etcd.prefix, etcd.routes_prefix, read_resources(config))


SECTIONS: dict[str, type[Any]] = {
    "etcd": EtcdSettings,
    "catalog": CatalogSettings,
    "haproxy": HAProxySettings,
    "varnish": VarnishSettings,
    "coalesce": CoalesceSettings,
    "watcher": WatcherSettings,
    "ha": HASettings,
}


def _coerce(section: str, name: str, default: Any, value: Any, origin: str) -> Any:
    """Turn a value from YAML, the environment or a flag into the field's type."""
    where = f"{section}.{name} (from {origin})"
    if value is None:
        return None
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: expected a list of strings")
        return tuple(item.strip() for item in items if item.strip())
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, (int, float)):
        try:
            number = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
        if number < 0:
            raise ConfigError(f"{where}: must not be negative")
        return number
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


def _apply(config: Config, section: str, values: Mapping[str, Any], origin: str) -> Config:
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r} (from {origin})")
    current = getattr(config, section)
    defaults = {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
    changes = {}
    for name, value in values.items():
        if name not in defaults:
            raise ConfigError(f"unknown key {section}.{name} (from {origin})")
        changes[name] = _coerce(section, name, defaults[name], value, origin)
    return dataclasses.replace(config, **{section: dataclasses.replace(current, **changes)})


def _validate(config: Config, check_files: bool = True) -> Config:
    if not config.etcd.endpoints:
        raise ConfigError("etcd.endpoints: at least one endpoint is required")
    for endpoint in config.etcd.endpoints:
        try:
            parse_endpoint(endpoint)
        except ValueError as exc:
            raise ConfigError(f"etcd.endpoints: {exc}") from exc
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(config.etcd, name)
        if check_files and path and not os.path.isfile(path):
            raise ConfigError(f"etcd.{name}: {path} does not exist")
    if check_files and config.etcd.encryption_config:
        try:
            load_encryption_config(config.etcd.encryption_config)
        except EncryptionConfigError as exc:
            raise ConfigError(f"etcd.encryption_config: {exc}") from exc
    routes_prefix, prefix = config.etcd.routes_prefix, config.etcd.prefix.rstrip("/") + "/"
    if routes_prefix and (not routes_prefix.endswith("/") or routes_prefix.startswith(prefix)):
        raise ConfigError(
            f"etcd.routes_prefix {routes_prefix!r} must end with '/' and lie outside {prefix}"
        )
    if bool(config.etcd.cert_file) != bool(config.etcd.key_file):
        raise ConfigError("etcd.cert_file and etcd.key_file go together")
    if config.catalog.mode not in ("pods", "nodeport"):
        raise ConfigError(f"catalog.mode: {config.catalog.mode!r} is not 'pods' or 'nodeport'")
    if check_files and config.haproxy.template and not os.path.isfile(config.haproxy.template):
        raise ConfigError(f"haproxy.template: {config.haproxy.template} does not exist")
    if check_files and config.varnish.template and not os.path.isfile(config.varnish.template):
        raise ConfigError(f"varnish.template: {config.varnish.template} does not exist")
    for source in config.haproxy.proxy_protocol_sources:
        try:
            cidr(source, "haproxy.proxy_protocol_sources")
        except InvalidValue as exc:
            raise ConfigError(str(exc)) from exc
    if config.haproxy.backend_log not in BACKEND_LOG_LEVELS:
        choices = ", ".join(sorted(BACKEND_LOG_LEVELS))
        raise ConfigError(
            f"haproxy.backend_log: {config.haproxy.backend_log!r} is not one of {choices}"
        )
    if config.watcher.metrics_listen:
        try:
            listen_address(config.watcher.metrics_listen)
        except InvalidValue as exc:
            raise ConfigError(f"watcher.metrics_listen: {exc}") from exc
    if config.varnish.enabled:
        try:
            listen_address(config.varnish.health)
        except InvalidValue as exc:
            raise ConfigError(f"varnish.health: {exc}") from exc
    try:
        read_resources(config)
    except InvalidValue as exc:
        raise ConfigError(f"catalog: {exc}") from exc
    if config.varnish.keep_vcls < 1:
        raise ConfigError("varnish.keep_vcls: at least 1 (the active VCL)")
    if config.coalesce.max_wait < config.coalesce.quiet_period:
        raise ConfigError("coalesce.max_wait must be at least coalesce.quiet_period")
    if config.coalesce.file_max_delay < config.coalesce.file_delay:
        raise ConfigError("coalesce.file_max_delay must be at least coalesce.file_delay")
    if config.watcher.heartbeat_interval <= 0:
        raise ConfigError("watcher.heartbeat_interval must be more than 0")
    problems = ha_problems(config.ha)
    if problems:
        raise ConfigError("; ".join(problems))
    return config


def _apply_document(config: Config, document: object, origin: str) -> Config:
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections")
    for section, values in document.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: section {section!r} must be a mapping")
        config = _apply(config, section, values, origin)
    return config


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    document: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> Config:
    """Build the configuration: defaults, then ``path``, then ``environ``, then ``overrides``.

    ``document`` stands for the file's content when the caller already has it (the
    Ansible plugins pass the same mapping the role writes to the file).
    ``overrides`` maps ``section.key`` to a value (from command-line flags).
    ``check_files``: whether the files it names must exist here (not on a controller
    rendering for another machine).
    """
    environ = os.environ if environ is None else environ
    config = Config()
    if document is not None:
        config = _apply_document(config, dict(document), "settings")
    else:
        if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
            path = DEFAULT_CONFIG_FILE
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    loaded = yaml.safe_load(handle) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
            config = _apply_document(config, loaded, path)
    for section, cls in SECTIONS.items():
        values = {}
        for f in dataclasses.fields(cls):
            variable = f"BREAKWATER_{section.upper()}_{f.name.upper()}"
            if variable in environ:
                values[f.name] = environ[variable]
            elif section == "etcd" and f.name in ETCDCTL_FALLBACKS:
                fallback = ETCDCTL_FALLBACKS[f.name]
                if fallback in environ:
                    values[f.name] = environ[fallback]
        if values:
            config = _apply(config, section, values, "environment")
    for dotted, value in (overrides or {}).items():
        section, _dot, name = dotted.partition(".")
        config = _apply(config, section, {name: value}, "command line")
    return _validate(config, check_files)


def as_dict(config: Config) -> dict[str, Any]:
    """The effective configuration, as ``breakwater check-config`` prints it."""
    return {
        section: {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(getattr(config, section)).items()
        }
        for section in SECTIONS
    }
