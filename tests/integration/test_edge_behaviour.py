"""What clients of the edge see: TLS by SNI, no errors across reloads, systemd notifications."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from builders import route_configmap, tls_secret
from harness import (
    endpoint_slice,
    http_get,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)

TLS = Path(__file__).resolve().parents[1] / "fixtures" / "tls"


def https_get(port: int, server_name: str, path: str = "/") -> tuple[int, str, dict]:
    context = ssl.create_default_context(cafile=str(TLS / "www.crt"))
    context.load_verify_locations(cafile=str(TLS / "other.crt"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        certificate = tls.getpeercert()
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(), certificate


def test_tls_secret_served_by_sni(etcd, haproxy, backends, watcher) -> None:
    web, other = backends("web"), backends("other")
    for name, backend in (("web", web), ("other", other)):
        store(etcd, service("shop", name))
        store(etcd, endpoint_slice("shop", name, [backend.endpoint]))
    store(etcd, tls_secret("shop", "www-tls", "www"))
    store(etcd, tls_secret("shop", "other-tls", "other"))
    www = ingress("shop", "web", "www.example.com", "web", tls_secret="www-tls")
    store(etcd, www)
    store(etcd, ingress("shop", "other", "other.example.org", "other", tls_secret="other-tls"))

    def subject(certificate: dict) -> str:
        return dict(item[0] for item in certificate["subject"])["commonName"]

    status, body, certificate = wait_for(
        lambda: https_get(haproxy.https_port, "www.example.com"), what="HTTPS with SNI"
    )
    assert (status, body.split()[0], subject(certificate)) == (200, "web", "www.example.com")
    status, body, certificate = https_get(haproxy.https_port, "other.example.org")
    assert (status, body.split()[0], subject(certificate)) == (200, "other", "other.example.org")

    # Forwarding headers: the real client and scheme; a client cannot claim TLS.
    https_get(haproxy.https_port, "www.example.com", "/over-tls")
    assert web.headers["/over-tls"]["x-forwarded-proto"] == "https"
    assert web.headers["/over-tls"]["x-forwarded-for"] == "127.0.0.1"
    forged = {"Host": "www.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6"}
    connection = http.client.HTTPConnection("127.0.0.1", haproxy.http_port, timeout=5)
    connection.request("GET", "/plain", headers=forged)
    assert connection.getresponse().status == 200
    connection.close()
    assert "x-forwarded-proto" not in web.headers["/plain"]
    assert web.headers["/plain"]["x-forwarded-for"] == "127.0.0.1"

    pem_files = list(Path(haproxy.settings.config_dir).glob("gen-*/certs/*.pem"))
    assert len(pem_files) == 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in pem_files)


def test_https_redirect_annotation(etcd, haproxy, backends, watcher) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, tls_secret("shop", "www-tls", "www"))
    store(
        etcd,
        ingress(
            "shop",
            "web",
            "www.example.com",
            "web",
            tls_secret="www-tls",
            annotations={"breakwater.io/https-redirect": "true"},
        ),
    )

    def redirected() -> str | None:
        connection = http.client.HTTPConnection("127.0.0.1", haproxy.http_port, timeout=5)
        connection.request("GET", "/login?next=1", headers={"Host": "www.example.com"})
        response = connection.getresponse()
        return response.getheader("Location") if response.status == 308 else None

    assert wait_for(redirected, what="308 redirect") == "https://www.example.com/login?next=1"


def test_keep_alive_clients_see_no_errors_across_reloads(etcd, haproxy, backends, watcher) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "load.example.com", "web"))
    wait_for(lambda: http_get(haproxy.http_port, "load.example.com")[0] == 200, what="route")
    reloads_before = haproxy.processes().reloads
    stop = threading.Event()
    results = {"ok": 0, "errors": []}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", haproxy.http_port, timeout=5)
        while not stop.is_set():
            try:
                connection.request("GET", "/", headers={"Host": "load.example.com"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    results["ok"] += 1
                else:
                    results["errors"].append(response.status)
                if response.will_close:
                    connection.close()  # the server said so: reconnect, not an error
            except Exception as exc:
                results["errors"].append(repr(exc))
                connection.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for index in range(10):  # ten structural changes (a backend's timeout): ten reloads
        reloads = haproxy.processes().reloads
        options = {"hosts": "extra.example.com", "timeout-server": f"{30 + index}s"}
        store(etcd, route_configmap("shop", "web", options))
        wait_for(lambda r=reloads: haproxy.processes().reloads > r, what=f"reload {index}")
        assert http_get(haproxy.http_port, "extra.example.com")[0] == 200
    stop.set()
    for thread in threads:
        thread.join()
    assert haproxy.processes().reloads >= reloads_before + 10
    assert results["errors"] == []
    assert results["ok"] > 100


def test_systemd_notifications(etcd, haproxy, tmp_path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(10)
    config = watcher_config(tmp_path, etcd, haproxy)
    environment = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"}
    log = open(tmp_path / "watcher.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "breakwater.cli", "watch", "--config", str(config)],
        env=environment,
        stdout=log,
        stderr=log,
    )
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            "READY=1" in messages and messages.count("WATCHDOG=1") >= 3
        ):
            messages.append(notify.recv(4096).decode())
    finally:
        process.terminate()
        assert process.wait(10) == 0
        notify.close()
    assert "READY=1" in messages
    assert messages.count("WATCHDOG=1") >= 3


def test_status_file_and_catalog_command(etcd, haproxy, backends, watcher, tmp_path) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "cli.example.com", "web"))
    bad = ingress("shop", "bad", "cli.example.com", "ghost", path="/ghost")
    store(etcd, bad)
    output = subprocess.run(
        [
            *[sys.executable, "-m", "breakwater.cli", "catalog", "--etcd-endpoints", etcd.endpoint],
            *["--set", "catalog.allow_special_addresses=true"],  # backends on 127.0.0.x
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    catalog = json.loads(output)
    assert [r["host"] for r in catalog["routes"]] == ["cli.example.com"]
    assert catalog["backends"]["be_shop_web_http"]["servers"] == [
        {"address": web.address, "port": web.port, "state": "ready"}
    ]
    assert catalog["rejected"] == [
        {"object": "Ingress shop/bad", "reason": "service shop/ghost does not exist"}
    ]
    status = wait_for(
        lambda: json.loads((tmp_path / "status.json").read_text())["catalog"], what="status"
    )
    assert status["routes"][0]["host"] == "cli.example.com"
