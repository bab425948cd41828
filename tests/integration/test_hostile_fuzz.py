"""Property-based tests at the exits: any hostile object is rejected, or rendered into a
configuration that HAProxy's own checker accepts and that carries nothing injected.

Objects are good ones with one value replaced by a hostile one (a string with a
newline and a directive, quotes, ``;``, a scope, a huge number, a wrong type...),
anywhere in the object.  Each example builds the catalog beside a good route,
renders it, writes the generation directory, and runs ``haproxy -c`` on the result.

Bounded in CI; before a release run the long one:
``HYPOTHESIS_PROFILE=release pytest --timeout=0 tests/integration/test_hostile_fuzz.py``.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from builders import READY, endpoint_slice, ingress, node, route_configmap, service, tls_secret
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.catalog import CatalogSettings, build_catalog
from breakwater.render.haproxy import render_haproxy
from breakwater.render.slots import assign_slots, runtime_commands
from breakwater.targets.haproxy_api import check_command
from breakwater.targets.settings import HAProxySettings
from breakwater.targets.staging import ensure_node_state, write_generation

pytestmark = pytest.mark.integration

# Bounded in CI; HYPOTHESIS_PROFILE=release before a release (a few minutes).
PROFILE = settings(
    max_examples=5000 if os.environ.get("HYPOTHESIS_PROFILE") == "release" else 150,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Text no accepted value can render: each holds a space and a directive.
MARKERS = ("string bw-pwned", "disable frontend", "mode tcp")
DIRECTIVES = [
    "\n    http-request return status 200 content-type text/plain string bw-pwned\n",
    ";disable frontend bw_public",
    "\r\n    mode tcp",
    " mode tcp",
]
NASTY = [
    "",
    " ",
    "'",
    '"',
    "\\",
    "#",
    "$HOME",
    "%",
    "fe80::1%eth0",
    "fe80::1%x;disable frontend bw_public",
    "::ffff:10.0.0.1",
    "127.0.0.1",
    "10.0.0.1\n",
    "2001:db8::1",
    "*",
    "*.example.com",
    "example.com.",
    "a" * 300,
    "/it's",
    "/a\n",
    "/../../etc",
    "../../../escaped",
    "9999999d",
    "2147483648ms",
    "0",
    "-1",
    "65536",
    "Exact",
    "\u0130stanbul.example.com",
    "http\x00",
]
HOSTILE_STRINGS = st.one_of(
    st.sampled_from(NASTY),
    st.builds(
        lambda word, directive: word + directive,
        st.sampled_from(NASTY),
        st.sampled_from(DIRECTIVES),
    ),
    st.text(alphabet=st.sampled_from(list("az09-./:*;%#'\"\\ \t\n\r\x00\x7f\u00e9$")), max_size=40),
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_STRINGS,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([None, True, False, [], {}, [1, 2], {"a": "b"}, 1.5, float("inf")]),
)


def templates() -> list[dict[str, Any]]:
    """Objects a tenant could write, each in the shape the API server stores."""
    fuzz_ingress = ingress(
        "fuzz",
        "fuzz",
        [("fuzz.example.com", "/fuzz", "Prefix", "fuzz")],
        annotations={
            "breakwater.io/timeout-server": "30s",
            "breakwater.io/health-check-path": "/healthz",
            "breakwater.io/cache": "true",
            "breakwater.io/cache-ttl": "60s",
        },
        tls=[{"hosts": ["fuzz.example.com"], "secretName": "fuzz-tls"}],
    )
    return [
        fuzz_ingress,
        route_configmap(
            "fuzz",
            "fuzz",
            {
                "hosts": "cm.example.com",
                "paths": "/a /b",
                "exact-paths": "/c",
                "balance": "leastconn",
                "timeout-connect": "5s",
                "health-check-interval": "2s",
                "tls-secret": "fuzz-tls",
            },
        ),
        service("fuzz", "fuzz"),
        endpoint_slice("fuzz", "fuzz", [("10.9.0.1", READY)]),
        tls_secret("fuzz", "fuzz-tls"),
        node("fuzz-node", "10.9.1.1"),
    ]


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON tree: keys of mappings and indexes of lists."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


def replaced(obj: dict[str, Any], place: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    target: Any = result
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = value
    return result


@st.composite
def hostile_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    objects = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        template = draw(st.sampled_from(templates()))
        place = draw(st.sampled_from(paths_of(template)))
        objects.append(replaced(template, place, draw(HOSTILE_VALUES)))
    return objects


def good_objects() -> list[dict[str, Any]]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        ingress("shop", "good", [("good.example.com", "/", "Prefix", "web")]),
    ]


def haproxy_check(config_dir: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = config_dir / "haproxy.cfg"
    path.write_text(text)
    return subprocess.run(
        ["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=60
    )


@PROFILE
@given(objects=hostile_objects(), mode=st.sampled_from(["pods", "nodeport"]))
def test_any_hostile_object_is_rejected_or_rendered_safely(
    tmp_path_factory: pytest.TempPathFactory, objects: list[dict[str, Any]], mode: str
) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    catalog_settings = CatalogSettings(mode=mode)  # type: ignore[arg-type]
    good = good_objects()
    if mode == "nodeport":
        good[0] = service("shop", "web", node_port=30080)
        good.append(node("n1", "10.1.0.1"))
    catalog = build_catalog([*good, *objects], catalog_settings)
    assert "good.example.com" in {route.host for route in catalog.routes}, catalog.rejected
    settings = HAProxySettings(
        config_dir=str(directory / "breakwater"),
        stats_socket=str(directory / "admin.sock"),
        http_binds=("127.0.0.1:8080",),  # haproxy -c binds nothing
        https_binds=("127.0.0.1:8443",),
    )
    layout = assign_slots(catalog, {}, settings.min_slots)
    rendered = render_haproxy(catalog, layout, settings)
    assert rendered.refused == (), "validation let through what the renderer refused"
    texts = [rendered.config, *rendered.generation_files.values()]
    for marker in MARKERS:
        assert not any(marker in text for text in texts), marker
    for name in ("routes-exact.map", "routes-prefix.map"):
        for line in rendered.generation_files[name].splitlines():
            assert len(line.split()) == 2 and line.isprintable() and line.isascii(), line
    os.makedirs(settings.config_dir)
    ensure_node_state(settings.config_dir)
    write_generation(rendered)
    written = {str(p) for p in directory.rglob("*")}
    assert all(path.startswith(str(directory)) for path in written)
    check = haproxy_check(directory, rendered.config)
    assert check.returncode == 0, check.stdout + check.stderr
    empty = {name: [None] * len(slots) for name, slots in layout.items()}
    for command in runtime_commands(empty, layout) + runtime_commands(layout, empty):
        check_command(command)
