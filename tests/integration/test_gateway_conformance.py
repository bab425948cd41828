"""The Gateway API conformance suite's HTTPRoute cases, replayed against the real edge.

Each case (tests/conformance/gateway_api: the suite's manifests and expected requests
and responses, as data) is written into a real etcd as the API server stores it (JSON
for the Gateway API's objects, protobuf for Services and EndpointSlices); the watcher
follows etcd and drives a real HAProxy; each request is sent to HAProxy and its answer
compared with what the case expects -- status, which echo backend answered, the
request the backend saw, response headers, redirects, weights -- retried until it
holds, as the suite's "eventually consistent" requests are.  Status conditions the
cases check are read from the watcher's status file (the edge never writes them).

Every Gateway is served on the edge's one address: a request goes to its HTTP bind,
or HTTPS bind for an https request, whatever the case's Gateway and port.  The cases
the edge does not support say why (``support.UNSUPPORTED``: the README's table lists
them, tests/unit/test_conformance_data.py holds it to that); every other case is run.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conformance.gateway_api import loader
from conformance.gateway_api.echo import EchoServer
from conformance.gateway_api.support import UNSUPPORTED
from harness import Etcd, HAProxy, WatcherProcess, haproxy_settings, store, wait_for, watcher_config
from traffic_servers import CertificateAuthority, websocket_connect

from breakwater.lab import storage_key

CASES = {case.name: case for case in loader.load_cases()}

INFRA_V1 = ("gateway-conformance-infra", "infra-backend-v1")


def pod_name(service: str) -> str:
    return f"{service}-5c6b8f7d9-x2k4p"


@dataclass
class Edge:
    etcd: Etcd
    haproxy: HAProxy
    watcher: WatcherProcess
    status_file: Path
    ca: CertificateAuthority
    echoes: dict[tuple[str, str], EchoServer] = field(default_factory=dict)
    base: list[dict[str, Any]] = field(default_factory=list)  # as stored

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {}

    def applied(self, revision: int) -> bool:
        applied = self.status().get("revision_applied")
        return isinstance(applied, int) and applied >= revision


def slice_for(service: Mapping[str, Any], echo: EchoServer) -> dict[str, Any]:
    """The EndpointSlice of a Service: its echo server, on every port of the Service."""
    metadata = service["metadata"]
    ports = service.get("spec", {}).get("ports") or [{"port": 8080}]
    return {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": f"{metadata['name']}-echo",
            "namespace": metadata["namespace"],
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kubernetes.io/service-name": metadata["name"]},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [echo.address],
                "conditions": {"ready": True, "serving": True, "terminating": False},
            }
        ],
        "ports": [
            {"name": port.get("name", ""), "port": echo.port, "protocol": "TCP"} for port in ports
        ],
    }


def tls_secret(ca: CertificateAuthority, secret: loader.TLSSecret) -> dict[str, Any]:
    certificate, key = ca.issue(*secret.hosts)
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": secret.name,
            "namespace": secret.namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(certificate).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


def put_objects(edge: Edge, objects: list[Mapping[str, Any]]) -> int:
    """Store objects (a Service with its echo's EndpointSlice); the last revision."""
    revision = 0
    # Services whose EndpointSlices a case writes itself (HTTPRouteServiceTypes) point
    # at infra-backend-v1's pods there: here, at its echo server.
    manual = {
        (o["metadata"]["namespace"], o["metadata"]["labels"]["kubernetes.io/service-name"])
        for o in objects
        if o["kind"] == "EndpointSlice"
    }
    # A Service selecting a base Service's pods (a headless one) has its echo server too.
    for o in objects:
        if o["kind"] == "Service" and o.get("spec", {}).get("selector") == {
            "app": "infra-backend-v1"
        }:
            manual.add((o["metadata"]["namespace"], o["metadata"]["name"]))
    for obj in objects:
        metadata = obj["metadata"]
        metadata.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        metadata.setdefault("generation", 1)  # as the API server sets it
        obj = {**obj, "metadata": metadata}
        if obj["kind"] == "EndpointSlice":
            continue  # a Service's endpoints are its echo server's
        revision = store(edge.etcd, dict(obj))
        if obj["kind"] == "Service":
            ident = (metadata["namespace"], metadata["name"])
            echo = edge.echoes.get(ident)
            if ident in manual and ident != INFRA_V1:
                echo = edge.echoes[ident] = edge.echoes[INFRA_V1]
            elif echo is None:
                echo = edge.echoes[ident] = EchoServer(ident[0], pod_name(ident[1]))
            revision = store(edge.etcd, slice_for(obj, echo))
    return revision


def delete_objects(edge: Edge, objects: list[Mapping[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] == "EndpointSlice":
            continue
        edge.etcd.delete(storage_key(obj))
        if obj["kind"] == "Service":
            metadata = obj["metadata"]
            edge.etcd.delete(
                storage_key(slice_for(obj, edge.echoes[(metadata["namespace"], metadata["name"])]))
            )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp_path = tmp_path_factory.mktemp("conformance")
    etcd = Etcd(tmp_path / "etcd")
    etcd.start()
    directory = tmp_path / "haproxy"
    directory.mkdir()
    haproxy = HAProxy(directory, haproxy_settings(directory))
    haproxy.start()
    # The address the Gateways are reached on, for their status (the edge's VIP).
    config = watcher_config(tmp_path, etcd, haproxy, catalog={"gateway_addresses": ["127.0.0.1"]})
    watcher = WatcherProcess(config, tmp_path / "watcher.log")
    ca = CertificateAuthority("conformance CA")
    found = Edge(etcd, haproxy, watcher, tmp_path / "status.json", ca)
    base = found.base = loader.load_base()
    secrets = [tls_secret(ca, secret) for secret in loader.load_secrets()]
    put_objects(found, [*base, *secrets])
    watcher.start()
    try:
        wait_for(lambda: found.status().get("catalog"), timeout=30, what="the watcher's status")
        yield found
    finally:
        watcher.stop()
        print(watcher.log()[-3000:])
        haproxy.stop()
        etcd.stop()
        for echo in {id(echo): echo for echo in found.echoes.values()}.values():
            echo.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return None if values is None else ",".join(values)

    def echo(self) -> dict[str, Any] | None:
        if "application/json" not in (self.header("content-type") or ""):
            return None
        try:
            document = json.loads(self.body)
        except ValueError:
            return None
        return document if isinstance(document, dict) and "namespace" in document else None


def send(edge: Edge, request: loader.HttpRequest, path: str) -> Answer:
    port = edge.haproxy.https_port if request.scheme == "https" else edge.haproxy.http_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if request.scheme == "https":
        context = ssl.create_default_context(cadata=edge.ca.pem.decode())
        sock = context.wrap_socket(sock, server_hostname=request.sni)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.sock = sock
    try:
        host = request.host or f"127.0.0.1:{port}"
        headers = {"Host": host, **request.headers}
        body = request.body.encode() if request.body is not None else None
        connection.request(request.method, path, body=body, headers=headers)
        response = connection.getresponse()
        found: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            found.setdefault(name.lower(), []).append(value)
        return Answer(response.status, found, response.read())
    finally:
        connection.close()


def _echoed_headers(echo: Mapping[str, Any]) -> dict[str, str]:
    return {name.lower(): ",".join(values) for name, values in echo.get("headers", {}).items()}


def problem(case_request: loader.CaseRequest, answer: Answer, path: str) -> str | None:
    """Why ``answer`` is not what the case expects (None: it is)."""
    if not case_request.status_matches(answer.status):
        return f"status {answer.status}, expected {case_request.statuses}"
    redirect = case_request.redirect
    if redirect is not None:
        location = urllib.parse.urlsplit(answer.header("location") or "")
        default = {"http": 80, "https": 443}.get(location.scheme)
        if location.scheme != redirect.scheme:
            return f"redirect scheme {location.scheme!r}, expected {redirect.scheme!r}"
        if redirect.host is not None and location.hostname != redirect.host:
            return f"redirect host {location.hostname!r}, expected {redirect.host!r}"
        port = location.port if location.port != default else None
        if port != redirect.port and not (redirect.port == default and port is None):
            return f"redirect port {location.port}, expected {redirect.port}"
        if location.path != redirect.path:
            return f"redirect path {location.path!r}, expected {redirect.path!r}"
    if answer.status not in (200, 204):
        return None
    echo = answer.echo()
    expected = case_request.expected()
    if case_request.namespace is None or expected.path == "":
        return None if echo is None else "answered by a backend, expected the edge"
    if echo is None:
        return "not answered by an echo backend"
    if echo.get("namespace") != case_request.namespace:
        return f"namespace {echo.get('namespace')!r}, expected {case_request.namespace!r}"
    if case_request.backend and not str(echo.get("pod", "")).startswith(case_request.backend):
        return f"backend {echo.get('pod')!r}, expected {case_request.backend!r}"
    expected_path = path if case_request.unique_query_param else expected.path
    if echo.get("path") != expected_path:
        return f"the backend saw path {echo.get('path')!r}, expected {expected_path!r}"
    if echo.get("method") != expected.method:
        return f"the backend saw method {echo.get('method')!r}, expected {expected.method!r}"
    if expected.host is not None and echo.get("host") != expected.host:
        return f"the backend saw host {echo.get('host')!r}, expected {expected.host!r}"
    seen = _echoed_headers(echo)
    for name, value in (expected.headers or {}).items():
        if seen.get(name.lower()) != value:
            return f"the backend saw header {name}: {seen.get(name.lower())!r}, expected {value!r}"
    for name in expected.absent_headers:
        if name.lower() in seen:
            return f"the backend saw header {name}, expected none"
    for name, values in case_request.response_headers.items():
        got = answer.header(name) or ""
        strip = case_request.ignore_whitespace
        if (got.replace(" ", "") if strip else got) not in (
            [v.replace(" ", "") for v in values] if strip else values
        ):
            return f"response header {name}: {got!r}, expected one of {list(values)!r}"
    for name in case_request.absent_response_headers:
        if answer.header(name) is not None:
            return f"response header {name} present, expected none"
    return None


def request_path(case_request: loader.CaseRequest) -> str:
    path = case_request.request.path
    if case_request.unique_query_param:
        separator = "&" if "?" in path else "?"
        path += f"{separator}{case_request.unique_query_param}={time.time_ns()}"
    return path


def eventually(edge: Edge, case_request: loader.CaseRequest, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        path = request_path(case_request)
        headers = dict(case_request.request.headers)
        headers["X-Echo-Set-Header"] = case_request.echo_set_header()
        request = loader.HttpRequest(**{**case_request.request.__dict__, "headers": headers})
        try:
            answer = send(edge, request, path)
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            found = problem(case_request, answer, path)
            if found is None:
                if case_request.weights:
                    check_weights(edge, case_request)
                return
            last = found
        time.sleep(0.2)
    raise AssertionError(f"{case_request.request}: {last}")


def eventually_websocket(edge: Edge, case_request: loader.CaseRequest) -> None:
    """A WebSocket through the edge: each message sent comes back as it was."""
    request = case_request.request
    deadline = time.monotonic() + 15
    while True:
        host = request.host or f"127.0.0.1:{edge.haproxy.http_port}"
        try:
            with websocket_connect(edge.haproxy.http_port, host, request.path) as connection:
                for message in case_request.websocket_messages:
                    connection.send(message)
                    echoed = connection.recv(timeout=5)
                    assert echoed == message, f"sent {message!r}, got {echoed!r}"
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def check_weights(edge: Edge, case_request: loader.CaseRequest, count: int = 2000) -> None:
    """Each backend's share within 5 points of its weight's (the suite's tolerance).
    The split draws at random: 2,000 requests put a 70% share's standard deviation at
    1 point, so 5 points is ~5 of them (400 made it ~2, and a failure every few runs)."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        answer = send(edge, case_request.request, case_request.request.path)
        echo = answer.echo() or {}
        pod = str(echo.get("pod", "none"))
        backend = next((name for name in case_request.weights if pod.startswith(name)), pod)
        seen[backend] += 1
    for backend, weight in case_request.weights.items():
        share = 100 * seen[backend] / count
        assert abs(share - weight) <= 5, f"{backend}: {share:.1f}% of requests, expected {weight}%"


SKIP_READINESS = "gateway-api/skip-this-for-readiness"


def condition_holds(
    edge: Edge,
    check: loader.StatusCheck,
    skipped: frozenset[str] = frozenset(),
    objects: tuple[Mapping[str, Any], ...] = (),
) -> str | None:
    """Why a condition check fails (None: it holds), read from the status file.
    ``skipped``: the Gateways a check of every Gateway (``*``) leaves out; ``objects``:
    the objects stored, whose generation each condition must be of."""
    gateway = (edge.status().get("catalog") or {}).get("gateway_api") or {}
    if check.kind == "Gateway" and check.name == "*":
        names = [
            key.split("/", 1)[1]
            for key in gateway.get("gateways", {})
            if key.startswith(f"{check.namespace}/")
        ]
        for name in names:
            if name not in skipped:
                found = condition_holds(
                    edge, dataclasses.replace(check, name=name), skipped, objects
                )
                if found is not None:
                    return f"Gateway {name}: {found}"
        return None if names else f"no Gateway in {check.namespace}"
    key = f"{check.namespace}/{check.name}"
    if check.kind == "HTTPRoute":
        route = gateway.get("httproutes", {}).get(key)
        if check.check == "no_accepted_parents":
            parents = (route or {}).get("parents", [])
            accepted = [
                p
                for p in parents
                for c in p["conditions"]
                if c["type"] == "Accepted" and c["status"] == "True"
            ]
            return None if not accepted else f"{key} is accepted by {accepted[0]['parentRef']}"
        if route is None:
            return f"no status for HTTPRoute {key}"
        parents = [
            p
            for p in route.get("parents", [])
            if check.parent is None or p["parentRef"].startswith(check.parent)
        ]
        conditions = [c for p in parents for c in p["conditions"]] or route.get("conditions", [])
    else:
        found = gateway.get("gateways", {}).get(key)
        if found is None:
            return f"no status for Gateway {key}"
        listeners = found.get("listeners", {})
        if check.check == "address":
            return None if found.get("addresses") else f"Gateway {key} has no address"
        if check.check == "listener_count":
            count = len(listeners)
            return None if count == check.count else f"{count} listeners, expected {check.count}"
        if check.check == "zero_routes":
            attached = [name for name, state in listeners.items() if state["attachedRoutes"]]
            return None if not attached else f"routes attached to listeners {attached}"
        if check.check == "listener":
            listener = listeners.get(check.listener or "", {})
            attached = listener.get("attachedRoutes")
            if attached != check.attached_routes:
                expected = check.attached_routes
                return f"listener {check.listener}: {attached} routes, expected {expected}"
            kinds = sorted(k["kind"] for k in listener.get("supportedKinds", []))
            if check.supported_kinds is not None and kinds != sorted(check.supported_kinds):
                return (
                    f"listener {check.listener} supports {kinds}, expected {check.supported_kinds}"
                )
            return None
        if check.listener:
            listeners = found.get("listeners", {})
            chosen = (
                listeners.values() if check.listener == "*" else [listeners.get(check.listener, {})]
            )
            conditions = [c for listener in chosen for c in listener.get("conditions", [])]
        else:
            conditions = found.get("conditions", [])
    obj = next(
        (
            o
            for o in objects
            if o["kind"] == check.kind
            and o["metadata"]["name"] == check.name
            and o["metadata"].get("namespace", "") == check.namespace
        ),
        None,
    )
    generation = (obj or {}).get("metadata", {}).get("generation")
    for condition in conditions:
        if generation is not None and condition.get("observedGeneration") != generation:
            return f"{condition['type']} of generation {condition.get('observedGeneration')}"
    for condition in conditions:
        if condition["type"] == check.type:
            if condition["status"] != check.status:
                return f"{check.type} is {condition['status']} ({condition['reason']})"
            if check.reason is not None and condition["reason"] != check.reason:
                return f"{check.type} reason {condition['reason']}, expected {check.reason}"
            return None
    return f"no {check.type} condition in {conditions}"


CHECKED = (
    "condition",
    "listener",
    "no_accepted_parents",
    "address",
    "listener_count",
    "zero_routes",
)


def wait_status(
    edge: Edge,
    check: loader.StatusCheck,
    skipped: frozenset[str],
    objects: tuple[Mapping[str, Any], ...],
) -> None:
    deadline = time.monotonic() + 15
    while (found := condition_holds(edge, check, skipped, objects)) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"status check {check}: {found}")
        time.sleep(0.2)


# --- the cases that change objects mid-test, replayed as their notes say ----------------


def patched(edge: Edge, obj: dict[str, Any], change: Any) -> dict[str, Any]:
    """Store ``obj`` changed by ``change`` (a function of a copy), its generation bumped
    as the API server bumps it on a change to the spec."""
    new = copy.deepcopy(obj)
    change(new)
    new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
    revision = store(edge.etcd, new)
    wait_for(lambda: edge.applied(revision), timeout=30, what="the watcher to apply the change")
    return new


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def check(edge: Edge, objects: list[dict[str, Any]], **fields: Any) -> None:
    fields.setdefault("namespace", "gateway-conformance-infra")
    wait_status(edge, loader.StatusCheck(**fields), frozenset(), tuple(objects))


def replay_observed_generation_bump(edge: Edge, objects: list[dict[str, Any]]) -> None:
    route = named(objects, "HTTPRoute", "observed-generation-bump")
    parent = "gateway-conformance-infra/same-namespace"
    for kind in ("Accepted", "ResolvedRefs"):
        check(
            edge,
            [route],
            kind="HTTPRoute",
            name=route["metadata"]["name"],
            parent=parent,
            type=kind,
            status="True",
        )

    def other_backend(new: dict[str, Any]) -> None:
        new["spec"]["rules"][0]["backendRefs"][0]["name"] = "infra-backend-v2"

    bumped = patched(edge, route, other_backend)
    for kind in ("Accepted", "ResolvedRefs"):  # of the new generation (check() compares it)
        check(
            edge,
            [bumped],
            kind="HTTPRoute",
            name=route["metadata"]["name"],
            parent=parent,
            type=kind,
            status="True",
        )


def replay_modify_listeners(edge: Edge, objects: list[dict[str, Any]]) -> None:
    add, remove = (
        named(objects, "Gateway", n) for n in ("gateway-add-listener", "gateway-remove-listener")
    )

    def add_http(new: dict[str, Any]) -> None:
        new["spec"]["listeners"].append(
            {
                "name": "http",
                "port": 80,
                "protocol": "HTTP",
                "hostname": "data.test.com",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        )

    added = patched(edge, add, add_http)
    name = "gateway-add-listener"
    check(edge, [added], kind="Gateway", name=name, check="listener_count", count=2)
    for listener in ("https", "http"):
        check(
            edge,
            [added],
            kind="Gateway",
            name=name,
            check="listener",
            listener=listener,
            attached_routes=1,
            supported_kinds=("HTTPRoute",),
        )
        for kind in ("Accepted", "ResolvedRefs"):
            check(
                edge,
                [added],
                kind="Gateway",
                name=name,
                listener=listener,
                type=kind,
                status="True",
            )
    for kind in ("Accepted", "Programmed"):
        check(edge, [added], kind="Gateway", name=name, type=kind, status="True")

    def drop_https(new: dict[str, Any]) -> None:
        new["spec"]["listeners"] = [
            listener for listener in new["spec"]["listeners"] if listener["name"] != "https"
        ]

    removed = patched(edge, remove, drop_https)
    name = "gateway-remove-listener"
    check(edge, [removed], kind="Gateway", name=name, check="listener_count", count=1)
    check(
        edge,
        [removed],
        kind="Gateway",
        name=name,
        check="listener",
        listener="http",
        attached_routes=1,
        supported_kinds=("HTTPRoute",),
    )
    for kind in ("Accepted", "ResolvedRefs"):
        check(edge, [removed], kind="Gateway", name=name, listener="http", type=kind, status="True")


MUTATIONS = {
    "HTTPRouteObservedGenerationBump": replay_observed_generation_bump,
    "GatewayModifyListeners": replay_modify_listeners,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_conformance_case(edge: Edge, name: str) -> None:
    case = CASES[name]
    if name in UNSUPPORTED:
        pytest.skip(UNSUPPORTED[name])
    objects = [copy.deepcopy(dict(m)) for m in case.manifests]
    skipped = frozenset(
        o["metadata"]["name"]
        for o in [*objects, *edge.base]
        if o["kind"] == "Gateway"
        and (o["metadata"].get("annotations") or {}).get(SKIP_READINESS) == "true"
    )
    revision = put_objects(edge, objects)
    try:
        wait_for(lambda: edge.applied(revision), timeout=30, what="the watcher to apply the case")
        for check in case.status_checks:
            if (check.check or "condition") not in CHECKED:
                continue  # addresses and generations: the edge does not report them
            wait_status(edge, check, skipped, (*objects, *edge.base))
        if name in MUTATIONS:
            MUTATIONS[name](edge, objects)
        for case_request in case.requests:
            for ref in case_request.delete_before:
                kind_objects = [
                    o
                    for o in objects
                    if o["kind"] == ref.kind
                    and o["metadata"]["name"] == ref.name
                    and o["metadata"].get("namespace", "") == ref.namespace
                ]
                delete_objects(edge, kind_objects)
            if case_request.request.protocol == "websocket":
                eventually_websocket(edge, case_request)
                continue
            assert case_request.request.protocol is None, "h2 and h2c: not spoken here"
            eventually(edge, case_request)
    finally:
        delete_objects(edge, objects)
