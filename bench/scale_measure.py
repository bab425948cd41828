"""The measuring half of bench/scale.py, run in a fresh process (its RSS is the figure).

Arguments: etcd endpoint, work directory, number of endpoint events, and the kind of
the routes (Ingress or HTTPRoute; Ingress if absent).  Does what the watcher does
(breakwater.daemon.watcher.Watcher.follow and sync) step by step, with clocks around
each step, and prints one JSON object.  Refuses a configuration with a health check:
the servers' addresses are synthetic, and nothing may be sent to them.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import statistics
import sys
import time
from pathlib import Path

from breakwater.catalog.live import LiveCatalog
from breakwater.cluster.keys import RESOURCES
from breakwater.cluster.source import Change, EtcdSource
from breakwater.cluster.state import ClusterState
from breakwater.config import Config, load_config
from breakwater.daemon.metrics import Metrics
from breakwater.targets.haproxy import HAProxyTarget


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def loop_stall_during_rebuild(state: ClusterState, config: Config) -> float:
    """Longest the event loop waited (ms) while a full build ran as the watcher runs it:
    in a thread.  What the etcd stream and the systemd watchdog would wait."""
    tick, gaps, building = 0.005, [], True

    async def ticker() -> None:
        while building:
            start = time.perf_counter()
            await asyncio.sleep(tick)
            gaps.append(time.perf_counter() - start - tick)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await asyncio.to_thread(LiveCatalog().rebuild, state, config.catalog)
    building = False
    await task
    return max(gaps) * 1000


# A server line (or default-server) with health checks on: none may be rendered here.
CHECKED = re.compile(r"^\s*(?:default-)?server\b.*\scheck\b", re.MULTILINE)


async def measure(endpoint: str, work: Path, events: int, kind: str) -> dict[str, object]:
    config = load_config(document={"etcd": {"endpoints": [endpoint], "timeout": 60}}, environ={})
    times: dict[str, float] = {}
    start = time.perf_counter()
    source = EtcdSource(config.etcd, list(RESOURCES))
    state = await ClusterState.listed(source, config.etcd)
    objects, revision = len(state.objects), state.revision
    times["list + decode"] = time.perf_counter() - start
    start = time.perf_counter()
    live = LiveCatalog()
    catalog, _ = live.update(state, config.catalog)
    times["catalog"] = time.perf_counter() - start
    stall_ms = await loop_stall_during_rebuild(state, config)

    # A real HAProxy, started as the haproxy role starts it (no routes), then given
    # the cluster's configuration the way the watcher gives it: check, swap, reload.
    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path[:0] = [str(tests), str(tests / "integration")]
    from harness import HAProxy, haproxy_settings

    settings = haproxy_settings(work / "haproxy")
    target = HAProxyTarget(settings)
    start = time.perf_counter()
    target.render(catalog)
    times["render"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    rss_at_start = peak_rss_mb()

    (work / "haproxy").mkdir()
    proxy = HAProxy(work / "haproxy", settings)
    proxy.start()
    try:
        start = time.perf_counter()
        result = await target.apply(catalog)
        first_apply = time.perf_counter() - start
        if result.action != "reload":
            raise SystemExit(f"first apply: {result.action} {result.detail}")
        checked = CHECKED.search(Path(settings.config_file).read_text())
        if checked is not None:
            raise SystemExit(f"a health check of synthetic addresses: {checked[0].strip()}")

        from common import encoding
        from scale import endpoint_slice_object, route_object  # the bench's own shapes

        from breakwater.lab import storage_key, storage_value

        services = len(catalog.backends)
        cpu_ms, wall_ms, commands = [], [], 0
        # Every other event also records the watcher's metrics, as the follower and
        # the sync do (one batch of events, one sync), to tell their cost.
        metrics, metered_ms, unmetered_ms = Metrics(), [], []
        for event in range(events):
            # Service number `event` gains an eleventh endpoint; the next round loses it.
            index = event % services
            obj = endpoint_slice_object(index, 11 if (event // services) % 2 == 0 else 10)
            key, value = storage_key(obj), storage_value(obj)
            revision += 1
            metered = event % 2 == 1
            cpu, wall = time.process_time(), time.perf_counter()
            state.apply([Change(key, value, revision)])
            if metered:
                metrics.events(1, 0)
            catalog, changed = live.update(state, config.catalog)
            result = await target.apply(catalog, changed)
            if metered:
                elapsed = time.perf_counter() - wall
                metrics.sync(result, elapsed, elapsed)
            cpu_ms.append((time.process_time() - cpu) * 1000)
            wall_ms.append((time.perf_counter() - wall) * 1000)
            (metered_ms if metered else unmetered_ms).append(cpu_ms[-1])
            if result.action != "runtime" or changed is None or len(changed) != 1:
                raise SystemExit(f"event {event}: {result.action} {changed} {result.detail}")
            commands += result.runtime_commands
        start = time.perf_counter()
        flushed = await target.flush(catalog)
        flush_ms = (time.perf_counter() - start) * 1000
        if flushed.action != "written":
            raise SystemExit(f"file write after the events: {flushed.action} {flushed.detail}")

        # New routes, each to an existing Service: decoded, the catalog built, the route
        # map changed at runtime (a reload would be a failure here).
        route_cpu_ms: list[float] = []
        route_wall_ms: list[float] = []
        for event in range(max(1, events // 4)):
            obj = route_object(event % services, kind, f"new{event}")
            key, value = storage_key(obj), storage_value(obj, encoding(obj))
            revision += 1
            cpu, wall = time.process_time(), time.perf_counter()
            state.apply([Change(key, value, revision)])
            catalog, changed = live.update(state, config.catalog)
            result = await target.apply(catalog, changed)
            route_cpu_ms.append((time.process_time() - cpu) * 1000)
            route_wall_ms.append((time.perf_counter() - wall) * 1000)
            if result.action != "runtime":
                raise SystemExit(f"new route {event}: {result.action} {result.detail}")
    finally:
        await target.close()
        proxy.stop()
        await source.disconnect()
    return {
        "objects": objects,
        "times": times,
        "rss_mb": rss_at_start,
        "rss_after_events_mb": peak_rss_mb(),
        "first_apply_ms": first_apply * 1000,
        "event_cpu_ms": {"median": statistics.median(cpu_ms), "p99": percentile(cpu_ms, 0.99)},
        "event_wall_ms": {"median": statistics.median(wall_ms), "p99": percentile(wall_ms, 0.99)},
        "event_cpu_ms_metrics": {
            "off": statistics.median(unmetered_ms),
            "on": statistics.median(metered_ms),
        },
        "runtime_commands": commands,
        "flush_ms": flush_ms,
        "rebuild_loop_stall_ms": stall_ms,
        "route_cpu_ms": {
            "median": statistics.median(route_cpu_ms),
            "p99": percentile(route_cpu_ms, 0.99),
        },
        "route_wall_ms": {
            "median": statistics.median(route_wall_ms),
            "p99": percentile(route_wall_ms, 0.99),
        },
        "flush_action": flushed.action,
        "config_mb": len(Path(settings.config_file).read_text()) / 1e6,
    }


if __name__ == "__main__":
    kind = sys.argv[4] if len(sys.argv) > 4 else "Ingress"
    print(json.dumps(asyncio.run(measure(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), kind))))
