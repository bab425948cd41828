"""The one line a sync logs says what changed."""

from __future__ import annotations

from breakwater.catalog import Backend, BackendOptions, Catalog, Route, Server
from breakwater.daemon.watcher import summarize


def backend(name: str, *servers: Server) -> Backend:
    return Backend(name, "shop", name, "http", BackendOptions(), servers)


def test_a_sync_names_routes_backends_and_servers_that_changed() -> None:
    web, api = backend("be_web", Server("10.0.0.1", 80, "ready")), backend("be_api")
    route = Route("www.example.com", "/", "prefix", "be_web", "Ingress shop/web")
    old = Catalog(routes=[route], backends={"be_web": web, "be_api": api})
    grown = backend("be_web", Server("10.0.0.1", 80, "ready"), Server("10.0.0.2", 80, "drain"))
    new = Catalog(routes=[], backends={"be_web": grown})
    assert summarize(old, new) == (
        "-route www.example.com/ (Ingress shop/web); -backend be_api; be_web: 2 servers (1 ready)"
    )
    assert summarize(new, new) == "no routing change"
