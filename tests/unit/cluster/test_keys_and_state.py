"""The API server's key layout, object identity from keys, and the state kept by key."""

from __future__ import annotations

import pytest
from builders import READY, endpoint_slice, ingress, node, service

from breakwater.catalog.live import LiveCatalog
from breakwater.cluster.index import ClusterIndex
from breakwater.cluster.keys import identity_of_key, kind_of_key, metadata_disagreement
from breakwater.cluster.source import Change
from breakwater.cluster.state import ClusterState
from breakwater.config import Config
from breakwater.lab import storage_key, storage_value
from breakwater.validate import InvalidValue


@pytest.mark.parametrize(
    ("key", "identity"),
    [
        ("/registry/services/specs/shop/web", ("Service", "shop", "web")),
        ("/registry/services/endpoints/shop/web", ("Endpoints", "shop", "web")),
        ("/registry/endpointslices/shop/web-abc12", ("EndpointSlice", "shop", "web-abc12")),
        ("/registry/ingress/shop/web", ("Ingress", "shop", "web")),
        ("/registry/minions/node-1.example", ("Node", "", "node-1.example")),
        ("/registry/ingressclasses/breakwater", ("IngressClass", "", "breakwater")),
        ("/registry/pods/shop/web", None),
    ],
)
def test_identity_of_a_key(key: str, identity: tuple[str, str, str] | None) -> None:
    assert identity_of_key(key, "/registry/") == identity


@pytest.mark.parametrize(
    "key",
    [
        "/registry/services/specs/shop",
        "/registry/services/specs/shop/web/x",
        "/registry/minions/ns/node",
        "/registry/secrets/../x",
        "/registry/services/specs/Shop/web",
        "/registry/services/specs/shop/1web",  # a Service name is an RFC 1035 label
    ],
)
def test_keys_kubernetes_could_not_have_written(key: str) -> None:
    with pytest.raises(InvalidValue):
        identity_of_key(key, "/registry/")


def test_kind_of_key_needs_the_prefix() -> None:
    assert kind_of_key("/other/services/specs/a/b", "/registry/") is None


def test_metadata_must_agree_with_the_key() -> None:
    obj = service("shop", "web")
    assert metadata_disagreement(obj, "Service", "shop", "web") is None
    assert "metadata.name" in str(metadata_disagreement(obj, "Service", "shop", "web2"))
    assert "metadata.namespace" in str(metadata_disagreement(obj, "Service", "other", "web"))
    assert "kind" in str(metadata_disagreement(obj, "Ingress", "shop", "web"))
    cluster_scoped = node("n1", "10.0.0.1")
    assert metadata_disagreement(cluster_scoped, "Node", "", "n1") is None


def test_the_index_forgets_only_the_object_it_holds() -> None:
    index = ClusterIndex()
    first, second = service("shop", "web"), service("shop", "web")
    index.add(first, ("shop", "web"))
    index.discard(second, ("shop", "web"))  # not the indexed object: kept
    assert index.get("Service", "shop", "web") is first
    index.discard(first, ("shop", "web"))
    assert index.get("Service", "shop", "web") is None


def test_slices_are_indexed_by_their_service() -> None:
    index = ClusterIndex()
    endpoint = endpoint_slice("shop", "web", [("10.0.0.1", READY)])
    index.add(endpoint, ("shop", "web-a"))
    assert list(index.slices_by_service[("shop", "web")]) == ["web-a"]
    index.discard(endpoint, ("shop", "web-a"))
    assert index.slices_by_service == {}


def test_the_state_follows_puts_and_deletes_and_knows_server_only_changes() -> None:
    state, live = ClusterState("/registry/"), LiveCatalog()
    objects = [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        ingress("shop", "web", [("a.example.com", "/", "Prefix", "web")]),
    ]
    state.apply([Change(storage_key(o), storage_value(o), i) for i, o in enumerate(objects, 1)])
    catalog, changed = live.update(state, Config().catalog)
    assert changed is None and [r.host for r in catalog.routes] == ["a.example.com"]
    moved = endpoint_slice("shop", "web", [("10.0.0.2", READY)])
    state.apply([Change(storage_key(moved), storage_value(moved), 10)])
    assert live.servers_only(state)
    catalog, changed = live.update(state, Config().catalog)
    assert changed == ["be_shop_web_http"]
    state.apply([Change(storage_key(objects[2]), None, 11)])
    assert not live.servers_only(state)
    catalog, changed = live.update(state, Config().catalog)
    assert changed is None and catalog.routes == [] and state.revision == 11
