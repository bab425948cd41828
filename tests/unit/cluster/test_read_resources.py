"""What the edge reads from etcd: derived from its configuration, in one place."""

from __future__ import annotations

import pytest

from breakwater.cluster.keys import RESOURCES, read_resources
from breakwater.cluster.source import EtcdSource
from breakwater.config import ConfigError, load_config, read_prefixes
from breakwater.config import read_resources as configured_resources
from breakwater.validate import InvalidValue


def test_pods_mode_reads_no_nodes_and_nodeport_mode_no_endpoints() -> None:
    pods = read_resources("pods")
    nodeport = read_resources("nodeport")
    assert "minions/" not in pods and {"endpointslices/", "services/endpoints/"} <= set(pods)
    assert "minions/" in nodeport
    assert not {"endpointslices/", "services/endpoints/"} & set(nodeport)
    for resources in (pods, nodeport):  # everything else the catalog reads, in both
        assert {"services/specs/", "ingress/", "ingressclasses/", "secrets/", "configmaps/"} <= (
            set(resources)
        )
        assert set(resources) <= set(RESOURCES)


def test_secrets_and_configmaps_narrowed_to_namespaces() -> None:
    resources = read_resources("pods", ("web", "shop", "web"), ("edge-routes",))
    assert [r for r in resources if r.startswith("secrets/")] == ["secrets/shop/", "secrets/web/"]
    assert [r for r in resources if r.startswith("configmaps/")] == ["configmaps/edge-routes/"]


@pytest.mark.parametrize("namespace", ["", "Shop", "a/b", "x" * 64, "../secrets"])
def test_a_namespace_that_kubernetes_could_not_name_is_refused(namespace: str) -> None:
    with pytest.raises(InvalidValue, match="namespace of Secrets"):
        read_resources("pods", (namespace,))


def test_the_configuration_names_the_key_of_a_bad_namespace() -> None:
    with pytest.raises(ConfigError, match="catalog: namespace of ConfigMaps"):
        load_config(document={"catalog": {"configmap_namespaces": ["Bad"]}}, environ={})


def test_the_source_lists_exactly_the_prefixes_the_configuration_reads() -> None:
    config = load_config(
        document={
            "etcd": {"prefix": "/cluster-a"},
            "catalog": {"mode": "nodeport", "secret_namespaces": ["shop"]},
        },
        environ={},
    )
    prefixes = read_prefixes(config)
    assert "/cluster-a/secrets/shop/" in prefixes and "/cluster-a/secrets/" not in prefixes
    assert "/breakwater/routes/" in prefixes  # plain routes, outside the key prefix
    source = EtcdSource(config.etcd, configured_resources(config))
    assert [p.decode() for p in source.prefixes] == prefixes
