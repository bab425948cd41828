"""Routes, Services and certificates change through HAProxy's runtime API: no reload,
served at once, and a reload from the files written meanwhile serves exactly the same.

A real HAProxy (master-worker) on loopback, brought to catalogs by the HAProxyTarget the
watcher uses; no etcd (the catalog is what changes here).
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from builders import self_signed
from cryptography import x509
from cryptography.x509.oid import NameOID
from harness import HAProxy, http_get

from breakwater.catalog import Backend, BackendOptions, Catalog, Certificate, Route, Server
from breakwater.catalog.tls import certificate_file_name
from breakwater.targets.haproxy import RENAME_LULL, HAProxyTarget
from breakwater.targets.haproxy_api import reload
from breakwater.targets.staging import ApplyResult


def certificate(readable: str, host: str) -> Certificate:
    crt, key = self_signed(host)
    pem = crt.decode() + key.decode()
    return Certificate(certificate_file_name(readable, pem), pem, f"Secret edge/{readable}")


def backend(name: str, *servers: tuple[str, int]) -> Backend:
    ready = tuple(Server(address, port, "ready") for address, port in servers)
    return Backend(f"be_{name}_http", "edge", name, "http", BackendOptions(), ready)


def route(host: str, backend_name: str, path: str = "/") -> Route:
    return Route(host, path, "prefix", backend_name, f"Ingress edge/{host}")


class Edge:
    """The target and one event loop for the whole test (its runtime session lives on it)."""

    def __init__(self, haproxy: HAProxy) -> None:
        self.haproxy = haproxy
        self.runner = asyncio.Runner()
        self.target = HAProxyTarget(haproxy.settings, reload_timeout=20)

    def apply(self, catalog: Catalog) -> ApplyResult:
        result = self.runner.run(self.target.apply(catalog))
        assert result.action in ("reload", "runtime", "none"), result.detail
        return result

    def flush(self, catalog: Catalog) -> None:
        """The file written after runtime changes, as the watcher does once they stop."""
        result = self.runner.run(self.target.flush(catalog))
        assert result.action in ("written", "none"), result.detail

    def reload(self) -> None:
        """A reload from the files on disk, as an operator's or a handler's would be."""
        self.runner.run(reload(self.haproxy.settings.master_socket, 20))

    def close(self) -> None:
        self.runner.run(self.target.close())
        self.runner.close()

    def stats(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.haproxy.settings.stats_socket)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def served_by(self, host: str, path: str = "/") -> str:
        status, body = http_get(self.haproxy.http_port, host, path)
        return body.split()[0] if status == 200 else str(status)

    def tls_subject(self, host: str) -> str:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        address = ("127.0.0.1", self.haproxy.https_port)
        with (
            socket.create_connection(address, 5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        names = x509.load_der_x509_certificate(der).subject
        return str(names.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    def served(self) -> dict[str, object]:
        """What HAProxy serves, in terms a reload does not rename: each route map's
        entries, each server's place, address and state, each certificate's names,
        serial and place in the crt-list (the first is served to clients without SNI)."""
        generation = re.compile(r"/gen-[0-9a-f]{16}/")
        maps = {}
        for line in self.stats("show map").splitlines():
            found = re.search(r"\((\S+/(routes-\w+\.map))\)", line)
            if found:
                entries = self.stats(f"show map {found[1]}").splitlines()
                maps[found[2]] = sorted(" ".join(entry.split()[1:]) for entry in entries if entry)
        servers = []
        for line in self.stats("show servers state").splitlines():
            fields = line.split()
            if len(fields) < 19 or not fields[0].isdigit():
                continue
            admin = int(fields[6])
            # backend, server, address, port, in maintenance, draining, weight
            maint, drain = bool(admin & 0x23), bool(admin & 0x18)
            servers.append((fields[1], fields[3], fields[4], fields[18], maint, drain, fields[7]))
        crt_lists = [
            line for line in self.stats("show ssl crt-list").splitlines() if "crt-list" in line
        ]
        certificates = []
        for crt_list in crt_lists:
            entries = self.stats(f"show ssl crt-list {crt_list}").splitlines()[1:]
            for entry in (e for e in entries if e.strip()):
                detail = self.stats(f"show ssl cert {entry.split()[0]}")
                serial = re.search(r"^Serial: (\S+)", detail, re.MULTILINE)
                certificates.append((generation.sub("/", entry), serial[1] if serial else None))
        return {"maps": maps, "servers": sorted(servers), "certificates": certificates}


@pytest.fixture
def edge(haproxy: HAProxy) -> Iterator[Edge]:
    edge = Edge(haproxy)
    yield edge
    edge.close()


def test_routes_services_and_certificates_change_without_a_reload(edge, backends) -> None:
    pods = [backends(f"pod{i}") for i in range(3)]
    shop = backend("shop", pods[0].endpoint)
    default = certificate("a-default", "default.example")
    catalog = Catalog(
        routes=[route("shop.example", shop.name)],
        backends={shop.name: shop},
        certificates={default.name: default},
    )
    assert edge.apply(catalog).action == "reload"  # the first: the file had no routes
    worker = edge.haproxy.worker_pid()
    assert edge.served_by("shop.example") == "pod0"

    # A new host and a new path to an existing Service: the route maps, at runtime.
    catalog.routes += [route("www.example", shop.name), route("shop.example", shop.name, "/api")]
    assert edge.apply(catalog).action == "runtime"
    assert edge.served_by("www.example") == "pod0"
    assert edge.served_by("shop.example", "/api/x") == "pod0"

    # Maps past what HAProxy's CLI takes in one command (16 KiB): sent in chunks.
    catalog.routes += [route(f"bulk{i}.example", shop.name) for i in range(600)]
    assert edge.apply(catalog).action == "runtime"
    assert edge.served_by("bulk0.example") == edge.served_by("bulk599.example") == "pod0"

    # A route to a new Service: a spare section takes it, its servers first.
    blog = backend("blog", pods[1].endpoint, pods[2].endpoint)
    catalog.backends[blog.name] = blog
    catalog.routes.append(route("blog.example", blog.name))
    result = edge.apply(catalog)
    assert result.action == "runtime", result.detail
    assert {edge.served_by("blog.example") for _ in range(6)} == {"pod1", "pod2"}
    edge.flush(catalog)
    config = Path(edge.haproxy.settings.config_file).read_text()
    assert re.search(r"^backend bw_spare_\d+\n    # serves be_blog_http\n", config, re.MULTILINE)
    # Its endpoints change like any other backend's: the servers-only path, in the spare.
    catalog.backends[blog.name] = replace(blog, servers=(Server(*pods[0].endpoint, "ready"),))
    result = edge.runner.run(edge.target.apply(catalog, servers_only=[blog.name]))
    assert result.action == "runtime", result.detail
    assert edge.target.stale_since is not None  # that path: the file is written later
    assert {edge.served_by("blog.example") for _ in range(6)} == {"pod0"}
    catalog.backends[blog.name] = blog
    assert edge.runner.run(edge.target.apply(catalog, servers_only=[blog.name])).action == "runtime"
    assert {edge.served_by("blog.example") for _ in range(6)} == {"pod1", "pod2"}

    # A new certificate, and a renewed one: loaded and in the crt-list.
    blog_tls = certificate("blog", "blog.example")
    catalog.certificates[blog_tls.name] = blog_tls
    assert edge.apply(catalog).action == "runtime"
    assert edge.tls_subject("blog.example") == "blog.example"
    renewed = certificate("blog", "blog.example")
    del catalog.certificates[blog_tls.name]
    catalog.certificates[renewed.name] = renewed
    assert edge.apply(catalog).action == "runtime"
    assert edge.tls_subject("default.example") == "default.example"
    assert blog_tls.name not in edge.stats("show ssl cert")
    assert renewed.name in edge.stats("show ssl cert")

    # Routes removed, a Service gone: 404 at once, its section kept without servers.
    catalog.routes = [r for r in catalog.routes if r.host != "www.example"]
    assert edge.apply(catalog).action == "runtime"
    assert edge.served_by("www.example") == "404"
    del catalog.backends[shop.name]
    catalog.routes = [r for r in catalog.routes if r.backend != shop.name]
    assert edge.apply(catalog).action == "runtime"
    assert edge.served_by("shop.example") == "404"
    assert edge.served_by("blog.example") in ("pod1", "pod2")

    assert edge.haproxy.worker_pid() == worker  # no reload through all of it

    # What still reloads: an option of a backend.
    slow = BackendOptions(timeout_server="5m")
    catalog.backends[blog.name] = replace(blog, options=slow)
    result = edge.apply(catalog)
    assert (result.action, result.cause) == ("reload", "config")
    config = Path(edge.haproxy.settings.config_file).read_text()
    assert "backend be_blog_http\n" in config and "# serves" not in config  # renamed
    assert {edge.served_by("blog.example") for _ in range(6)} == {"pod1", "pod2"}


def test_a_runtime_change_haproxy_refuses_is_reloaded_whole(edge, backends) -> None:
    pod = backends("pod0")
    shop = backend("shop", pod.endpoint)
    catalog = Catalog(routes=[route("shop.example", shop.name)], backends={shop.name: shop})
    edge.apply(catalog)
    worker = edge.haproxy.worker_pid()
    # HAProxy is reloaded behind the target's back from another file: its maps now have
    # other names, and the runtime change is refused -- the target reloads instead.
    config_file = Path(edge.haproxy.settings.config_file)
    original = config_file.read_text()
    generation = re.search(r"/(gen-[0-9a-f]{16})/", original)
    assert generation is not None
    config_dir = Path(edge.haproxy.settings.config_dir)
    shutil.copytree(config_dir / generation[1], config_dir / "gen-ffffffffffffffff")
    config_file.write_text(original.replace(generation[1], "gen-ffffffffffffffff"))
    edge.reload()
    assert edge.haproxy.worker_pid() != worker
    config_file.write_text(original)
    catalog.routes.append(route("www.example", shop.name))
    result = edge.apply(catalog)
    assert (result.action, result.cause) == ("reload", "runtime-refused")
    assert edge.served_by("www.example") == "pod0"
    assert edge.served_by("shop.example") == "pod0"


KINDS = ["route", "route", "move", "unroute", "service", "gone", "servers", "tls"]


def test_runtime_changes_then_a_reload_from_the_files_serve_the_same(edge, backends) -> None:
    """Item 5 of the issue: a few hundred random runtime-only changes (routes added,
    moved and removed, Services added and removed, servers moved, certificates added,
    renewed and removed), then a reload from the files on disk: the maps, the servers
    and the certificates HAProxy serves are the same before and after."""
    rng = random.Random(14)
    pods = [backends(f"pod{i}") for i in range(6)]
    default = certificate("a-default", "default.example")
    catalog = Catalog(certificates={default.name: default})
    services: list[str] = []

    def add_service() -> None:
        name = f"svc{len(services)}"
        services.append(name)
        servers = rng.sample([p.endpoint for p in pods], rng.randint(1, 3))
        new = backend(name, *servers)
        catalog.backends[new.name] = new
        catalog.routes.append(route(f"{name}.example", new.name))

    for _ in range(4):
        add_service()
    assert edge.apply(catalog).action == "reload"
    worker = edge.haproxy.worker_pid()
    hosts = 0
    actions: list[str] = []
    for _step in range(300):
        live = list(catalog.backends)
        kind = rng.choice(
            ["route", "route", "move", "unroute", "service", "gone", "servers", "tls"]
        )
        if kind == "route" or not catalog.routes:
            hosts += 1
            path = rng.choice(["/", "/api", "/static"])
            catalog.routes.append(route(f"h{hosts}.example", rng.choice(live), path))
        elif kind == "move":
            index = rng.randrange(len(catalog.routes))
            old = catalog.routes[index]
            catalog.routes[index] = route(old.host, rng.choice(live), old.path)
        elif kind == "unroute" and len(catalog.routes) > 4:
            catalog.routes.pop(rng.randrange(len(catalog.routes)))
        elif kind == "service" and len(services) < 40:
            add_service()
        elif kind == "gone" and len(live) > 3:
            gone = rng.choice(live)
            del catalog.backends[gone]
            catalog.routes = [r for r in catalog.routes if r.backend != gone]
        elif kind == "servers":
            name = rng.choice(live)
            servers = rng.sample([p.endpoint for p in pods], rng.randint(1, 5))
            catalog.backends[name] = backend(name[3:-5], *servers)
        elif kind == "tls":
            extra = [name for name in catalog.certificates if name != default.name]
            if extra and rng.random() < 0.5:
                del catalog.certificates[rng.choice(extra)]
            else:
                hosts += 1
                added = certificate(f"c{hosts}", f"h{hosts}.example")
                catalog.certificates[added.name] = added
        result = edge.apply(catalog)
        actions.append(result.action)
    assert edge.haproxy.worker_pid() == worker, "a change took a reload"
    assert actions.count("runtime") > 250
    before = edge.served()
    assert len(before["servers"]) > 100 and before["certificates"]
    edge.flush(catalog)  # the file, written once the changes stop

    edge.reload()
    assert edge.haproxy.worker_pid() != worker
    after = edge.served()
    assert after == before
    # And the target goes on at runtime after that outside reload.
    catalog.routes.append(route("after.example", next(iter(catalog.backends))))
    assert edge.apply(catalog).action == "runtime"


def spare_edge(
    haproxy: HAProxy, backends: Any, spares: int, rename_after: float
) -> tuple[Edge, Catalog, Callable[[str], ApplyResult]]:
    """An edge with ``spares`` spare sections, and a function that routes a new Service
    (``<name>.example``, one server of two pods in turn) and applies the result."""
    pods = [backends(f"pod{i}") for i in range(2)]
    edge = Edge(haproxy)
    edge.target.settings = replace(
        haproxy.settings, spare_backends=spares, rename_after=rename_after
    )
    catalog = Catalog()

    def add(name: str) -> ApplyResult:
        new = backend(name, pods[len(catalog.backends) % 2].endpoint)
        catalog.backends[new.name] = new
        catalog.routes.append(route(f"{name}.example", new.name))
        return edge.apply(catalog)

    return edge, catalog, add


def test_spares_in_use_are_renamed_by_a_reload_when_quiet_or_running_out(haproxy, backends) -> None:
    edge, catalog, add = spare_edge(haproxy, backends, spares=4, rename_after=0.5)
    try:
        assert add("base").action == "reload"  # the first route: four spares rendered
        assert add("one").action == "runtime"
        due = edge.target.flush_due(1.0, 10.0)
        assert due is not None  # the rename, once routes are quiet for rename_after
        # The first flush writes the file the runtime changes left stale; no rename yet.
        assert edge.runner.run(edge.target.flush(catalog)).action == "written"
        time.sleep(0.6)
        result = edge.runner.run(edge.target.flush(catalog))
        assert (result.action, result.cause) == ("reload", "rename")
        config = Path(haproxy.settings.config_file).read_text()
        assert "backend be_one_http\n" in config and "# serves" not in config
        assert edge.served_by("one.example") == "pod1"
        assert edge.target.flush_due(1.0, 10.0) is None

        # Spares running out: the rename comes at the next flush, whatever the quiet.
        edge.target.settings = replace(edge.target.settings, rename_after=3600)
        for name in ("two", "three", "four"):
            assert add(name).action == "runtime"
        shape = edge.target.shape
        assert shape is not None and shape.free_spares() == 1  # a quarter: not fewer yet
        assert edge.target.rename_at is not None and edge.target.rename_at > time.monotonic()
        assert add("five").action == "runtime"  # the last one
        assert edge.target.rename_at is not None and edge.target.rename_at <= time.monotonic()
        # One past that finds none before the flush comes: a reload of its own.
        result = add("six")
        assert (result.action, result.cause) == ("reload", "spares")
        assert all(edge.served_by(f"{n}.example").startswith("pod") for n in ("five", "six"))
    finally:
        edge.close()


def test_spares_running_low_are_renamed_in_a_lull_and_at_once_when_nearly_out(
    haproxy, backends
) -> None:
    """Fewer than a quarter idle: the rename waits for a lull in route changes (a
    reload in a burst would hold its next change), at most RENAME_LULL_MAX; fewer than
    an eighth: at once."""
    edge, catalog, add = spare_edge(haproxy, backends, spares=8, rename_after=3600)
    try:
        assert add("base").action == "reload"  # eight spares rendered
        for index in range(6):
            assert add(f"app{index}").action == "runtime"
        assert edge.target.rename_at is not None
        assert edge.target.rename_at > time.monotonic() + 60  # two idle: once quiet
        started = time.monotonic()
        assert add("app6").action == "runtime"  # one idle of eight: running low
        due = edge.target.rename_at
        assert due is not None and started < due <= time.monotonic() + RENAME_LULL
        # A flush before the lull writes the file, and renames nothing.
        assert edge.runner.run(edge.target.flush(catalog)).action == "written"
        assert edge.target.shape is not None and edge.target.shape.serving
        time.sleep(max(0.0, due - time.monotonic()) + 0.05)
        result = edge.runner.run(edge.target.flush(catalog))
        assert (result.action, result.cause) == ("reload", "rename")
        assert edge.target.shape is not None and not edge.target.shape.serving
        assert edge.served_by("app6.example").startswith("pod")

        # Nearly out (fewer than an eighth idle): at once.
        for index in range(7, 20):
            assert add(f"app{index}").action in ("runtime", "reload")
            shape = edge.target.shape
            if shape is not None and shape.spares and shape.free_spares() * 8 < shape.spares:
                assert edge.target.rename_at is not None
                assert edge.target.rename_at <= time.monotonic()
                break
        else:
            raise AssertionError("the spares never ran out")
    finally:
        edge.close()


def test_a_route_change_does_not_wait_for_the_file_and_the_file_catches_up(edge, backends) -> None:
    """The deferred file write renders beside route changes: one that comes while it
    renders is applied at once, what was rendered is dropped, and the next write
    (holding route changes while it renders) leaves the file saying what runs."""
    pod = backends("pod")
    catalog = Catalog()
    for index in range(3):
        new = backend(f"app{index}", pod.endpoint)
        catalog.backends[new.name] = new
        catalog.routes.append(route(f"app{index}.example", new.name))
    assert edge.apply(catalog).action == "reload"
    catalog.routes.append(route("late.example", "be_app0_http"))
    assert edge.apply(catalog).action == "runtime"  # the file is now stale
    moved = Catalog(
        routes=[*catalog.routes, route("later.example", "be_app1_http")],
        backends=dict(catalog.backends),
    )

    async def flush_with_a_change_meanwhile() -> tuple[ApplyResult, ApplyResult]:
        flushing = asyncio.ensure_future(edge.target.flush(catalog))
        await asyncio.sleep(0)  # the flush has copied what runs and renders in a thread
        change = await edge.target.apply(moved)
        return await flushing, change

    flushed, change = edge.runner.run(flush_with_a_change_meanwhile())
    assert change.action == "runtime"  # not held by the render
    assert flushed.action == "none"  # overtaken: what it rendered was dropped
    assert edge.target.stale_since is not None

    def file_routes() -> str:  # the prefix map the file names
        config = Path(edge.target.file.path).read_text()
        return Path(re.search(r"map_beg\((\S+)\)", config)[1]).read_text()

    assert "late.example/" not in file_routes()  # nothing was written
    assert edge.runner.run(edge.target.flush(moved)).action == "written"
    assert edge.target.stale_since is None
    assert "late.example/" in file_routes() and "later.example/" in file_routes()
    edge.reload()  # from the file alone: it serves what ran
    assert edge.served_by("later.example") == "pod"
    assert edge.served_by("late.example") == "pod"

    # A change that writes the file itself (an option: a reload) while a write renders:
    # the file is left as that change wrote it, and not marked stale again.
    moved.routes.append(route("last.example", "be_app2_http"))
    assert edge.apply(moved).action == "runtime"
    options = replace(moved.backends["be_app2_http"].options, timeout_server="7s")
    reloaded = Catalog(
        routes=list(moved.routes),
        backends={
            **moved.backends,
            "be_app2_http": replace(moved.backends["be_app2_http"], options=options),
        },
    )

    async def flush_with_a_reload_meanwhile() -> tuple[ApplyResult, ApplyResult]:
        flushing = asyncio.ensure_future(edge.target.flush(moved))
        await asyncio.sleep(0)
        change = await edge.target.apply(reloaded)
        return await flushing, change

    flushed, change = edge.runner.run(flush_with_a_reload_meanwhile())
    assert (change.action, flushed.action) == ("reload", "none")
    assert edge.target.stale_since is None  # the reload's file says what runs
    assert "timeout server 7s" in Path(edge.target.file.path).read_text()


def test_an_idle_runtime_session_does_not_keep_an_old_worker_alive(edge, backends) -> None:
    """HAProxy lets an old worker go once its connections close; the target's session
    is closed when idle, so a reload from outside (a handler, an operator) is not held
    up by it for ``stats timeout``."""
    pod = backends("pod0")
    shop = backend("shop", pod.endpoint)
    catalog = Catalog(routes=[route("shop.example", shop.name)], backends={shop.name: shop})
    edge.apply(catalog)
    catalog.routes.append(route("www.example", shop.name))
    assert edge.apply(catalog).action == "runtime"  # the session is open now
    edge.flush(catalog)  # as the watcher does once changes stop
    edge.reload()
    edge.runner.run(asyncio.sleep(2.5))  # the watcher's loop runs on: the idle close, 2 s
    deadline = time.monotonic() + 5  # well before hard-stop-after (10 s here)
    while "# old workers" in (text := edge.haproxy.master("show proc")) and re.search(
        r"# old workers\n\d+", text
    ):
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert edge.served_by("www.example") == "pod0"
