"""Configuration precedence: defaults, file, environment, flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakwater.config import ConfigError, load_config


def test_precedence(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yml"
    path.write_text(
        "etcd:\n  endpoints: [https://file:2379]\n  prefix: /file\n"
        "catalog:\n  ingress_class: from-file\n  mode: nodeport\n"
    )
    assert load_config(None, environ={}).etcd.prefix == "/registry"
    config = load_config(
        str(path),
        environ={"BREAKWATER_ETCD_PREFIX": "/env", "BREAKWATER_CATALOG_INGRESS_CLASS": "from-env"},
        overrides={"catalog.ingress_class": "from-flag"},
    )
    assert config.etcd.endpoints == ("https://file:2379",)
    assert config.etcd.prefix == "/env"
    assert config.catalog.ingress_class == "from-flag"
    assert config.catalog.mode == "nodeport"


def test_etcdctl_variables_are_fallbacks() -> None:
    environ = {"ETCDCTL_ENDPOINTS": "https://a:2379,https://b:2379"}
    assert load_config(None, environ=environ).etcd.endpoints == ("https://a:2379", "https://b:2379")
    environ["BREAKWATER_ETCD_ENDPOINTS"] = "http://c:2379"
    assert load_config(None, environ=environ).etcd.endpoints == ("http://c:2379",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("etcd:\n  endpoint: [x]\n", "unknown key etcd.endpoint"),
        ("etcdd: {}\n", "unknown section 'etcdd'"),
        ("catalog:\n  mode: sideways\n", "catalog.mode"),
        ("coalesce:\n  max_wait: soon\n", "coalesce.max_wait"),
        ("coalesce:\n  file_delay: 5\n  file_max_delay: 2\n", "coalesce.file_max_delay"),
        ("etcd:\n  endpoints: ['ftp://x']\n", "etcd.endpoints"),
        ("haproxy:\n  backend_log: quiet\n", "haproxy.backend_log: 'quiet' is not one of"),
        ("varnish:\n  enabled: true\n  health: localhost:6086\n", "varnish.health"),
        ("etcd:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n", "does not exist"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "watcher.yml"
    path.write_text(document)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(str(path), environ={})
