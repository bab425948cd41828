"""Live: hostile values written into a real etcd beside a good route.

Whatever is stored under a key the watcher reads -- values meant to inject HAProxy
configuration or runtime commands, paths meant to escape the config directory,
undecodable or pathological bytes -- the watcher keeps following etcd and the good
route keeps answering, without a single failed request.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import builders
from harness import (
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    http_get,
    ingress,
    service,
    storage_key,
    store,
    wait_for,
)

from breakwater.lab import storage_value

MARKERS = (b"pwned", b"disable frontend", b"escaped")
EVIL_PORT_NAME = "http\n    http-request return status 200 content-type text/plain string pwned\n"


class Client(threading.Thread):
    """Requests good.example.com (and evil.example.com) through HAProxy until stopped."""

    def __init__(self, port: int, good_names: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.port, self.good_names = port, good_names
        self.stop = threading.Event()
        self.requests = 0
        self.failures: list[str] = []
        self.pwned: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.requests += 1
            try:
                status, body = http_get(self.port, "good.example.com", timeout=5)
                if status != 200 or body.split(" ", 1)[0] not in self.good_names:
                    self.failures.append(f"{time.monotonic():.3f} {status} {body[:80]!r}")
            except Exception as exc:
                self.failures.append(f"{time.monotonic():.3f} {exc!r}")
            try:
                status, body = http_get(self.port, "evil.example.com", timeout=5)
                if "pwned" in body:
                    self.pwned.append(f"{status} {body[:80]!r}")
            except Exception:
                pass  # evil.example.com owes us nothing but never 'pwned'


def read_status(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def files_outside(root: Path, excluded: tuple[Path, ...]) -> set[Path]:
    return {
        path
        for path in root.rglob("*")
        if not any(path == ex or ex in path.parents for ex in excluded)
    }


def rendered_files(haproxy: HAProxy) -> dict[Path, bytes]:
    config_dir = Path(haproxy.settings.config_dir)
    files = {Path(haproxy.settings.config_file): Path(haproxy.settings.config_file).read_bytes()}
    files.update({p: p.read_bytes() for p in config_dir.rglob("*") if p.is_file()})
    return files


def hostile_values(web_port: int) -> list[tuple[str, str, bytes, set[str]]]:
    """(what, key, value, object names a rejection of it may carry), in writing order."""
    values: list[tuple[str, str, bytes, set[str]]] = []

    def add(what: str, obj: dict[str, Any], encoding: str = "json", key: str = "") -> None:
        key = key or storage_key(obj)
        meta = obj["metadata"]
        names = {key, f"{obj['kind']} {meta.get('namespace')}/{meta['name']}"}
        values.append((what, key, storage_value(obj, encoding), names))

    def raw(what: str, key: str, value: bytes, *names: str) -> None:
        values.append((what, key, value, {key, *names}))

    scoped = builders.endpoint_slice(
        "shop",
        "web",
        [("fe80::1%x;disable frontend bw_public", dict(builders.READY))],
        port=web_port,
        suffix="evil",
    )
    scoped["addressType"] = "IPv6"
    add("slice: scoped IPv6 address + runtime command", scoped, encoding="protobuf")
    v6in4 = builders.endpoint_slice(
        "shop", "web", [("2001:db8::1", dict(builders.READY))], port=web_port, suffix="v6in4"
    )
    add("slice: IPv6 address in an IPv4 slice", v6in4)

    evil_service = builders.service("shop", "evil", port_name=EVIL_PORT_NAME)
    evil_ingress = builders.ingress("shop", "evil", [("evil.example.com", "/", "Prefix", "evil")])
    backend = evil_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["service"]["port"] = {"number": 80}
    pair = {"Service shop/evil", "Ingress shop/evil", storage_key(evil_service)}
    values.append(
        (
            "service port name injection",
            storage_key(evil_service),
            storage_value(evil_service),
            pair,
        )
    )
    add("ingress to the injected port by number", evil_ingress)

    secret = builders.tls_secret("../../../escaped", "x")
    add(
        "TLS secret in namespace ../../../escaped",
        secret,
        key="/registry/secrets/../../../escaped/x",
    )
    escaping = ingress(
        "shop", "tls-escape", "tls.example.com", "web", tls_secret="../../../escaped/x"
    )
    add("ingress with secretName ../../../escaped/x", escaping)
    outside = ingress("../../../escaped", "y", "tls2.example.com", "web", tls_secret="x")
    add(
        "ingress in namespace ../../../escaped", outside, key="/registry/ingress/../../../escaped/y"
    )

    add("ingress host with a newline", ingress("shop", "host-nl", "evil.example.com\n", "web"))
    add("ingress path with a newline", ingress("shop", "path-nl", "p.example.com", "web", "/a\n"))

    deep = (
        b'{"apiVersion":"networking.k8s.io/v1","kind":"Ingress",'
        b'"metadata":{"name":"deep","namespace":"shop"},"spec":' + b"[" * 1000 + b"]" * 1000 + b"}"
    )
    raw("JSON nested 1,000 deep", "/registry/ingress/shop/deep", deep, "Ingress shop/deep")
    bigint = (
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bigint","namespace":"shop",'
        b'"labels":{"breakwater.io/edge":"true"}},"data":{"hosts":' + b"7" * 5000 + b"}}"
    )
    raw(
        "integer of 5,000 digits",
        "/registry/configmaps/shop/bigint",
        bigint,
        "ConfigMap shop/bigint",
    )
    noise = random.Random(1).randbytes(512)
    raw("random bytes", "/registry/ingress/shop/random", b"\xff" + noise)
    raw("k8s protobuf magic + garbage", "/registry/ingress/shop/garbage", b"k8s\x00" + noise)
    spec_list = (
        b'{"apiVersion":"networking.k8s.io/v1","kind":"Ingress",'
        b'"metadata":{"name":"x","namespace":"shop"},"spec":[1,2]}'
    )
    raw("ingress spec is a list", "/registry/ingress/shop/x", spec_list, "Ingress shop/x")
    labels_list = (
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"labels-list",'
        b'"namespace":"shop","labels":["breakwater.io/edge"]},"data":{"hosts":"cm.example.com"}}'
    )
    raw(
        "configmap labels is a list",
        "/registry/configmaps/shop/labels-list",
        labels_list,
        "ConfigMap shop/labels-list",
    )
    class_list = (
        b'{"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":'
        b'"breakwater","annotations":["ingressclass.kubernetes.io/is-default-class"]},'
        b'"spec":{"controller":"breakwater.io/ingress-controller"}}'
    )
    raw(
        "ingressclass annotations is a list",
        "/registry/ingressclasses/breakwater",
        class_list,
        "IngressClass breakwater",
    )

    timeout = {"breakwater.io/timeout-server": "9999999d"}
    add(
        "timeout-server 9999999d", ingress("shop", "t", "t.example.com", "web", annotations=timeout)
    )
    check = {"breakwater.io/health-check-path": "/it's"}
    add("health-check-path /it's", ingress("shop", "h", "h.example.com", "web", annotations=check))

    portless = service("shop", "web")
    portless["spec"]["ports"] = []
    add("portless copy of web under .../web2", portless, key="/registry/services/specs/shop/web2")
    return values


def test_hostile_values_never_stop_the_watcher_or_the_good_route(
    etcd: Etcd, haproxy: HAProxy, backends: Any, watcher: WatcherProcess, tmp_path: Path
) -> None:
    one, two = backends("one"), backends("two")
    status_file = tmp_path / "status.json"
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [one.endpoint]))
    store(etcd, ingress("shop", "good", "good.example.com", "web"))
    wait_for(
        lambda: http_get(haproxy.http_port, "good.example.com") == (200, "one /\n"),
        what="the good route",
    )
    wait_for(status_file.exists, what="status file")
    config_dir = Path(haproxy.settings.config_dir)
    excluded = (config_dir, tmp_path / "etcd")
    files_before = files_outside(tmp_path, excluded)
    for path, content in rendered_files(haproxy).items():
        assert not [m for m in MARKERS if m in content], f"marker in {path} before the test"

    client = Client(haproxy.http_port, ("one", "two"))
    client.start()
    problems: list[str] = []
    hostile = hostile_values(one.port)
    try:
        for what, key, value, _ in hostile:
            revision = etcd.put(key, value)
            try:
                status, body = http_get(haproxy.http_port, "evil.example.com")
                if "pwned" in body:
                    problems.append(f"{what}: evil.example.com answered {status} {body!r}")
            except Exception as exc:
                problems.append(f"{what}: evil.example.com: {exc!r}")
        wait_for(
            lambda: read_status(status_file)["revision"] >= revision,
            what="the watcher to read every hostile value",
        )

        # (1) alive, (2) still following: a new route (reload) and a new server (runtime).
        assert watcher.process is not None and watcher.process.poll() is None, "watcher died"
        store(etcd, ingress("shop", "late", "late.example.com", "web"))
        try:
            wait_for(
                lambda: http_get(haproxy.http_port, "late.example.com")[0] == 200,
                what="late.example.com after the hostile values",
            )
        except AssertionError as exc:
            problems.append(f"watcher stopped applying changes: {exc}")
        revision = store(etcd, endpoint_slice("shop", "web", [one.endpoint, two.endpoint]))

        def both_answer() -> bool:
            seen = {http_get(haproxy.http_port, "good.example.com")[1].split()[0] for _ in range(8)}
            return seen == {"one", "two"}

        try:
            wait_for(both_answer, what="both backends of web")
        except AssertionError as exc:
            problems.append(f"the second server was never used: {exc}")
        time.sleep(0.3)  # a little more traffic after the last change
    finally:
        client.stop.set()
        client.join(10)

    # (3) not one failed request for the good route; evil never answered 'pwned'.
    if client.failures:
        problems.append(
            f"{len(client.failures)} of {client.requests} good.example.com requests failed: "
            f"{client.failures[:5]}"
        )
    if client.requests < 20:
        problems.append(f"the background client made only {client.requests} requests")
    if client.pwned:
        problems.append(f"evil.example.com answered pwned: {client.pwned[:3]}")
    state = haproxy.master("@1 show stat -1 1 -1")
    frontend = [line for line in state.splitlines() if line.startswith("bw_public,FRONTEND,")]
    if not frontend or ",OPEN," not in frontend[0]:
        problems.append(f"bw_public is not open: {frontend}")

    # (4) each hostile value is rejected by name in the status file; no error.
    status = wait_for(
        lambda: (s := read_status(status_file))["revision"] >= revision and s,
        what="status after the last change",
    )
    if status["last_error"] is not None:
        problems.append(f"last_error: {status['last_error']}")
    rejected = (status.get("catalog") or {}).get("rejected") or []
    named = {r["object"] for r in rejected}
    for what, _key, _, names in hostile:
        if not names & named:
            problems.append(f"{what}: no rejection named any of {sorted(names)}")

    # (5) no marker in what was rendered; no file outside the config directory.
    for path, content in rendered_files(haproxy).items():
        found = [m.decode() for m in MARKERS if m in content]
        if found:
            problems.append(f"{path} contains {found}")
    roots = {tmp_path, tmp_path.parent, tmp_path.parent.parent}
    escaped = [
        p for root in roots for p in root.glob("*escaped*") if not p.is_relative_to(config_dir)
    ]
    escaped += [p for p in tmp_path.rglob("*escaped*") if not p.is_relative_to(config_dir)]
    if escaped:
        problems.append(f"files named escaped outside the config dir: {escaped}")
    try:
        wait_for(
            lambda: not (files_outside(tmp_path, excluded) - files_before),
            timeout=3,
            what="no new files outside the config dir",
        )
    except AssertionError:
        new = sorted(files_outside(tmp_path, excluded) - files_before)
        problems.append(f"new files outside the config dir: {new}")

    assert not problems, "\n".join(
        problems + [f"rejected: {r['object']}: {r['reason']}" for r in rejected]
    )
