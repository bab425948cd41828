"""ingress-nginx's Ingresses served by the edge (catalog.ingress_nginx_compat), end to
end: real etcd, the watcher and HAProxy, and the cases of ingress-nginx's own
documentation (docs/examples/rewrite, app-root, canary) with their expected answers."""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import builders
import pytest
from harness import (
    Backend,
    Etcd,
    HAProxy,
    WatcherProcess,
    endpoint_slice,
    service,
    store,
    wait_for,
    watcher_config,
)

NAMESPACE = "legacy"
N = "nginx.ingress.kubernetes.io/"


def nginx_ingress(
    name: str,
    host: str,
    path: str,
    service_name: str,
    annotations: dict[str, str],
    path_type: str = "ImplementationSpecific",
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    obj = builders.ingress(
        NAMESPACE,
        name,
        [(host, path, path_type, service_name)],
        created=created,
        annotations={N + key: value for key, value in annotations.items()},
    )
    obj["spec"]["ingressClassName"] = "nginx"
    return obj


@pytest.fixture
def compat_watcher(tmp_path: Path, etcd: Etcd, haproxy: HAProxy) -> Iterator[WatcherProcess]:
    config = watcher_config(tmp_path, etcd, haproxy, catalog={"ingress_nginx_compat": True})
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    yield process
    returncode = process.stop()
    print(process.log()[-5000:])
    assert returncode == 0


def status(watcher: WatcherProcess) -> dict[str, Any]:
    try:
        return json.loads((watcher.config_path.parent / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def request(
    port: int, host: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        body = response.read().decode()
        return response.status, body, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def serving(port: int, host: str, path: str, expected: str) -> Callable[[], bool]:
    def check() -> bool:
        status_code, body, _headers = request(port, host, path)
        return status_code == 200 and body.startswith(expected)

    return check


def pods(etcd: Etcd, name: str, backends: list[Backend]) -> None:
    store(etcd, service(NAMESPACE, name))
    store(etcd, endpoint_slice(NAMESPACE, name, [b.endpoint for b in backends]))


def test_the_documented_rewrite_and_app_root_examples(
    etcd: Etcd,
    haproxy: HAProxy,
    compat_watcher: WatcherProcess,
    backends: Callable[[str], Backend],
) -> None:
    http_svc = backends("http-svc")
    pods(etcd, "http-svc", [http_svc])
    # docs/examples/rewrite: "rewrite.bar.com/something rewrites to rewrite.bar.com/",
    # "/something/ to /", "/something/new to /new".
    store(
        etcd,
        nginx_ingress(
            "rewrite",
            "rewrite.bar.com",
            "/something(/|$)(.*)",
            "http-svc",
            {"use-regex": "true", "rewrite-target": "/$2"},
        ),
    )
    # docs/examples/rewrite, app-root: "approot.bar.com/ redirects to /app1".
    store(
        etcd,
        nginx_ingress("approot", "approot.bar.com", "/", "http-svc", {"app-root": "/app1"}),
    )
    port = haproxy.http_port
    wait_for(serving(port, "rewrite.bar.com", "/something", "http-svc"), what="the rewrite")
    for asked, reached in [
        ("/something", "/"),
        ("/something/", "/"),
        ("/something/new", "/new"),
        ("/something/new?x=1", "/new?x=1"),
    ]:
        assert request(port, "rewrite.bar.com", asked)[1] == f"http-svc {reached}\n", asked
    wait_for(lambda: request(port, "approot.bar.com", "/")[0] == 302, what="app-root")
    status_code, _body, headers = request(port, "approot.bar.com", "/")
    assert (status_code, headers["location"]) == (302, "/app1")
    assert request(port, "approot.bar.com", "/app1")[1] == "http-svc /app1\n"
    # Mapped differently: ingress-nginx's regex locations ignore case (~*); the route's
    # literal prefix is matched as written, so another case is not this route's.
    assert request(port, "rewrite.bar.com", "/SOMETHING/new")[0] == 404


def test_a_canary_ingress_by_weight_and_by_header(
    etcd: Etcd,
    haproxy: HAProxy,
    compat_watcher: WatcherProcess,
    backends: Callable[[str], Backend],
) -> None:
    # docs/examples/canary: production and canary Ingresses for one host, the canary
    # with canary-weight (and here canary-by-header too).
    production, canary = backends("production"), backends("canary")
    pods(etcd, "production", [production])
    pods(etcd, "canary", [canary])
    store(etcd, nginx_ingress("production", "echo.example", "/", "production", {}, "Prefix"))
    store(
        etcd,
        nginx_ingress(
            "canary",
            "echo.example",
            "/",
            "canary",
            {"canary": "true", "canary-weight": "20", "canary-by-header": "X-Canary"},
            "Prefix",
            created="2026-02-01T00:00:00Z",
        ),
    )
    port = haproxy.http_port

    def canary_joined() -> bool:
        routes = (status(compat_watcher).get("catalog") or {}).get("routes", [])
        return any(r.get("canary") for r in routes)

    wait_for(canary_joined, what="the canary joined to the production route")
    wait_for(serving(port, "echo.example", "/", ""), what="the route")
    assert request(port, "echo.example", "/", {"X-Canary": "always"})[1] == "canary /\n"
    assert request(port, "echo.example", "/", {"X-Canary": "never"})[1] == "production /\n"
    answered: Counter[str] = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(2000):
        connection.request("GET", "/", headers={"Host": "echo.example"})
        answered[connection.getresponse().read().decode().split()[0]] += 1
    connection.close()
    share = answered["canary"] / 2000
    assert set(answered) == {"canary", "production"}
    assert abs(share - 0.20) <= 0.05, answered


def test_snippets_are_never_executed_and_are_reported(
    etcd: Etcd,
    haproxy: HAProxy,
    compat_watcher: WatcherProcess,
    backends: Callable[[str], Backend],
) -> None:
    web = backends("web")
    pods(etcd, "web", [web])
    snippet = 'more_set_headers "X-Pwned: yes";'
    store(
        etcd,
        nginx_ingress(
            "web",
            "web.example",
            "/",
            "web",
            {
                "configuration-snippet": snippet,
                "server-snippet": "location /x { return 200; }",
                "proxy-body-size": "8m",
                "x-forwarded-prefix": "/web",
            },
            "Prefix",
        ),
    )
    port = haproxy.http_port
    wait_for(serving(port, "web.example", "/", "web"), what="the Ingress served")
    _status, _body, headers = request(port, "web.example", "/")
    assert "x-pwned" not in headers
    config = Path(haproxy.settings.config_file).read_text()
    assert "more_set_headers" not in config and "X-Pwned" not in config
    # The status file is written after HAProxy is brought up to date.
    ignored = wait_for(
        lambda: (status(compat_watcher).get("catalog") or {}).get("ignored"),
        what="the ignored annotations in the status file",
    )
    reasons = {item["reason"].split(" ignored: ")[0]: item for item in ignored}
    assert set(reasons) == {
        f"annotation {N}configuration-snippet",
        f"annotation {N}server-snippet",
        f"annotation {N}x-forwarded-prefix",
    }
    assert all(item["object"] == f"Ingress {NAMESPACE}/web" for item in ignored)
    assert "never executed" in reasons[f"annotation {N}configuration-snippet"]["reason"]
    # Translated: the body limit applies.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request(
        "POST", "/", body=b"x", headers={"Host": "web.example", "Content-Length": "9000000"}
    )
    assert connection.getresponse().status == 413
    connection.close()
