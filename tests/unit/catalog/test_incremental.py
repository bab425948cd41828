"""The watcher's incremental catalog must equal a full build after every change."""

from __future__ import annotations

import random
from typing import Any

import pytest
from builders import (
    READY,
    endpoint_slice,
    gateway,
    gateway_class,
    http_route,
    ingress,
    reference_grant,
    route_configmap,
    rule,
    service,
    tls_secret,
)

from breakwater.catalog import CatalogSettings, build_catalog
from breakwater.catalog.live import LiveCatalog
from breakwater.cluster.index import ClusterIndex
from breakwater.cluster.source import Change
from breakwater.cluster.state import ClusterState
from breakwater.config import Config
from breakwater.lab import storage_key, storage_value

DRAIN = {"ready": False, "serving": True, "terminating": True}
GONE = {"ready": False, "serving": False, "terminating": True}


def endpoints_object(namespace: str, name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [
            {"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}
        ],
    }


def put(state: ClusterState, obj: dict[str, Any], revision: int) -> None:
    state.apply([Change(storage_key(obj), storage_value(obj), revision)])


def delete(state: ClusterState, obj: dict[str, Any], revision: int) -> None:
    state.apply([Change(storage_key(obj), None, revision)])


def test_servers_only_changes_equal_full_builds_and_name_what_changed() -> None:
    config = Config()
    state, live = ClusterState("/registry/"), LiveCatalog()
    names = [f"svc{i}" for i in range(6)]
    revision = 1
    for name in names:
        put(state, service("ns", name), revision)
    put(state, ingress("ns", "web", [(f"{n}.example", "/", "Prefix", n) for n in names[:4]]), 2)
    put(state, route_configmap("ns", "svc4", {"hosts": "four.example"}), 3)
    # svc5 has no slice: its servers come from its Endpoints object.
    put(state, route_configmap("ns", "svc5", {"hosts": "five.example"}), 4)
    catalog, changed = live.update(state, config.catalog)
    assert changed is None  # the first build is a full one
    rng = random.Random(7)
    full_builds = 0
    for step in range(300):
        revision = 10 + step
        name = rng.choice(names)
        ips = [f"10.0.{names.index(name)}.{i}" for i in rng.sample(range(1, 9), rng.randint(0, 5))]
        action = rng.random()
        if name == "svc5":
            obj = endpoints_object("ns", name, ips)
        else:
            conditions = [rng.choice([READY, READY, DRAIN, GONE]) for _ in ips]
            obj = endpoint_slice(
                "ns", name, list(zip(ips, conditions, strict=True)), suffix=rng.choice("ab")
            )
        if action < 0.15:
            delete(state, obj, revision)
        else:
            put(state, obj, revision)
        if action > 0.95:  # now and then something that is not a server change
            put(state, service("ns", rng.choice(names)), revision)
        before = catalog
        catalog, changed = live.update(state, config.catalog)
        expected = build_catalog(state.objects.values(), config.catalog)
        assert catalog == expected, f"step {step}"
        if changed is None:
            full_builds += 1
            continue
        differing = sorted(
            name for name, backend in catalog.backends.items() if before.backends[name] != backend
        )
        assert sorted(changed) == differing, f"step {step}"
    assert 0 < full_builds < 40  # most steps took the incremental path


def test_an_undecodable_slice_is_reported_and_its_servers_go() -> None:
    config = Config()
    state, live = ClusterState("/registry/"), LiveCatalog()
    put(state, service("ns", "web"), 1)
    put(state, ingress("ns", "web", [("web.example", "/", "Prefix", "web")]), 2)
    good = endpoint_slice("ns", "web", [("10.0.0.1", READY)])
    put(state, good, 3)
    catalog, _ = live.update(state, config.catalog)
    assert [s.address for s in catalog.backends["be_ns_web_http"].servers] == ["10.0.0.1"]
    state.apply([Change(storage_key(good), b"k8s\x00\x0a\x03bad", 4)])
    catalog, changed = live.update(state, config.catalog)
    assert changed is None
    assert catalog.backends["be_ns_web_http"].servers == ()
    assert [r.object for r in catalog.rejected] == [storage_key(good)]
    put(state, good, 5)
    catalog, _ = live.update(state, config.catalog)
    assert catalog.rejected == []
    assert [s.address for s in catalog.backends["be_ns_web_http"].servers] == ["10.0.0.1"]


def test_full_builds_that_reuse_servers_equal_fresh_builds() -> None:
    """After a route change the watcher rebuilds the catalog taking the servers of
    unchanged Service ports from the build before; it must equal a fresh build, as
    Services, slices (some malformed), Endpoints and routes change in any order."""
    config = Config()
    state, live = ClusterState("/registry/"), LiveCatalog()
    names = [f"svc{i}" for i in range(5)]
    for name in names:
        put(state, service("ns", name), 1)
    live.update(state, config.catalog)
    rng = random.Random(11)
    reused = 0
    previous: dict[Any, Any] = {}
    for step in range(400):
        revision = 10 + step
        name = rng.choice(names)
        action = rng.random()
        if action < 0.3:  # routes: an Ingress naming some Services, or gone
            chosen = rng.sample(names, rng.randint(1, 3))
            obj = ingress(
                "ns",
                f"ing{rng.randint(0, 3)}",
                [(f"{n}.example", "/", "Prefix", n) for n in chosen],
            )
            (delete if rng.random() < 0.2 else put)(state, obj, revision)
        elif action < 0.4:
            put(state, route_configmap("ns", name, {"hosts": f"{name}.cm.example"}), revision)
        elif action < 0.5:  # the Service itself: a new object, or gone
            (delete if rng.random() < 0.2 else put)(state, service("ns", name), revision)
        elif action < 0.6:
            put(state, endpoints_object("ns", name, [f"10.1.0.{rng.randint(1, 9)}"]), revision)
        else:
            ips = [
                f"10.0.{names.index(name)}.{i}" for i in rng.sample(range(1, 9), rng.randint(0, 4))
            ]
            if rng.random() < 0.05:
                ips.append("not-an-ip")  # a malformed slice: rejected by name
            conditions = [rng.choice([READY, DRAIN]) for _ in ips]
            obj = endpoint_slice("ns", name, list(zip(ips, conditions, strict=True)), suffix="a")
            (delete if rng.random() < 0.15 else put)(state, obj, revision)
        state.structural = True  # a full build every time, reusing what it can
        catalog, changed = live.update(state, config.catalog)
        assert changed is None
        expected = build_catalog(state.objects.values(), config.catalog)
        assert catalog == expected, f"step {step}"
        assert catalog.server_problems == expected.server_problems, f"step {step}"
        assert catalog.servers_rejected == expected.servers_rejected, f"step {step}"
        reused += sum(
            1 for key, entry in catalog.server_entries.items() if previous.get(key) is entry
        )
        previous = catalog.server_entries
    assert reused > 300  # servers were taken from the build before, not recomputed


def refs(catalog: Any) -> dict[tuple[str, str], set[tuple[str, int | str]]]:
    """Which backends to recompute when a Service's servers change (in no order)."""
    return {service: set(backends) for service, backends in catalog.server_refs.items()}


def built_from(
    previous: Any, index: ClusterIndex, settings: CatalogSettings, objects: list[Any], step: int
) -> Any:
    """The catalog built from ``previous`` as the watcher builds it, checked against a
    fresh build of ``objects``: the same catalog and the same bookkeeping."""
    catalog = build_catalog(index, settings, reuse=previous)
    index.settle()
    expected = build_catalog(objects, settings)
    assert catalog == expected, f"step {step}"
    assert catalog.certificates == expected.certificates, f"step {step}"
    assert catalog.server_problems == expected.server_problems, f"step {step}"
    assert catalog.servers_rejected == expected.servers_rejected, f"step {step}"
    assert refs(catalog) == refs(expected), f"step {step}"
    return catalog


class Objects:
    """The objects of a cluster and the index the watcher keeps of them, updated in
    place together (an object replaced is a new object, as etcd's next value is)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.index = ClusterIndex()

    @staticmethod
    def key(obj: dict[str, Any]) -> tuple[str, str, str]:
        metadata = obj["metadata"]
        return obj["kind"], metadata.get("namespace", ""), metadata["name"]

    def put(self, obj: dict[str, Any]) -> None:
        self.remove(obj)
        self.objects[self.key(obj)] = obj
        self.index.add(obj)

    def remove(self, obj: dict[str, Any]) -> None:
        old = self.objects.pop(self.key(obj), None)
        if old is not None:
            self.index.discard(old)

    def values(self) -> list[dict[str, Any]]:
        return list(self.objects.values())


HOSTS = ["a.example", "b.example", "c.example", "d.example"]
SERVICES = [f"svc{i}" for i in range(5)]
STAMPS = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]


def _random_ingress(rng: random.Random, name: str) -> dict[str, Any]:
    rules = [
        (
            rng.choice(HOSTS),
            rng.choice(["/", "/a", "/a/b", "bad//path"]),
            rng.choice(["Prefix", "Prefix", "Exact"]),
            rng.choice([*SERVICES, "missing"]),
        )
        for _ in range(rng.randint(1, 3))
    ]
    annotations: dict[str, str] = {}
    if rng.random() < 0.3:
        annotations["breakwater.io/balance"] = rng.choice(["leastconn", "source"])
    if rng.random() < 0.05:
        annotations["breakwater.io/no-such-option"] = "x"
    tls = None
    if rng.random() < 0.4:
        tls = [{"hosts": [rules[0][0]], "secretName": rng.choice(["sec0", "sec1", "nosuch"])}]
    default = rng.choice(SERVICES) if rng.random() < 0.15 else None
    return ingress(
        "ns",
        name,
        rules,
        created=rng.choice(STAMPS),
        annotations=annotations,
        tls=tls,
        default=default,
    )


def _random_source(rng: random.Random) -> dict[str, Any]:
    """One object of a small cluster whose objects claim the same hosts, name the same
    Services and Secrets, and disagree on options: an Ingress, a route ConfigMap, a
    plain route, a Service, a slice or a Secret."""
    kind = rng.random()
    if kind < 0.4:
        return _random_ingress(rng, f"ing{rng.randint(0, 5)}")
    if kind < 0.5:
        data = {"hosts": rng.choice(HOSTS), "paths": rng.choice(["/", "/cm"])}
        if rng.random() < 0.3:
            data["port"] = rng.choice(["80", "81"])
        if rng.random() < 0.2:
            data["tls-secret"] = rng.choice(["sec0", "sec1"])
        return route_configmap("ns", rng.choice(SERVICES), data)
    if kind < 0.6:
        return {
            "kind": "BreakwaterRoute",
            "apiVersion": "breakwater.io/v1",
            "metadata": {"name": f"plain{rng.randint(0, 1)}"},
            "spec": {
                "hosts": [rng.choice(HOSTS)],
                "servers": [{"address": f"10.9.0.{rng.randint(1, 3)}", "port": 8080}],
                "balance": rng.choice(["roundrobin", "leastconn"]),
            },
        }
    if kind < 0.7:
        obj = service("ns", rng.choice(SERVICES))
        if rng.random() < 0.2:
            obj["spec"]["ports"][0]["protocol"] = "UDP"  # its servers are refused
        return obj
    if kind < 0.85:
        name = rng.choice(SERVICES)
        ips = [f"10.0.{SERVICES.index(name)}.{i}" for i in range(rng.randint(0, 3))]
        if rng.random() < 0.1:
            ips.append("not-an-ip")
        return endpoint_slice("ns", name, [(ip, READY) for ip in ips])
    secret = tls_secret("ns", rng.choice(["sec0", "sec1"]), cert=rng.choice(["www", "other"]))
    if rng.random() < 0.2:
        secret["type"] = "Opaque"
    return secret


def test_replayed_objects_equal_fresh_builds() -> None:
    """A build replays what each unchanged object contributed the build before (its
    trace); after any sequence of changes it must equal a fresh build: the same routes
    and backends, the same winner of every conflict, the same rejections in the same
    order, the same certificates and default backend."""
    settings = CatalogSettings()
    rng = random.Random(23)
    cluster = Objects()  # the index updated in place, as the watcher's state updates it
    index, put, remove = cluster.index, cluster.put, cluster.remove

    for name in SERVICES:
        put(service("ns", name))
    previous = build_catalog(index, settings)
    index.settle()
    replayed = recorded = conflicts = 0
    for step in range(1500):
        for _ in range(rng.randint(1, 2)):
            obj = _random_source(rng)
            (remove if rng.random() < 0.15 else put)(obj)
        catalog = built_from(previous, index, settings, cluster.values(), step)
        for source, trace in catalog.traces.items():
            if trace.conflicted:
                continue  # never replayed: the claim it lost may be gone
            if previous.traces.get(source) is trace:
                replayed += 1
            else:
                recorded += 1
        conflicts += sum(1 for r in catalog.rejected if "already routed by" in r.reason)
        previous = catalog
    # Most objects were replayed, not parsed again; and conflicts were met throughout.
    assert replayed > 5 * recorded
    assert conflicts > 500


def test_objects_added_one_by_one_build_from_where_the_last_build_ended() -> None:
    """New Ingresses and route ConfigMaps, each with a new Service (or one others route
    to) and sometimes a new Secret: a clean one is built from where the build before
    ended; one that claims a taken host, keeps other options, sets a default backend
    or is rejected takes the full build.  Every result equals a fresh build."""
    settings = CatalogSettings()
    rng = random.Random(31)
    cluster = Objects()
    index, put = cluster.index, cluster.put

    for name in SERVICES:
        put(service("ns", name))
        put(endpoint_slice("ns", name, [(f"10.0.{SERVICES.index(name)}.1", READY)]))
    previous = build_catalog(index, settings)
    index.settle()
    grown = full = 0
    secrets: list[str] = []
    for step in range(400):
        name = f"app{step}"
        if rng.random() < 0.03:  # a Service others route to gets a malformed slice
            shared = rng.choice(SERVICES)
            ips = [f"10.0.{SERVICES.index(shared)}.1", "not-an-ip"]
            put(endpoint_slice("ns", shared, [(ip, READY) for ip in ips], suffix="b"))
        target = rng.choice(SERVICES) if rng.random() < 0.3 else name
        if target == name:
            put(service("ns", name))
            if rng.random() < 0.9:
                ips = [f"10.1.{step % 250}.{i}" for i in range(1, rng.randint(1, 3) + 1)]
                if rng.random() < 0.05:
                    ips.append("not-an-ip")
                put(endpoint_slice("ns", name, [(ip, READY) for ip in ips]))
        host = rng.choice(HOSTS) if rng.random() < 0.15 else f"{name}.example"
        if rng.random() < 0.7:
            tls = None
            if rng.random() < 0.2:
                secret = f"tls-{step}"
                if secrets and rng.random() < 0.3:  # one another object brings already
                    secret = rng.choice(secrets)
                else:
                    put(tls_secret("ns", secret, cert=rng.choice(["www", "other"])))
                    secrets.append(secret)
                tls = [{"hosts": [host], "secretName": secret}]
            annotations = {}
            if rng.random() < 0.2:
                annotations["breakwater.io/balance"] = rng.choice(["leastconn", "source"])
            stamp = f"2026-02-{1 + step // 20:02d}T00:00:{step % 60:02d}Z"
            put(
                ingress(
                    "ns",
                    name,
                    [(host, rng.choice(["/", "/api"]), "Prefix", target)],
                    created=rng.choice([stamp, stamp, STAMPS[0]]),
                    annotations=annotations,
                    tls=tls,
                    default=rng.choice(SERVICES) if rng.random() < 0.05 else None,
                )
            )
        else:
            put(route_configmap("ns", target, {"hosts": host, "paths": "/cm"}))
        catalog = built_from(previous, index, settings, cluster.values(), step)
        if catalog.build_state.grown:
            grown += 1
        else:
            full += 1
        previous = catalog
    # Most new objects were clean, and built alone; the others took the full build.
    assert grown > full > 0


@pytest.mark.parametrize("refused", ["plain route", "newer Ingress"])
def test_a_new_route_an_object_was_refused_for_takes_the_full_build(refused: str) -> None:
    """An object refused for a taken route names the first taken in its own order; a
    new object claiming an earlier one of its routes changes that reason (a fresh build
    gives it to the new object), so it is not built alone."""
    settings = CatalogSettings()
    index = ClusterIndex()
    objects = [
        service("ns", "svc"),
        endpoint_slice("ns", "svc", [("10.0.0.1", READY)]),
        ingress("ns", "c", [("h.example", "/x", "Prefix", "svc")], created=STAMPS[0]),
    ]
    if refused == "plain route":
        objects.append(
            {
                "kind": "BreakwaterRoute",
                "apiVersion": "breakwater.io/v1",
                "metadata": {"name": "p"},
                "spec": {
                    "hosts": ["h.example"],
                    "paths": ["/a", "/x"],
                    "servers": [{"address": "10.9.0.1", "port": 8080}],
                },
            }
        )
    else:
        rules = [("h.example", "/a", "Prefix", "svc"), ("h.example", "/x", "Prefix", "svc")]
        objects.append(ingress("ns", "e", rules, created=STAMPS[1]))
    for obj in objects:
        index.add(obj)
    previous = build_catalog(index, settings)
    index.settle()
    assert any("is already routed by Ingress ns/c" in r.reason for r in previous.rejected)
    new = ingress("ns", "b", [("h.example", "/a", "Prefix", "svc")], created=STAMPS[1])
    index.add(new)
    catalog = built_from(previous, index, settings, [*objects, new], 0)
    assert not catalog.build_state.grown
    assert any("is already routed by Ingress ns/b" in r.reason for r in catalog.rejected)


def test_a_new_list_of_the_cluster_is_not_built_from_the_last_catalog() -> None:
    """After a list (a compaction), the objects gone meanwhile are nowhere in the new
    index: the catalog is built afresh, not grown from the last one."""
    config = Config()
    state, live = ClusterState("/registry/"), LiveCatalog()
    put(state, service("ns", "old"), 1)
    put(state, ingress("ns", "old", [("old.example", "/", "Prefix", "old")]), 2)
    catalog, _ = live.update(state, config.catalog)
    assert [r.host for r in catalog.routes] == ["old.example"]
    listed = ClusterState("/registry/")  # what a list finds: the old objects are gone
    put(listed, service("ns", "new"), 3)
    put(listed, ingress("ns", "new", [("new.example", "/", "Prefix", "new")]), 4)
    catalog, _ = live.update(listed, config.catalog)
    assert catalog == build_catalog(listed.objects.values(), config.catalog)
    assert [r.host for r in catalog.routes] == ["new.example"]


GATEWAY_NAMESPACES = ["ns", "app"]


def _random_gateway_object(rng: random.Random) -> dict[str, Any]:
    """One Gateway API object (or a Namespace, a Service, a slice) of a small cluster
    whose HTTPRoutes share hosts with each other and with Ingresses, name the same
    Services across namespaces, and attach to listeners that come and go."""
    kind = rng.random()
    if kind < 0.55:
        namespace = rng.choice(GATEWAY_NAMESPACES)
        rules = []
        for _ in range(rng.randint(1, 2)):
            match: dict[str, Any] = {}
            if rng.random() < 0.3:
                match["headers"] = [{"name": "X-Env", "value": rng.choice(["a", "b"])}]
            if rng.random() < 0.1:
                match["method"] = rng.choice(["GET", "NOTAMETHOD"])
            backends: list[tuple[str, int] | tuple[str, int, int]] = [
                (rng.choice([*SERVICES, "missing"]), 80, rng.randint(0, 3))
                for _ in range(rng.randint(1, 2))
            ]
            made = rule(*backends, path=rng.choice(["/", "/a", "/a/b"]), **match)
            if rng.random() < 0.3:
                made["backendRefs"][0]["namespace"] = "ns"  # across, from "app"
            if rng.random() < 0.15:
                made["filters"] = [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "X-Via", "value": "edge"}]},
                    }
                ]
            rules.append(made)
        parent: dict[str, Any] = {"name": rng.choice(["gw", "gw2"]), "namespace": "ns"}
        if rng.random() < 0.3:
            parent["sectionName"] = rng.choice(["http", "narrow", "nope"])
        hostnames = rng.sample(HOSTS, rng.randint(0, 2)) or None
        return http_route(
            namespace,
            f"r{rng.randint(0, 5)}",
            rules,
            hostnames,
            [parent],
            created=rng.choice(STAMPS),
        )
    if kind < 0.6:
        listeners: list[dict[str, Any]] = [
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {}}
        ]
        allowed = rng.choice(["All", "Same", "Selector"])
        listeners[0]["allowedRoutes"]["namespaces"] = {"from": allowed}
        if allowed == "Selector":
            listeners[0]["allowedRoutes"]["namespaces"]["selector"] = {
                "matchLabels": {"edge": "yes"}
            }
        if rng.random() < 0.5:
            listeners.append(
                {
                    "name": "narrow",
                    "port": 80,
                    "protocol": "HTTP",
                    "hostname": rng.choice(HOSTS),
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            )
        return gateway("ns", rng.choice(["gw", "gw2"]), listeners)
    if kind < 0.62:
        return gateway_class(controller=rng.choice(["breakwater.io/edge", "someone.else/x"]))
    if kind < 0.65:
        return reference_grant("ns", "let-app-in", "app")
    if kind < 0.68:
        labels = {"edge": "yes"} if rng.random() < 0.5 else {}
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": rng.choice(GATEWAY_NAMESPACES), "labels": labels},
        }
    if kind < 0.8:
        return _random_ingress(rng, f"ing{rng.randint(0, 2)}")
    if kind < 0.9:
        return service("ns", rng.choice(SERVICES))
    name = rng.choice(SERVICES)
    ips = [f"10.0.{SERVICES.index(name)}.{i}" for i in range(rng.randint(0, 3))]
    return endpoint_slice("ns", name, [(ip, READY) for ip in ips])


def test_replayed_httproutes_equal_fresh_builds() -> None:
    """An HTTPRoute's build is replayed while it, the Services it read and the objects
    every route reads (GatewayClasses, Gateways, ReferenceGrants, Namespaces, what the
    listeners became) are the same; after any sequence of changes the catalog -- routes,
    chains, splits, backends, rejections, the status with its attachedRoutes -- must
    equal a fresh build."""
    settings = CatalogSettings()
    rng = random.Random(47)
    cluster = Objects()  # the index updated in place, as the watcher's state updates it
    index, put, remove = cluster.index, cluster.put, cluster.remove

    for name in SERVICES:
        put(service("ns", name))
        put(endpoint_slice("ns", name, [(f"10.0.{SERVICES.index(name)}.1", READY)]))
    put(gateway_class())
    put(gateway("ns", "gw"))
    previous = build_catalog(index, settings)
    index.settle()
    replayed = recorded = 0
    for step in range(1200):
        for _ in range(rng.randint(1, 2)):
            obj = _random_gateway_object(rng)
            (remove if rng.random() < 0.12 else put)(obj)
        catalog = built_from(previous, index, settings, cluster.values(), step)
        assert catalog.gateway == build_catalog(cluster.values(), settings).gateway
        for source, trace in catalog.traces.items():
            if source[0] != "HTTPRoute" or trace.conflicted:
                continue
            if previous.traces.get(source) is trace:
                replayed += 1
            else:
                recorded += 1
        previous = catalog
    # HTTPRoutes were replayed far more often than built again, and both happened.
    assert replayed > 2 * recorded > 0
