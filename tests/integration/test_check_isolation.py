"""One object whose configuration HAProxy's check refuses never blocks the others."""

from __future__ import annotations

import json
from pathlib import Path

from harness import (
    WatcherProcess,
    endpoint_slice,
    http_get,
    ingress,
    service,
    store,
    wait_for,
    watcher_config,
)

from breakwater.render.templates import DEFAULT_TEMPLATE

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "src" / "breakwater" / "templates" / DEFAULT_TEMPLATE
)


def rejections(path: Path) -> dict[str, str]:
    status = json.loads(path.read_text())
    return {r["object"]: r["reason"] for r in (status["catalog"] or {}).get("rejected", [])}


def test_an_object_the_check_refuses_is_held_back_and_the_rest_is_served(
    etcd, haproxy, backends, tmp_path
) -> None:
    # An operator's template that writes, for some backends, a line HAProxy refuses:
    # what no validation of ours can foresee.
    text = TEMPLATE.read_text()
    anchor = "    balance {{ backend.options.balance }}\n"
    assert anchor in text
    refusing = text.replace(
        anchor,
        anchor + '{% if backend.service.startswith("refuse") %}    no-such-keyword\n{% endif %}',
    )
    template = tmp_path / "operator.cfg.j2"
    template.write_text(refusing)
    config = watcher_config(tmp_path, etcd, haproxy, haproxy={"template": str(template)})
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    status = tmp_path / "status.json"
    try:
        web, other = backends("web"), backends("refused")
        store(etcd, service("shop", "web"))
        store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
        store(etcd, service("shop", "refuse-me"))
        store(etcd, endpoint_slice("shop", "refuse-me", [other.endpoint]))
        store(etcd, ingress("shop", "bad", "bad.example.com", "refuse-me"))
        store(etcd, ingress("shop", "good", "good.example.com", "web"))

        wait_for(lambda: http_get(haproxy.http_port, "good.example.com")[0] == 200, what="good")
        assert http_get(haproxy.http_port, "bad.example.com")[0] == 404
        reasons = wait_for(lambda: rejections(status).get("Ingress shop/bad"), what="reason")
        assert "HAProxy's check refused" in reasons and "no-such-keyword" in reasons
        assert json.loads(status.read_text())["last_error"] is None

        # Later changes are not blocked: a new route is served (one more reload).
        store(etcd, ingress("shop", "late", "late.example.com", "web"))
        wait_for(lambda: http_get(haproxy.http_port, "late.example.com")[0] == 200, what="late")
        assert "Ingress shop/bad" in rejections(status)

        # The object changes (now routes to a good Service): it is tried again, and served.
        store(etcd, ingress("shop", "bad", "bad.example.com", "web"))
        wait_for(lambda: http_get(haproxy.http_port, "bad.example.com")[0] == 200, what="retry")
        wait_for(lambda: "Ingress shop/bad" not in rejections(status), what="no rejection")
    finally:
        assert process.stop() == 0


def test_a_sync_that_fails_is_in_the_status_file_at_once(etcd, haproxy, backends, tmp_path):
    # A template that cannot render (StrictUndefined): every sync raises, whatever the
    # objects; the status file must say so, not keep last_error null.
    template = tmp_path / "broken.cfg.j2"
    template.write_text(TEMPLATE.read_text() + "{{ no_such_variable }}\n")
    config = watcher_config(tmp_path, etcd, haproxy, haproxy={"template": str(template)})
    process = WatcherProcess(config, tmp_path / "watcher.log")
    process.start()
    status = tmp_path / "status.json"
    try:
        web = backends("web")
        store(etcd, service("shop", "web"))
        store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
        store(etcd, ingress("shop", "good", "good.example.com", "web"))
        error = wait_for(
            lambda: status.exists() and json.loads(status.read_text())["last_error"],
            what="the failed sync in the status file",
        )
        assert "no_such_variable" in error
        assert json.loads(status.read_text())["last_action"] == "failed"
    finally:
        assert process.stop() == 0
