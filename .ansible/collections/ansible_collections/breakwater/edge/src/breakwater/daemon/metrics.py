"""The watcher's Prometheus metrics, with the well-kept ``prometheus_client``.

Counters and histograms are updated where things happen (the follower, the sync);
what is a state rather than an event -- server slots, rejected objects, keys etcd
holds that could not be read, the generation served -- is read at scrape time from
what the watcher holds, so it cannot drift from it.  Labels carry bounded values
only: kinds, causes, outcomes, resources; object names appear in one gauge alone,
``breakwater_rejected_object``, capped at :data:`REJECTED_SERIES` series.

Served on ``watcher.metrics_listen`` (loopback by default; empty: off) by
``prometheus_client``'s own HTTP server, in a thread beside the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from breakwater.targets.staging import ApplyResult
from breakwater.validate import InvalidValue, listen_address

REJECTED_SERIES = 50  # object-named series of breakwater_rejected_object, at most
REASON_CHARS = 200  # of a rejection's reason, in that gauge's label
# From a runtime command (milliseconds) to a reload of 10,000 backends (seconds).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MetricsError(Exception):
    """The metrics listener is invalid or cannot be bound; names the address."""


@dataclass
class Snapshot:
    """What the watcher holds now, for the values read at scrape time.  Each field
    is replaced whole by the event loop (never changed in place), so the scraping
    thread reads one consistent value of it."""

    connected: Callable[[], bool] = lambda: False  # a list or watch established
    revisions: Callable[[], tuple[int, int]] = lambda: (0, 0)  # seen, applied
    slots: Callable[[], tuple[int, int]] = lambda: (0, 0)  # used, free
    spares: Callable[[], tuple[int, int]] = lambda: (0, 0)  # in use, idle
    rejected: tuple[tuple[str, str], ...] = ()  # (object, reason) served now
    rejected_keys: Callable[[], dict[str, int]] = dict  # cause -> keys, ever
    generation: tuple[str, int] = ("", 0)  # (hash of what is served, etcd revision)


class _StateCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        yield GaugeMetricFamily(
            "breakwater_etcd_connected",
            "1 while a list or watch on etcd is established, 0 while the watcher retries.",
            value=int(snapshot.connected()),
        )
        seen, applied = snapshot.revisions()
        yield GaugeMetricFamily(
            "breakwater_etcd_revision_seen", "The last etcd revision received.", value=seen
        )
        yield GaugeMetricFamily(
            "breakwater_etcd_revision_applied",
            "The etcd revision of what HAProxy and Varnish were last brought to.",
            value=applied,
        )
        used, free = snapshot.slots()
        slots = GaugeMetricFamily(
            "breakwater_haproxy_server_slots",
            "Server slots of all backends: used (a server in it) and free.",
            labels=["state"],
        )
        slots.add_metric(["used"], used)
        slots.add_metric(["free"], free)
        yield slots
        in_use, idle = snapshot.spares()
        spares = GaugeMetricFamily(
            "breakwater_haproxy_spare_backends",
            "Spare backend sections: in use (a new Service's, until the next reload renames "
            "it) and idle.",
            labels=["state"],
        )
        spares.add_metric(["in_use"], in_use)
        spares.add_metric(["idle"], idle)
        yield spares

        rejected = snapshot.rejected
        by_resource: dict[str, int] = {}
        for name, _reason in rejected:
            resource = name.split(" ", 1)[0]
            by_resource[resource] = by_resource.get(resource, 0) + 1
        counts = GaugeMetricFamily(
            "breakwater_rejected_objects",
            "Objects rejected now (left out of what is served), by resource.",
            labels=["resource"],
        )
        for resource, count in sorted(by_resource.items()):
            counts.add_metric([resource], count)
        yield counts
        named = GaugeMetricFamily(
            "breakwater_rejected_object",
            f"1 for each object rejected now, with the reason (the first {REJECTED_SERIES}).",
            labels=["object", "reason"],
        )
        for name, reason in sorted(rejected)[:REJECTED_SERIES]:
            named.add_metric([name, reason[:REASON_CHARS]], 1)
        yield named

        keys = CounterMetricFamily(
            "breakwater_unreadable_keys",
            "etcd values that could not be read: undecodable, or rejected as an object.",
            labels=["cause"],
        )
        for cause, count in sorted(snapshot.rejected_keys().items()):
            keys.add_metric([cause], count)
        yield keys

        digest, revision = snapshot.generation
        generation = GaugeMetricFamily(
            "breakwater_generation_info",
            "What this node serves: a hash of its routing model (routes, backends and"
            " their servers, certificates), and the etcd revision it was built from."
            "  The same on every node that serves the same.",
            labels=["generation", "revision"],
        )
        if digest:
            generation.add_metric([digest, str(revision)], 1)
        yield generation


class Metrics:
    """The watcher's metrics, on a registry of their own (so tests can read them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.watch_events = Counter(
            "breakwater_watch_events",
            "etcd watch events received, by kind (put or delete).",
            ["kind"],
            registry=r,
        )
        self.syncs = Counter(
            "breakwater_syncs",
            "Syncs by kind (runtime, reload, written, none, vcl) and outcome (ok, failed).",
            ["kind", "outcome"],
            registry=r,
        )
        self.sync_seconds = Histogram(
            "breakwater_sync_duration_seconds",
            "Time a sync took, by the kind it ended as.",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.applied_seconds = Histogram(
            "breakwater_event_to_applied_seconds",
            "From the first etcd event of a sync's batch to HAProxy running it.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "breakwater_haproxy_reloads",
            "HAProxy reloads the watcher made, by cause (config, slots, spares, certificates, "
            "rename, runtime-refused).",
            ["cause"],
            registry=r,
        )
        self.check_failures = Counter(
            "breakwater_haproxy_check_failures",
            "Configurations HAProxy's check (haproxy -c) refused.",
            registry=r,
        )
        self.runtime_commands = Counter(
            "breakwater_haproxy_runtime_commands",
            "Commands sent on HAProxy's runtime API.",
            registry=r,
        )
        self.snapshot = Snapshot()
        r.register(_StateCollector(self.snapshot))
        for kind in ("put", "delete"):
            self.watch_events.labels(kind)
        for cause in ("config", "slots", "spares", "certificates", "rename", "runtime-refused"):
            self.reloads.labels(cause)
        # Failures exist at 0 from the start, so increase() sees the first one.
        for kind in ("check", "apply", "error", "failed", "vcl"):
            self.syncs.labels(kind, "failed")

    def events(self, puts: int, deletes: int) -> None:
        """A batch of watch events."""
        self.watch_events.labels("put").inc(puts)
        self.watch_events.labels("delete").inc(deletes)

    def sync(
        self,
        result: ApplyResult,
        seconds: float,
        since_event: float | None = None,
        kind: str | None = None,
    ) -> None:
        """A sync (or a deferred file write, ``kind``) that ended as ``result`` after
        ``seconds``; ``since_event``: from the first event it applied, if it did."""
        failed = result.action == "failed"
        if kind is None:
            kind = result.action if not failed else ("check" if result.check_failed else "apply")
        self.syncs.labels(kind, "failed" if failed else "ok").inc()
        self.sync_seconds.labels(kind).observe(seconds)
        if result.runtime_commands:
            self.runtime_commands.inc(result.runtime_commands)
        if result.check_failed:
            self.check_failures.inc()
        if result.action == "reload":
            self.reloads.labels(result.cause or "config").inc()
        if not failed and since_event is not None:
            self.applied_seconds.observe(since_event)

    def serve(self, listen: str) -> None:
        """Serve ``/metrics`` on ``listen`` (``host:port``, IPv6 in brackets)."""
        try:
            host, port = listen_address(listen)
        except InvalidValue as exc:
            raise MetricsError(f"watcher.metrics_listen: {exc}") from exc
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"watcher.metrics_listen {listen}: cannot listen: {exc}") from exc
