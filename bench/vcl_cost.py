#!/usr/bin/env python3
"""VCL cost: compile and load time at 10 and 10,000 cacheable routes.

For each size, the routes are real catalog routes (Ingresses with the cache
annotation), rendered as the watcher renders them: HAProxy's route maps carry each
route's cache policy, and the VCL is rendered from the Varnish settings.  A real
varnishd then compiles (``varnishd -C``) and loads (``vcl.load`` + ``vcl.use``) the
VCL through VarnishTarget, several times, as the watcher does at start and on
SIGHUP.  Prints figures; never fails on a ratio.

    .venv/bin/python bench/vcl_cost.py [--routes 10 10000] [--loads 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import percentile
from harness import Varnish, endpoint_slice, ingress, service

from breakwater.catalog import build_catalog
from breakwater.render.haproxy import render_haproxy
from breakwater.render.slots import assign_slots
from breakwater.render.vcl import render_vcl
from breakwater.targets.settings import HAProxySettings
from breakwater.targets.varnish import VarnishTarget


def cacheable_catalog_maps(routes: int) -> int:
    """Bytes of HAProxy route maps for ``routes`` cacheable routes (where policy lives)."""
    objects = []
    for index in range(routes):
        objects += [
            service("bench", f"svc{index}"),
            endpoint_slice("bench", f"svc{index}", [(f"10.1.{index // 250}.{index % 250}", 80)]),
            ingress(
                "bench",
                f"svc{index}",
                f"svc{index}.bench.example",
                f"svc{index}",
                annotations={"breakwater.io/cache": "true", "breakwater.io/cache-ttl": "120s"},
            ),
        ]
    catalog = build_catalog(objects)
    assert sum(1 for route in catalog.routes if route.cache) == routes, catalog.rejected[:3]
    rendered = render_haproxy(catalog, assign_slots(catalog, {}, 4), HAProxySettings())
    return sum(len(text) for text in rendered.generation_files.values())


async def loads(varnish: Varnish, count: int) -> list[float]:
    target = VarnishTarget(varnish.settings)
    seconds = []
    for index in range(count):
        # A new header each time, so each load is a real compile and load.
        vcl = render_vcl(varnish.settings, header=f"bench load {index} {time.time_ns()}")
        start = time.perf_counter()
        result = await target.apply(vcl=vcl)
        seconds.append(time.perf_counter() - start)
        assert result.action == "reload", result
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[10, 10000])
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for routes in args.routes:
        map_bytes = cacheable_catalog_maps(routes)
        with tempfile.TemporaryDirectory(prefix="bw-vcl-") as work:
            varnish = Varnish.configure(Path(work) / "varnish", f"{work}/return.sock")
            varnish.start()
            try:
                seconds = asyncio.run(loads(varnish, args.loads))
            finally:
                varnish.stop()
            vcl = render_vcl(varnish.settings, header="")
        rows.append((routes, map_bytes, len(vcl), [s * 1000 for s in seconds]))
    print(f"VCL compile (varnishd -C) + vcl.load + vcl.use, {args.loads} loads each")
    print(f"{'routes':>7} {'map bytes':>10} {'VCL bytes':>10} {'median ms':>10} {'p99 ms':>8}")
    for routes, map_bytes, vcl_bytes, ms in rows:
        print(
            f"{routes:>7} {map_bytes:>10} {vcl_bytes:>10}"
            f" {statistics.median(ms):>10.0f} {percentile(ms, 0.99):>8.0f}"
        )
    if len(rows) >= 2:
        ratio = statistics.median(rows[-1][3]) / statistics.median(rows[0][3])
        print(f"  ratio {rows[-1][0]} / {rows[0][0]} routes: {ratio:.2f}")


if __name__ == "__main__":
    main()
