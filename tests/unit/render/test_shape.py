"""Backend sections: spares taken by new Services, sections kept for gone ones, the
placement read back from a rendered file, and what is structural."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from breakwater.catalog import Backend, BackendOptions, Catalog, Certificate, Route, Server
from breakwater.render.haproxy import render_shaped
from breakwater.render.shape import (
    Shape,
    fresh_shape,
    kept_options,
    place,
    sectioned,
    shape_from_config,
    spare_count,
)
from breakwater.render.slots import layout_from_config, structure_of
from breakwater.targets.settings import HAProxySettings

SETTINGS = HAProxySettings(spare_backends=4)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tls"
SERVER = Server("10.0.0.1", 80, "ready")


def backend(name: str, options: BackendOptions | None = None) -> Backend:
    return Backend(f"be_ns_{name}_http", "ns", name, "http", options or BackendOptions(), (SERVER,))


def catalog_of(*names: str) -> Catalog:
    backends = {b.name: b for b in (backend(name) for name in names)}
    routes = [Route(f"{name}.example", "/", "prefix", f"be_ns_{name}_http", "x") for name in names]
    return Catalog(routes=routes, backends=backends)


def test_spares_are_a_minimum_or_a_quarter_of_the_backends() -> None:
    assert spare_count(10, 64) == 64
    assert spare_count(1000, 64) == 256  # 1024 / 4
    assert spare_count(10_000, 64) == 4096
    assert spare_count(10, 0) == 0
    shape = fresh_shape(catalog_of("a", "b"), 4)
    assert shape.sections == (
        "be_ns_a_http",
        "be_ns_b_http",
        *(f"bw_spare_{i}" for i in (1, 2, 3, 4)),
    )
    assert shape.serving == {} and shape.free_spares() == 4


def test_a_new_service_takes_the_first_idle_spare_and_keeps_it() -> None:
    live = fresh_shape(catalog_of("a"), 4)
    placed = place(catalog_of("a", "b"), live)
    assert placed is not None
    assert placed.sections == live.sections  # nothing moves
    assert placed.serving == {"bw_spare_1": "be_ns_b_http"}
    again = place(catalog_of("a", "b", "c"), placed)
    assert again is not None
    assert again.serving == {"bw_spare_1": "be_ns_b_http", "bw_spare_2": "be_ns_c_http"}


def test_a_gone_service_keeps_its_section_and_so_does_a_spare_it_used() -> None:
    live = place(catalog_of("a", "b"), fresh_shape(catalog_of("a"), 4))
    assert live is not None
    placed = place(catalog_of("b"), live)
    assert placed is not None
    assert placed.kept == {"be_ns_a_http": BackendOptions()}
    slow = BackendOptions(timeout_server="5m")
    old = Catalog(backends={"be_ns_a_http": backend("a", slow)})
    assert kept_options(placed, old).kept == {"be_ns_a_http": slow}
    # The spare b used is kept too, not idle, until the next reload: no new Service
    # takes it in the batch that lets b's routes and servers go.
    freed = place(catalog_of("a"), live)
    assert (
        freed is not None and freed.serving == {} and freed.kept == {"bw_spare_1": BackendOptions()}
    )
    assert freed.free_spares() == 3
    after = place(catalog_of("a", "c"), freed)
    assert after is not None and after.serving == {"bw_spare_2": "be_ns_c_http"}
    # The same Service back: its own section again.
    assert place(catalog_of("a", "b"), placed) == live


def test_no_idle_spare_is_no_placement() -> None:
    live = fresh_shape(catalog_of("a"), 1)
    assert place(catalog_of("a", "b"), live) is not None
    assert place(catalog_of("a", "b", "c"), live) is None
    assert place(catalog_of("a", "b"), fresh_shape(catalog_of("a"), 0)) is None


def test_the_sectioned_catalog_routes_to_sections() -> None:
    live = fresh_shape(catalog_of("a"), 2)
    catalog = catalog_of("a", "b")
    catalog.default_backend = "be_ns_b_http"
    placed = place(catalog, live)
    assert placed is not None
    sections = sectioned(catalog, placed)
    assert list(sections.backends) == ["be_ns_a_http", "bw_spare_1", "bw_spare_2"]
    assert sections.backends["bw_spare_1"].servers == (SERVER,)
    assert sections.backends["bw_spare_2"].servers == ()
    assert {r.host: r.backend for r in sections.routes} == {
        "a.example": "be_ns_a_http",
        "b.example": "bw_spare_1",
    }
    assert sections.default_backend == "bw_spare_1"


def test_a_rendered_file_gives_back_its_placement_and_slots() -> None:
    live = fresh_shape(catalog_of("a"), 2)
    placed = place(catalog_of("a", "b"), live)
    assert placed is not None
    rendered, layout = render_shaped(catalog_of("a", "b"), placed, {}, SETTINGS)
    assert "backend bw_spare_1\n    # serves be_ns_b_http\n    balance roundrobin\n" in (
        rendered.config
    )
    assert shape_from_config(rendered.config) == Shape(placed.sections, placed.serving)
    assert layout_from_config(rendered.config) == layout
    # Rendered again under what it gives back: the same bytes.
    again, _ = render_shaped(
        catalog_of("a", "b"), shape_from_config(rendered.config), layout, SETTINGS
    )
    assert again.config == rendered.config


def test_a_spare_in_use_is_structural_only_through_its_options() -> None:
    live = fresh_shape(catalog_of("a"), 2)
    before, layout = render_shaped(catalog_of("a"), live, {}, SETTINGS)
    base = structure_of(before.config, layout)[0]
    placed = place(catalog_of("a", "b"), live)
    assert placed is not None
    taken, layout = render_shaped(catalog_of("a", "b"), placed, layout, SETTINGS)
    assert structure_of(taken.config, layout)[0] == base
    assert taken.generation_dir != before.generation_dir  # its maps changed
    checked = catalog_of("a", "b")
    checked.backends["be_ns_b_http"] = backend("b", BackendOptions(health_check_path="/h"))
    other, layout = render_shaped(checked, placed, layout, SETTINGS)
    assert structure_of(other.config, layout)[0] != base


def test_equal_structure_keys_mean_equal_structures() -> None:
    """The watcher skips rendering haproxy.cfg on the event path when the structure key
    is unchanged: over random pairs of catalogs, equal keys must mean equal structures
    (and different structures, different keys)."""
    rng = random.Random(7)
    pem = (FIXTURES / "www.crt").read_text() + (FIXTURES / "www.key").read_text()
    names = ["a", "b", "c", "d"]

    def random_catalog() -> Catalog:
        chosen = rng.sample(names, rng.randint(1, 4))
        backends = {}
        for name in chosen:
            options = BackendOptions(
                balance=rng.choice(["roundrobin", "leastconn"]),
                timeout_server=rng.choice([None, "30s"]),
            )
            servers = tuple(Server(f"10.0.0.{i}", 80, "ready") for i in range(rng.randint(0, 3)))
            backends[f"be_ns_{name}_http"] = replace(backend(name, options), servers=servers)
        routes = [
            Route(
                rng.choice(["x.example", "*.example", "*", "y.example"]),
                rng.choice(["/", "/api"]),
                rng.choice(["prefix", "exact"]),
                rng.choice(list(backends)),
                "x",
                https_redirect=rng.random() < 0.2,
            )
            for _ in range(rng.randint(0, 4))
        ]
        certificates = {"c": Certificate("c", pem, "s")} if rng.random() < 0.5 else {}
        default = rng.choice([None, *backends])
        return Catalog(routes, backends, certificates, default)

    shape = Shape(sections=tuple(f"be_ns_{name}_http" for name in names))
    same = different = 0
    for _ in range(1500):
        first = random_catalog()
        second = random_catalog()
        # Often the same backends and options (routes, servers, certificates differ).
        if rng.random() < 0.6:
            second.backends = {
                name: replace(b, servers=second.backends.get(name, b).servers)
                for name, b in first.backends.items()
            }
            second.routes = [
                replace(r, backend=rng.choice(list(first.backends))) for r in second.routes
            ]
            second.default_backend = first.default_backend
        one, layout_one = render_shaped(first, place(first, shape), {}, SETTINGS)
        two, layout_two = render_shaped(second, place(second, shape), {}, SETTINGS)
        equal_keys = one.structure_key == two.structure_key
        equal_structures = structure_of(one.config, layout_one) == structure_of(
            two.config, layout_two
        )
        assert equal_keys == equal_structures
        same += equal_keys
        different += not equal_keys
    assert same > 20 and different > 20  # both cases were met
