"""Traffic features through the edge (docs/traffic.md), end to end: real etcd, the
watcher and HAProxy, route ConfigMaps and Ingress annotations written into etcd as the
API server does, and real HTTP clients and servers.  Each test asserts what a client
sees: the status, the body, the headers, and which server answered."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import builders
import pytest
from harness import (
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    free_port,
    ingress,
    service,
    store,
    wait_for,
)

NAMESPACE = "traffic"


# --- servers of our own: any method, a body, a status asked for, a held request ----------


class Pod:
    """An HTTP server on a loopback address, as a Service's pod: answers any method with
    ``<name> <method> <path> <body bytes received>``; ``/status/<code>`` answers that
    status (body ``<name> says <code>``); ``/hold`` answers only once released."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.seen: list[tuple[str, str, int]] = []  # (method, path, body bytes)
        self.holding = 0  # requests on /hold not answered yet
        self.released = threading.Event()
        lock = threading.Lock()
        pod = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle's algorithm and
            # HAProxy's delayed ACK hold each keep-alive response for 40 ms.
            disable_nagle_algorithm = True

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = len(self.rfile.read(length)) if length else 0
                pod.seen.append((self.command, self.path, received))
                status, text = 200, f"{pod.name} {self.command} {self.path} {received}\n"
                if self.path.startswith("/status/"):
                    status = int(self.path.split("/")[2])
                    text = f"{pod.name} says {status}\n"
                if self.path.startswith("/hold"):
                    with lock:
                        pod.holding += 1
                    pod.released.wait(20)
                    with lock:
                        pod.holding -= 1
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_OPTIONS = do_DELETE = handle_any

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # HAProxy closes idle keep-alive connections; not an error here

        self.server = Server((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.address, self.port

    def posts(self) -> list[int]:
        """The body sizes of the POSTs received."""
        return [size for method, _path, size in self.seen if method == "POST"]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pods() -> Iterator[Callable[[str], Pod]]:
    """Start Pods like a Service's: each its own address (127.0.0.41…), all one port."""
    started: list[Pod] = []
    port = free_port()

    def start(name: str) -> Pod:
        pod = Pod(name, f"127.0.0.{41 + len(started)}", port)
        started.append(pod)
        return pod

    yield start
    for pod in started:
        pod.close()


# --- clients of the edge ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def server(self) -> str:
        """Which server answered: the first word of the body."""
        return self.body.split()[0] if self.body else ""

    @property
    def path(self) -> str:
        """The path the server got (harness Backend: ``<name> <path>``)."""
        return self.body.split()[1]


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS to the edge on 127.0.0.1, with ``server_name`` in SNI, trusting the test
    certificates (tests/fixtures/tls)."""

    def __init__(self, port: int, server_name: str, source: str) -> None:
        context = ssl.create_default_context(cafile=str(builders.TLS / "www.crt"))
        context.load_verify_locations(cafile=str(builders.TLS / "other.crt"))
        super().__init__(server_name, port, timeout=5, source_address=(source, 0), context=context)
        self.tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), 5, self.source_address)
        self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.host)


class Client:
    """One client of the edge: a keep-alive connection (reopened when the edge closes
    it) from the ``source`` loopback address; HTTPS with SNI ``server_name`` if given."""

    def __init__(self, port: int, source: str = "127.0.0.1", server_name: str | None = None):
        self.connection: http.client.HTTPConnection
        if server_name:
            self.connection = _TLSConnection(port, server_name, source)
        else:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=5, source_address=(source, 0)
            )

    def request(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        all_headers = {"Host": host, **(headers or {})}
        reused = self.connection.sock is not None
        try:
            self.connection.request(method, path, body=body, headers=all_headers)
            response = self.connection.getresponse()
        except (ConnectionError, http.client.BadStatusLine):
            if not reused:
                raise
            # An idle connection the edge closed (a reload): once more on a new one.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=all_headers)
            response = self.connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())

    def close(self) -> None:
        self.connection.close()


def fetch(port: int, host: str, path: str = "/", **options: Any) -> Answer:
    """One request on a connection of its own (``source`` picks the client's address)."""
    source = options.pop("source", "127.0.0.1")
    client = Client(port, source)
    try:
        return client.request(host, path, **options)
    finally:
        client.close()


def served(haproxy: HAProxy, host: str, server: str, path: str = "/") -> Callable[[], bool]:
    """A predicate: ``host`` answers 200 from ``server``."""

    def check() -> bool:
        answer = fetch(haproxy.http_port, host, path)
        return answer.status == 200 and answer.server == server

    return check


# --- objects in etcd ----------------------------------------------------------------------


def deploy(etcd: Etcd, name: str, endpoints: list[tuple[str, int]]) -> None:
    """A Service (port "http") and its EndpointSlice, every endpoint ready."""
    store(etcd, service(NAMESPACE, name))
    store(etcd, endpoint_slice(NAMESPACE, name, endpoints))


def route(etcd: Etcd, name: str, data: dict[str, str]) -> None:
    """A route ConfigMap (label breakwater.io/edge=true)."""
    store(etcd, builders.route_configmap(NAMESPACE, name, data))


def annotated(name: str, host: str, service_name: str, path: str = "/", **keys: str) -> Any:
    """An Ingress whose annotations are ``breakwater.io/<key>`` (``_`` in the
    keyword is ``-`` in the key)."""
    annotations = {f"breakwater.io/{k.replace('_', '-')}": v for k, v in keys.items()}
    return ingress(NAMESPACE, name, host, service_name, path=path, annotations=annotations)


def status_file(watcher: WatcherProcess) -> dict[str, Any]:
    return dict(json.loads((watcher.config_path.parent / "status.json").read_text()))


def rejected(watcher: WatcherProcess) -> dict[str, str]:
    """The objects the watcher rejects, with the reason, from its status file."""
    try:
        catalog = status_file(watcher).get("catalog") or {}
    except (OSError, ValueError):
        return {}
    return {r["object"]: r["reason"] for r in catalog.get("rejected", [])}


def until(watcher: WatcherProcess, predicate: Callable[[], Any], what: str) -> Any:
    """wait_for (15 s), telling what the watcher rejects when it times out."""
    try:
        return wait_for(predicate, timeout=15, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nrejected: {rejected(watcher)}") from None


# --- 1, 2. rate limits ----------------------------------------------------------------------


def test_rate_limits_per_client_address(etcd, haproxy, backends, pods, watcher) -> None:
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    # Two objects to one Service: one limited to 5 requests a second, one plain.
    store(etcd, annotated("limited", "limited.example", "web", rate_limit_rps="5"))
    store(etcd, ingress(NAMESPACE, "plain", "plain.example", "web"))
    slow = pods("slow")
    deploy(etcd, "slow", [slow.endpoint])
    route(etcd, "slow", {"hosts": "held.example", "rate-limit-connections": "3"})
    for host, server in (("plain.example", "web"), ("limited.example", "web")):
        until(watcher, served(haproxy, host, server), f"{host} served")
    until(watcher, served(haproxy, "held.example", "slow"), "held.example served")

    # A burst of 3 x the rate on one keep-alive connection, from an address that has
    # sent nothing before: the first 5 pass, then the edge answers 429.
    client = Client(haproxy.http_port, source="127.0.0.5")
    burst = [client.request("limited.example", f"/burst/{i}") for i in range(15)]
    statuses = [answer.status for answer in burst]
    assert statuses[:5] == [200] * 5, statuses
    assert 429 in statuses and set(statuses) == {200, 429}, statuses
    assert all(a.server == "web" for a in burst if a.status == 200)
    assert sum(web.requests[f"/burst/{i}"] for i in range(15)) == statuses.count(200)
    # The same client, at once, on the plain route of the same Service: not limited.
    plain = [client.request("plain.example", f"/plain/{i}").status for i in range(15)]
    assert plain == [200] * 15
    client.close()
    # The limit is per client address: another one is served.
    assert fetch(haproxy.http_port, "limited.example", source="127.0.0.6").status == 200

    # Concurrent requests: 3 held by the server from one address; a 4th is refused.
    with ThreadPoolExecutor(3) as pool:
        held = [
            pool.submit(fetch, haproxy.http_port, "held.example", f"/hold/{i}", source="127.0.0.7")
            for i in range(3)
        ]
        wait_for(lambda: slow.holding == 3, what="three requests held by the server")
        refused = fetch(haproxy.http_port, "held.example", "/fourth", source="127.0.0.7")
        other = fetch(haproxy.http_port, "held.example", "/other", source="127.0.0.8")
        slow.released.set()
        answers = [future.result() for future in held]
    assert refused.status == 429
    assert ("GET", "/fourth", 0) not in slow.seen  # the edge answered it itself
    assert (other.status, other.server) == (200, "slow")
    assert [(a.status, a.server) for a in answers] == [(200, "slow")] * 3
    # Once those are answered, the client is under the limit again.
    assert fetch(haproxy.http_port, "held.example", "/after", source="127.0.0.7").status == 200


# --- 3, 4. body size, source lists ----------------------------------------------------------


def test_body_size_and_source_lists(etcd, haproxy, backends, pods, watcher) -> None:
    upload = pods("upload")
    deploy(etcd, "upload", [upload.endpoint])
    route(etcd, "upload", {"hosts": "upload.example", "max-body-size": "1k"})
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    inside = {"service": "web", "hosts": "inside.example"}
    route(etcd, "inside", {**inside, "allow-sources": "127.0.0.1/32, 10.0.0.0/8"})
    route(
        etcd, "outside", {"service": "web", "hosts": "outside.example", "deny-sources": "127.0.0.3"}
    )
    store(etcd, ingress(NAMESPACE, "plain", "plain.example", "web"))
    until(watcher, served(haproxy, "upload.example", "upload"), "upload.example served")
    for host in ("inside.example", "outside.example", "plain.example"):
        until(watcher, served(haproxy, host, "web"), f"{host} served")

    # max-body-size 1k: 1,024 bytes reach the server, 1,025 are answered 413.
    port = haproxy.http_port
    below = fetch(port, "upload.example", "/up", method="POST", body=b"x" * 1024)
    assert (below.status, below.body) == (200, "upload POST /up 1024\n")
    above = fetch(port, "upload.example", "/up", method="POST", body=b"x" * 1025)
    assert above.status == 413
    assert upload.posts() == [1024]
    small = fetch(port, "upload.example", "/up", method="POST", body=b"hello")
    assert (small.status, small.body) == (200, "upload POST /up 5\n")

    # allow-sources: 127.0.0.1 is in the list, 127.0.0.2 is not.
    assert fetch(port, "inside.example", "/in").body == "web /in\n"
    denied = fetch(port, "inside.example", "/denied-2", source="127.0.0.2")
    assert denied.status == 403
    # deny-sources: 127.0.0.3 is in the list, 127.0.0.1 is not.
    assert fetch(port, "outside.example", "/out").body == "web /out\n"
    assert fetch(port, "outside.example", "/denied-3", source="127.0.0.3").status == 403
    assert web.requests["/denied-2"] == 0 and web.requests["/denied-3"] == 0
    # The lists are the objects' own: the plain route of the Service serves everyone.
    for source in ("127.0.0.2", "127.0.0.3"):
        assert fetch(port, "plain.example", "/p", source=source).status == 200


# --- 5. canary -------------------------------------------------------------------------------


def test_canary_weight_header_and_cookie(etcd, haproxy, pods, watcher) -> None:
    main, canary = pods("main"), pods("canary")
    deploy(etcd, "web", [main.endpoint])
    deploy(etcd, "web-canary", [canary.endpoint])
    route(
        etcd,
        "weighted",
        {
            "service": "web",
            "hosts": "weighted.example",
            "canary-service": "web-canary",
            "canary-weight": "20",
            "canary-header": "X-Canary",
            "canary-cookie": "canary",
        },
    )
    store(
        etcd,
        annotated(
            "valued",
            "valued.example",
            "web",
            canary_service="web-canary",
            canary_header="X-Version",
            canary_header_value="v2",
        ),
    )
    port = haproxy.http_port

    def canary_answers(host: str) -> bool:
        return fetch(port, host, headers={"X-Canary": "always", "X-Version": "v2"}).server == (
            "canary"
        )

    until(watcher, lambda: canary_answers("weighted.example"), "the weighted canary")
    until(watcher, lambda: canary_answers("valued.example"), "the header-value canary")

    client = Client(port)

    def servers(host: str, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
        answers = [client.request(host, headers=headers) for _ in range(count)]
        assert {a.status for a in answers} == {200}
        return Counter(a.server for a in answers)

    # canary-weight 20: a fifth of the requests, give or take 5 points over 2,000.
    share = servers("weighted.example", 2000)
    assert set(share) == {"main", "canary"}
    assert 15.0 <= 100 * share["canary"] / 2000 <= 25.0, share
    # The header decides first: always / never; then the cookie; then the weight.
    assert servers("weighted.example", 50, {"X-Canary": "always"}) == {"canary": 50}
    assert servers("weighted.example", 50, {"X-Canary": "never"}) == {"main": 50}
    assert servers("weighted.example", 50, {"Cookie": "canary=always"}) == {"canary": 50}
    assert servers("weighted.example", 50, {"Cookie": "a=1; canary=never"}) == {"main": 50}
    decided = {"X-Canary": "never", "Cookie": "canary=always"}
    assert servers("weighted.example", 50, decided) == {"main": 50}
    # canary-header-value: that value sends to the canary; another one does not
    # (weight 0: nothing else does).
    assert servers("valued.example", 50, {"X-Version": "v2"}) == {"canary": 50}
    assert servers("valued.example", 50, {"X-Version": "v1"}) == {"main": 50}
    assert servers("valued.example", 50, {"X-Version": "always"}) == {"main": 50}
    assert servers("valued.example", 50) == {"main": 50}
    client.close()


# --- 6. sticky cookie -------------------------------------------------------------------------


def _cookie(answer: Answer, name: str) -> str | None:
    """The value ``answer`` sets for the cookie ``name``, if it sets it."""
    for header in answer.headers.get_all("Set-Cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";")[0]
    return None


def test_sticky_cookie_across_drain_and_removal(etcd, haproxy, pods, watcher) -> None:
    one, two = pods("one"), pods("two")
    deploy(etcd, "web", [one.endpoint, two.endpoint])
    route(etcd, "web", {"hosts": "sticky.example", "sticky-cookie": "BWID"})
    port = haproxy.http_port

    def first_visit() -> Answer | None:
        answer = fetch(port, "sticky.example")
        return answer if answer.status == 200 and _cookie(answer, "BWID") else None

    first = until(watcher, first_visit, "a sticky cookie")
    header = " ".join(first.headers.get_all("Set-Cookie") or [])
    assert "HttpOnly" in header, header
    cookie = _cookie(first, "BWID")
    stuck = first.server
    other = "two" if stuck == "one" else "one"

    def visits(count: int, value: str | None) -> list[Answer]:
        client = Client(port)
        headers = {"Cookie": f"BWID={value}"} if value else {}
        try:
            return [client.request("sticky.example", headers=headers) for _ in range(count)]
        finally:
            client.close()

    # 100 requests with the cookie: the same server every time.
    assert {(a.status, a.server) for a in visits(100, cookie)} == {(200, stuck)}
    # New clients are spread over both servers, each with its own cookie.
    fresh = visits(10, None)
    assert {a.server for a in fresh} == {"one", "two"}
    cookies = {a.server: _cookie(a, "BWID") for a in fresh}
    assert cookies[stuck] == cookie and cookies[other] not in (None, cookie)

    # The sticky server drains (terminating, still serving): new clients go to the
    # other one; the clients stuck to it stay until it leaves (docs/traffic.md).
    endpoints = [one.endpoint, two.endpoint]
    draining = endpoint_slice(NAMESPACE, "web", endpoints)
    index = 0 if stuck == "one" else 1
    draining["endpoints"][index]["conditions"] = {
        "ready": False,
        "serving": True,
        "terminating": True,
    }
    store(etcd, draining)
    until(
        watcher,
        lambda: {a.server for a in visits(8, None)} == {other},
        "new clients only on the server that stays",
    )
    assert {(a.status, a.server) for a in visits(100, cookie)} == {(200, stuck)}

    # The sticky server leaves: its clients go to the other one, get its cookie and
    # stick there.
    remaining = two if stuck == "one" else one
    store(etcd, endpoint_slice(NAMESPACE, "web", [remaining.endpoint]))

    def moved() -> Answer | None:
        answer = visits(1, cookie)[0]
        return answer if answer.server == other else None

    answer = until(watcher, moved, "the stuck client moved")
    assert answer.status == 200
    new_cookie = _cookie(answer, "BWID")
    assert new_cookie is not None and new_cookie != cookie
    assert new_cookie == cookies[other]
    assert {(a.status, a.server) for a in visits(100, new_cookie)} == {(200, other)}

    # A new pod (another address, maybe in the slot the old one had) never inherits
    # the old pod's clients: the old cookie gets a new one, whichever server answers.
    three = pods("three")
    store(etcd, endpoint_slice(NAMESPACE, "web", [remaining.endpoint, three.endpoint]))
    until(
        watcher,
        lambda: "three" in {a.server for a in visits(8, None)},
        "the new pod in rotation",
    )
    for answer in visits(10, cookie):
        assert answer.status == 200
        assert _cookie(answer, "BWID") not in (None, cookie), (answer.server, answer.headers)


# --- 7, 8. rewrites, redirects ----------------------------------------------------------------


def test_rewrites_and_redirects(etcd, haproxy, backends, watcher) -> None:
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    # Without a regex, the target replaces the prefix the route matched.
    route(
        etcd,
        "strip",
        {"service": "web", "hosts": "rewrite.example", "paths": "/foo", "rewrite-target": "/"},
    )
    route(
        etcd,
        "move",
        {"service": "web", "hosts": "rewrite.example", "paths": "/old", "rewrite-target": "/new"},
    )
    route(
        etcd,
        "regex",
        {
            "service": "web",
            "hosts": "regex.example",
            "paths": "/api",
            "rewrite-regex": "^/api/v([0-9]+)/(.*)$",
            "rewrite-target": "/\\2/version-\\1",
        },
    )
    # ingress-nginx's documented example (path /something(/|$)(.*), rewrite-target /$2),
    # in native keys, on an Ingress.
    store(
        etcd,
        annotated(
            "something",
            "something.example",
            "web",
            path="/something",
            rewrite_regex="^/something(/|$)(.*)",
            rewrite_target="/\\2",
        ),
    )
    route(
        etcd,
        "moved",
        {
            "service": "web",
            "hosts": "moved.example",
            "redirect-to": "https://new.example/landing",
            "redirect-code": "301",
        },
    )
    store(
        etcd,
        annotated(
            "gone",
            "gone.example",
            "web",
            redirect_to="https://new.example/a%20b?from=gone&x=1",
            redirect_code="308",
        ),
    )
    route(
        etcd,
        "found",
        {"service": "web", "hosts": "found.example", "redirect-to": "http://new.example"},
    )
    route(etcd, "app", {"service": "web", "hosts": "app.example", "app-root": "/app"})
    port = haproxy.http_port

    def path_seen(host: str, path: str) -> str | None:
        answer = fetch(port, host, path)
        return answer.path if answer.status == 200 and answer.server == "web" else None

    until(watcher, lambda: path_seen("rewrite.example", "/foo/bar") == "/bar", "prefix rewrite")
    until(watcher, lambda: path_seen("rewrite.example", "/old/x") == "/new/x", "second prefix")
    until(
        watcher, lambda: path_seen("regex.example", "/api/v2/items") == "/items/version-2", "regex"
    )
    until(watcher, lambda: path_seen("something.example", "/something/new") == "/new", "nginx")
    until(watcher, lambda: path_seen("app.example", "/other") == "/other", "app-root route")

    # path /foo, target /: /foo/bar reaches the server as /bar; the query stays.
    assert path_seen("rewrite.example", "/foo") == "/"
    assert path_seen("rewrite.example", "/foo/") == "/"
    assert path_seen("rewrite.example", "/foo/bar/baz?q=1") == "/bar/baz?q=1"
    assert fetch(port, "rewrite.example", "/foobar").status == 404  # not under /foo
    # path /old, target /new.
    assert path_seen("rewrite.example", "/old") == "/new"
    assert path_seen("rewrite.example", "/old/a/b") == "/new/a/b"
    # rewrite-regex with groups; a path it does not match is left alone.
    assert path_seen("regex.example", "/api/v10/a/b") == "/a/b/version-10"
    assert path_seen("regex.example", "/api/other") == "/api/other"
    # ingress-nginx's example: /something, /something/ -> /; /something/new -> /new.
    assert path_seen("something.example", "/something") == "/"
    assert path_seen("something.example", "/something/") == "/"
    assert path_seen("something.example", "/something/new/deeper") == "/new/deeper"

    def redirect(host: str, path: str = "/") -> tuple[int, str | None]:
        answer = fetch(port, host, path)
        return answer.status, answer.header("Location")

    until(watcher, lambda: redirect("moved.example")[0] == 301, "the 301 redirect")
    until(watcher, lambda: redirect("gone.example")[0] == 308, "the 308 redirect")
    until(watcher, lambda: redirect("found.example")[0] == 302, "the 302 redirect")
    # The Location is the URL given, whatever the request's path.
    assert redirect("moved.example", "/some/page?a=1") == (301, "https://new.example/landing")
    gone = (308, "https://new.example/a%20b?from=gone&x=1")
    assert redirect("gone.example", "/x") == gone
    assert redirect("found.example", "/y") == (302, "http://new.example")
    # app-root: / only is redirected (302).
    slash = web.requests["/"]  # the rewrites to / above
    assert redirect("app.example") == (302, "/app")
    assert web.requests["/"] == slash
    assert path_seen("app.example", "/app") == "/app"
    assert path_seen("app.example", "/index.html") == "/index.html"
    # Nothing redirected reached the server.
    assert not {"/some/page?a=1", "/x", "/y"} & set(web.requests)


# --- 9, 10. HSTS, CORS ---------------------------------------------------------------------------


def test_hsts_on_tls_and_cors(etcd, haproxy, backends, pods, watcher) -> None:
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    store(etcd, builders.tls_secret(NAMESPACE, "www-tls", "www"))
    store(etcd, builders.tls_secret(NAMESPACE, "other-tls", "other"))
    route(
        etcd,
        "www",
        {
            "service": "web",
            "hosts": "www.example.com",
            "tls-secret": "www-tls",
            "hsts": "true",
            "hsts-max-age": "1d",
            "hsts-include-subdomains": "true",
            "hsts-preload": "true",
        },
    )
    route(
        etcd,
        "other",
        {"service": "web", "hosts": "other.example.org", "tls-secret": "other-tls", "hsts": "true"},
    )
    api = pods("api")
    deploy(etcd, "api", [api.endpoint])
    route(
        etcd,
        "api",
        {
            "hosts": "api.example",
            "cors": "true",
            "cors-allow-origin": "https://a.example https://b.example:8443",
            "cors-expose-headers": "X-Total",
        },
    )
    store(
        etcd, annotated("open", "open.example", "api", cors="true", cors_allow_credentials="false")
    )

    def tls_answer(host: str, path: str = "/") -> Answer:
        client = Client(haproxy.https_port, server_name=host)
        try:
            return client.request(host, path)
        finally:
            client.close()

    until(watcher, lambda: tls_answer("www.example.com").status == 200, "www over TLS")
    until(watcher, lambda: tls_answer("other.example.org").status == 200, "other over TLS")
    # HSTS on TLS responses, with the directives configured; not on plain HTTP.
    www = tls_answer("www.example.com", "/secure")
    assert (www.status, www.body) == (200, "web /secure\n")
    hsts = www.headers.get_all("Strict-Transport-Security")
    assert hsts == ["max-age=86400; includeSubDomains; preload"]
    assert tls_answer("other.example.org").header("Strict-Transport-Security") == "max-age=31536000"
    plain = fetch(haproxy.http_port, "www.example.com", "/plain")
    assert (plain.status, plain.header("Strict-Transport-Security")) == (200, None)

    port = haproxy.http_port
    until(watcher, served(haproxy, "api.example", "api"), "api.example served")
    until(watcher, served(haproxy, "open.example", "api"), "open.example served")

    def preflight(host: str, origin: str) -> Answer:
        headers = {
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        }
        return fetch(port, host, "/items", method="OPTIONS", headers=headers)

    # A preflight from an allowed origin: the edge answers 204 itself.
    seen = len(api.seen)
    answer = preflight("api.example", "https://b.example:8443")
    assert answer.status == 204
    assert answer.header("Access-Control-Allow-Origin") == "https://b.example:8443"
    assert answer.header("Access-Control-Allow-Methods") == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    allowed_headers = answer.header("Access-Control-Allow-Headers") or ""
    assert "Content-Type" in allowed_headers.split(", "), allowed_headers
    assert answer.header("Access-Control-Max-Age") == "1728000"
    assert answer.header("Access-Control-Allow-Credentials") == "true"
    assert len(api.seen) == seen  # not forwarded
    # A request from an allowed origin: the server answers, the edge adds the headers.
    answer = fetch(port, "api.example", "/items", headers={"Origin": "https://a.example"})
    assert (answer.status, answer.body) == (200, "api GET /items 0\n")
    assert answer.header("Access-Control-Allow-Origin") == "https://a.example"
    assert answer.header("Access-Control-Allow-Credentials") == "true"
    assert answer.header("Access-Control-Expose-Headers") == "X-Total"
    # An origin not in the list: no CORS header; its preflight is the server's to answer.
    for origin in ("https://evil.example", "https://a.example:8443", "http://a.example"):
        answer = fetch(port, "api.example", "/items", headers={"Origin": origin})
        assert answer.status == 200
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
        answer = preflight("api.example", origin)
        assert (answer.status, answer.body) == (200, "api OPTIONS /items 0\n")
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    # No Origin: no CORS header.
    answer = fetch(port, "api.example", "/items")
    assert answer.status == 200 and answer.header("Access-Control-Allow-Origin") is None
    # cors-allow-origin defaults to *; credentials off.
    answer = preflight("open.example", "https://any.example")
    assert answer.status == 204
    assert answer.header("Access-Control-Allow-Origin") == "*"
    assert answer.header("Access-Control-Allow-Credentials") is None
    answer = fetch(port, "open.example", "/x", headers={"Origin": "https://any.example"})
    assert answer.status == 200 and answer.header("Access-Control-Allow-Origin") == "*"


def test_hsts_holds_on_tls_requests_decided_in_bw_gateway(etcd, haproxy, backends, pods, watcher):
    """A TLS request on a host that also has a Gateway API route with conditions goes
    through bw_gateway (a unix socket, where ssl_fc is false); when it falls back to the
    route ConfigMap's path, that route's HSTS is still sent, and never on plain HTTP."""
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    beta = pods("beta")
    deploy(etcd, "beta", [beta.endpoint])
    store(etcd, builders.tls_secret(NAMESPACE, "www-tls", "www"))
    route(etcd, "www", {"service": "web", "hosts": "www.example.com", "tls-secret": "www-tls",
                        "hsts": "true"})  # fmt: skip
    store(etcd, builders.gateway_class())
    store(etcd, builders.gateway("infra", "gw"))
    header = {"type": "Exact", "name": "X-Beta", "value": "1"}
    beta_rule = builders.rule(("beta", 80), path="/api", headers=[header])
    store(etcd, builders.http_route(NAMESPACE, "beta", [beta_rule], ["www.example.com"]))

    def tls_answer(path: str, headers: dict[str, str] | None = None) -> Answer:
        client = Client(haproxy.https_port, server_name="www.example.com")
        try:
            return client.request("www.example.com", path, headers=headers or {})
        finally:
            client.close()

    port = haproxy.http_port
    until(
        watcher,
        lambda: fetch(port, "www.example.com", "/api", headers={"X-Beta": "1"}).server == "beta",
        "the HTTPRoute's match",
    )
    # The route's chain is decided in bw_gateway: without the header, on TLS, the
    # request falls back to the route ConfigMap's "/" -- with its HSTS.
    answer = tls_answer("/api")
    assert (answer.status, answer.server) == (200, "web")
    assert answer.header("Strict-Transport-Security") == "max-age=31536000"
    # The same path over plain HTTP: the same fallback, no HSTS.
    answer = fetch(port, "www.example.com", "/api")
    assert (answer.status, answer.server) == (200, "web")
    assert answer.header("Strict-Transport-Security") is None
    # A client's own X-Forwarded-Proto on plain HTTP is dropped: still none.
    answer = fetch(port, "www.example.com", "/api", headers={"X-Forwarded-Proto": "https"})
    assert answer.header("Strict-Transport-Security") is None
    # With the header, on TLS too (no HTTPS listener of ours could take the host): the
    # HTTPRoute's backend, which has no HSTS of its own.
    answer = tls_answer("/api", {"X-Beta": "1"})
    assert (answer.server, answer.header("Strict-Transport-Security")) == ("beta", None)


# --- 11. error pages -----------------------------------------------------------------------------

PAGE_503 = "<!doctype html><h1>We are down for a moment</h1><p>100% back soon</p>\n"
PAGE_404 = "<!doctype html><h1>Nothing here</h1>\n"
EDGE_PAGES = {status: f"<p>the edge says {status}</p>\n" for status in ("403", "413", "429")}


def pages(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A plain ConfigMap (not a route) of HTML pages by status."""
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": builders.meta(NAMESPACE, name),
        "data": data,
    }


def test_error_pages(etcd, haproxy, pods, watcher) -> None:
    store(etcd, pages("pages", {"503": PAGE_503, "404": PAGE_404, **EDGE_PAGES}))
    store(etcd, service(NAMESPACE, "down"))
    store(etcd, endpoint_slice(NAMESPACE, "down", []))  # no ready server
    route(etcd, "down", {"hosts": "down.example", "error-pages": "pages"})
    shop = pods("shop")
    deploy(etcd, "shop", [shop.endpoint])
    store(etcd, annotated("shop", "shop.example", "shop", error_pages="pages"))
    store(etcd, ingress(NAMESPACE, "plain", "plain.example", "shop"))
    guarded = {"max-body-size": "1k", "allow-sources": "127.0.0.0/24", "rate-limit-rps": "3"}
    guarded.update({"service": "shop", "hosts": "guarded.example", "error-pages": "pages"})
    route(etcd, "guarded", guarded)
    port = haproxy.http_port
    until(watcher, served(haproxy, "shop.example", "shop"), "shop.example served")
    until(watcher, served(haproxy, "guarded.example", "shop"), "guarded.example served")
    until(watcher, served(haproxy, "plain.example", "shop"), "plain.example served")

    # No server: HAProxy's 503 carries the page.
    until(watcher, lambda: fetch(port, "down.example").body == PAGE_503, "the 503 page")
    down = fetch(port, "down.example", "/any")
    assert (down.status, down.body) == (503, PAGE_503)
    assert down.header("Content-Type") == "text/html; charset=utf-8"
    # A server's own 404 and 503 are replaced by the pages.
    missing = fetch(port, "shop.example", "/status/404")
    assert (missing.status, missing.body) == (404, PAGE_404)
    assert missing.header("Content-Type") == "text/html; charset=utf-8"
    assert fetch(port, "shop.example", "/status/503").body == PAGE_503
    assert ("GET", "/status/404", 0) in shop.seen  # the server was asked
    # Other statuses, and the plain route to the same Service, are the server's own.
    assert fetch(port, "shop.example", "/status/500").body == "shop says 500\n"
    assert fetch(port, "shop.example", "/ok").body == "shop GET /ok 0\n"
    plain = fetch(port, "plain.example", "/status/404")
    assert (plain.status, plain.body) == (404, "shop says 404\n")

    # The edge's own refusals carry the pages too: 403, 413, 429.
    denied = fetch(port, "guarded.example", source="127.0.1.2")
    assert (denied.status, denied.body) == (403, EDGE_PAGES["403"])
    big = fetch(port, "guarded.example", "/up", method="POST", body=b"x" * 1025)
    assert (big.status, big.body) == (413, EDGE_PAGES["413"])
    client = Client(port, source="127.0.0.9")
    burst = [client.request("guarded.example") for _ in range(9)]
    client.close()
    assert [(a.status, a.body) for a in burst[:3]] == [(200, "shop GET / 0\n")] * 3
    assert (429, EDGE_PAGES["429"]) in [(a.status, a.body) for a in burst]

    # A changed page is served once the watcher has it.
    store(etcd, pages("pages", {"503": "<p>new</p>\n", "404": PAGE_404}))
    until(watcher, lambda: fetch(port, "down.example").body == "<p>new</p>\n", "the new page")


# --- 12. hostile values ---------------------------------------------------------------------------

HOSTILE: dict[str, dict[str, str]] = {
    # Each: the object's name, and its keys (a ConfigMap's) or annotations (an Ingress').
    "sources": {"allow-sources": "10.0.0.0/8 }\n    http-request deny"},
    "backtrack": {"rewrite-regex": "(a+)+$", "rewrite-target": "/\\1"},
    "script": {"redirect-to": "javascript:alert(1)"},
    "header": {"canary-service": "web", "canary-header": "X-Canary\n    use_backend be_x"},
}


def test_hostile_values_are_rejected_with_their_reason(etcd, haproxy, backends, watcher) -> None:
    web = backends("web")
    deploy(etcd, "web", [web.endpoint])
    route(
        etcd, "good", {"service": "web", "hosts": "good.example", "allow-sources": "127.0.0.0/30"}
    )
    until(watcher, served(haproxy, "good.example", "web"), "the good route")
    for name, keys in HOSTILE.items():
        route(etcd, f"cm-{name}", {"service": "web", "hosts": f"cm-{name}.example", **keys})
        store(etcd, annotated(f"ing-{name}", f"ing-{name}.example", "web", **keys))
    # Written after them: once it serves, what is live has seen them all.
    store(etcd, annotated("late", "late.example", "web", deny_sources="127.0.0.9"))
    until(watcher, served(haproxy, "late.example", "web"), "the route written last")

    expected = {
        "sources": "allow-sources '}' is not a network",
        "backtrack": "rewrite-regex '(a+)+$' nests a repeat in a repeat",
        "script": "redirect-to 'javascript:alert(1)' is not an absolute http or https URL",
        "header": "canary-header 'X-Canary\\n    use_backend be_x' is not a header name",
    }
    names = [
        f"{kind} {NAMESPACE}/{prefix}-{name}"
        for name in HOSTILE
        for kind, prefix in (("ConfigMap", "cm"), ("Ingress", "ing"))
    ]
    reasons = until(
        watcher, lambda: (r := rejected(watcher)) and all(n in r for n in names) and r, "rejections"
    )
    for name, reason in expected.items():
        assert reason in reasons[f"ConfigMap {NAMESPACE}/cm-{name}"], reasons
        assert reason in reasons[f"Ingress {NAMESPACE}/ing-{name}"], reasons

    # Nothing of them is rendered: no host in any map, no value in any file.
    config_dir = Path(haproxy.settings.config_dir)
    texts = [Path(haproxy.settings.config_file).read_text()]
    texts += [p.read_text(errors="replace") for p in config_dir.rglob("*") if p.is_file()]
    everything = "\n".join(texts)
    for name in HOSTILE:
        assert f"cm-{name}.example" not in everything
        assert f"ing-{name}.example" not in everything
    for value in ("javascript", "(a+)+", "be_x", "http-request deny\n", "X-Canary"):
        assert value not in everything, value
    for name in HOSTILE:
        for prefix in ("cm", "ing"):
            assert fetch(haproxy.http_port, f"{prefix}-{name}.example").status == 404
    # The good routes keep serving, their own rules in force.
    assert fetch(haproxy.http_port, "good.example", "/still").body == "web /still\n"
    assert fetch(haproxy.http_port, "good.example", source="127.0.0.2").status == 200
    assert fetch(haproxy.http_port, "good.example", source="127.0.0.5").status == 403
    assert fetch(haproxy.http_port, "late.example", source="127.0.0.9").status == 403
    assert fetch(haproxy.http_port, "late.example", source="127.0.0.5").status == 200


def test_retries_go_to_another_server(etcd, haproxy, pods, watcher) -> None:
    # Two endpoints of each Service: a live pod, and an address where nothing listens
    # (a pod gone without its endpoint removed yet): every other request meets it.
    live = pods("live")
    dead = ("127.0.0.99", live.port)
    deploy(etcd, "flaky", [live.endpoint, dead])
    deploy(etcd, "flaky-plain", [live.endpoint, dead])
    route(
        etcd,
        "flaky",
        {"hosts": "retried.example", "retries": "2", "retry-on": "conn-failure empty-response"},
    )
    route(etcd, "flaky-plain", {"hosts": "not-retried.example"})
    until(watcher, served(haproxy, "retried.example", "live"), "the retried route")
    until(watcher, served(haproxy, "not-retried.example", "live"), "the plain route")
    retried = Counter(fetch(haproxy.http_port, "retried.example").status for _ in range(20))
    plain = Counter(fetch(haproxy.http_port, "not-retried.example").status for _ in range(6))
    # Retried on the live server (at once: another server needs no turn-around delay):
    # every request answered.
    assert retried == {200: 20}
    # Without the option, HAProxy's default retries stay on the dead server: 503s.
    assert plain[503] > 0 and plain[200] > 0, plain
