"""The collection's lookups and modules, run by ansible-playbook against real daemons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import http_route, rule, tls_secret
from harness import (
    endpoint_slice,
    http_get,
    ingress,
    service,
    store,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".lab" / "collections"
pytestmark = pytest.mark.skipif(
    shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None,
    reason="Ansible is installed by scripts/setup",
)


def play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    check: bool = False,
    keywords: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run tasks on localhost with this Python; returns each task's registered result.

    keywords: more play keywords (vars, module_defaults).
    """
    tasks = [{"register": f"result_{index}", **task} for index, task in enumerate(tasks)]
    registered = [task["register"] for task in tasks]
    playbook = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            **(keywords or {}),
            "tasks": [
                *tasks,
                {
                    "name": "Save the results",
                    "ansible.builtin.copy": {
                        "content": "{{ {"
                        + ", ".join(f"'{name}': {name}" for name in registered)
                        + "} | to_json }}",
                        "dest": str(tmp_path / "results.json"),
                        "mode": "0644",
                    },
                    "check_mode": False,
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(tmp_path / "play.yml"),
    ]
    if check:
        command.append("--check")
    run = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return dict(json.loads((tmp_path / "results.json").read_text()))


def etcd_args(etcd) -> dict[str, Any]:
    return {"endpoints": [etcd.endpoint]}


def test_k8s_objects_lookup_filters_and_redacts(etcd, tmp_path) -> None:
    store(etcd, service("shop", "web"))
    store(etcd, service("shop", "api"))
    store(etcd, service("other", "web"), encoding="json")
    store(etcd, tls_secret("shop", "www-tls"))
    store(etcd, endpoint_slice("shop", "web", [("10.0.0.1", 80)]))
    store(etcd, http_route("shop", "gw", [rule(("web", 80))], ["gw.example.com"]))
    lookups = {
        "services": "query('breakwater.edge.k8s_objects', kind='Service', namespace='shop', "
        "endpoints=e)",
        "one": "query('breakwater.edge.k8s_objects', kind='Service', namespace='other', "
        "name='web', endpoints=e)",
        "slices": "query('breakwater.edge.k8s_objects', kind='EndpointSlice', "
        "label_selector='kubernetes.io/service-name in (web,db)', endpoints=e)",
        "secret": "query('breakwater.edge.k8s_objects', kind='Secret', endpoints=e)",
        "routes": "query('breakwater.edge.k8s_objects', kind='HTTPRoute', endpoints=e)",
    }
    tasks = [
        {"ansible.builtin.set_fact": {name: "{{ " + text + " }}"}, "vars": {"e": [etcd.endpoint]}}
        for name, text in lookups.items()
    ]
    results = play(tmp_path, tasks)
    facts = [r["ansible_facts"] for r in results.values()]
    assert sorted(o["metadata"]["name"] for o in facts[0]["services"]) == ["api", "web"]
    assert [o["metadata"]["namespace"] for o in facts[1]["one"]] == ["other"]
    assert [o["metadata"]["name"] for o in facts[2]["slices"]] == ["web-a"]
    assert facts[3]["secret"][0]["data"] == {"tls.crt": "<redacted>", "tls.key": "<redacted>"}
    [route] = facts[4]["routes"]  # a CustomResource: stored as JSON, read back as it is
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["hostnames"] == ["gw.example.com"]


def test_etcd_keys_lookup(etcd, tmp_path) -> None:
    etcd.put("/breakwater/routes/a", b'{"hosts": ["a.example.com"]}')
    etcd.put("/breakwater/routes/b", b"\x00\xffbinary")
    task = {
        "ansible.builtin.set_fact": {
            "keys": "{{ query('breakwater.edge.etcd_keys', '/breakwater/routes/', "
            "prefix_match=true, endpoints=e) }}"
        },
        "vars": {"e": [etcd.endpoint]},
    }
    keys = play(tmp_path, [task])["result_0"]["ansible_facts"]["keys"]
    assert [(k["key"], k["encoding"]) for k in keys] == [
        ("/breakwater/routes/a", "utf-8"),
        ("/breakwater/routes/b", "base64"),
    ]


def test_lookup_error_names_the_endpoint(tmp_path) -> None:
    with pytest.raises(AssertionError, match=r"127\.0\.0\.1:1"):
        play(
            tmp_path,
            [
                {
                    "ansible.builtin.debug": {
                        "msg": "{{ query('breakwater.edge.k8s_objects', kind='Service', "
                        "endpoints=['http://127.0.0.1:1']) }}"
                    }
                }
            ],
        )


def test_route_module_is_idempotent_and_the_watcher_serves_it(
    etcd, haproxy, backends, watcher, tmp_path
) -> None:
    vm = backends("vm")
    route = {
        "breakwater.edge.route": {
            **etcd_args(etcd),
            "name": "billing",
            "spec": {
                "hosts": ["billing.example.com"],
                "servers": [{"address": vm.address, "port": vm.port}],
            },
        }
    }
    check = play(tmp_path, [route], check=True)["result_0"]
    assert check["changed"] and "billing.example.com" in check["diff"]["after"]
    first = play(tmp_path, [route])["result_0"]
    second = play(tmp_path, [route])["result_0"]
    assert first["changed"] and not second["changed"]
    wait_for(
        lambda: http_get(haproxy.http_port, "billing.example.com")[1].startswith("vm "),
        what="plain route",
    )

    bad = {
        "breakwater.edge.route": {
            **etcd_args(etcd),
            "name": "bad",
            "spec": {"hosts": ["x y"], "servers": []},
        }
    }
    with pytest.raises(AssertionError, match="would be rejected"):
        play(tmp_path, [bad])

    gone = {"breakwater.edge.route": {**etcd_args(etcd), "name": "billing", "state": "absent"}}
    assert play(tmp_path, [gone])["result_0"]["changed"]
    wait_for(
        lambda: http_get(haproxy.http_port, "billing.example.com")[0] == 404, what="route removed"
    )


def test_the_etcd_connection_set_once_per_play_reaches_modules_and_lookups(etcd, tmp_path) -> None:
    """breakwater_etcd and module_defaults' group/breakwater.edge.etcd, as documented."""
    keywords = {
        "vars": {"breakwater_etcd": etcd_args(etcd)},
        "module_defaults": {"group/breakwater.edge.etcd": "{{ breakwater_etcd }}"},
    }
    spec = {"hosts": ["once.example.com"], "servers": [{"address": "10.1.0.5", "port": 80}]}
    tasks = [
        {"breakwater.edge.route": {"name": "once", "spec": spec}},
        {
            "ansible.builtin.set_fact": {
                "keys": "{{ query('breakwater.edge.etcd_keys', '/breakwater/routes/once') }}"
            }
        },
    ]
    results = play(tmp_path, tasks, keywords=keywords)
    assert results["result_0"]["changed"]
    (key,) = results["result_1"]["ansible_facts"]["keys"]
    assert json.loads(key["value"])["hosts"] == ["once.example.com"]

    # Without the play's connection, the same tasks go to the default endpoint and fail.
    with pytest.raises(
        AssertionError, match=r"no etcd endpoint answered: http://127\.0\.0\.1:2379"
    ):
        play(tmp_path, tasks[1:])

    # A lookup's own argument wins over breakwater_etcd.
    wrong = {"vars": {"breakwater_etcd": {"endpoints": ["http://127.0.0.1:1"]}}}
    direct = {
        "ansible.builtin.set_fact": {
            "keys": "{{ query('breakwater.edge.etcd_keys', '/breakwater/routes/once', "
            "endpoints=e) }}"
        },
        "vars": {"e": [etcd.endpoint]},
    }
    assert play(tmp_path, [direct], keywords=wrong)["result_0"]["ansible_facts"]["keys"]
    bad = {"vars": {"breakwater_etcd": {"endpoint": [etcd.endpoint]}}}
    with pytest.raises(AssertionError, match=r"unknown option.*endpoint"):
        play(tmp_path, tasks[1:], keywords=bad)


def test_haproxy_server_drain_and_ready(etcd, haproxy, backends, watcher, tmp_path) -> None:
    one, two = backends("one"), backends("two")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [one.endpoint, two.endpoint]))
    store(etcd, ingress("shop", "web", "ops.example.com", "web"))
    wait_for(lambda: http_get(haproxy.http_port, "ops.example.com")[0] == 200, what="route")
    socket = haproxy.settings.stats_socket
    drain = {
        "breakwater.edge.haproxy_server": {
            "backend": "be_shop_web_http",
            "server": "s1",
            "state": "drain",
            "wait": True,
            "timeout": 10,
            "socket": socket,
        }
    }
    results = play(tmp_path, [drain, drain])
    assert results["result_0"]["changed"] and not results["result_1"]["changed"]
    assert {s["server"]: s["admin"] for s in results["result_0"]["servers"]} == {"s1": "drain"}
    answers = {http_get(haproxy.http_port, "ops.example.com")[1].split()[0] for _ in range(8)}
    assert answers == {"two"}
    info = play(
        tmp_path,
        [
            {
                "breakwater.edge.edge_info": {
                    "socket": socket,
                    "status_file": str(tmp_path / "status.json"),
                }
            }
        ],
    )
    servers = {
        s["server"]: s["admin"]
        for s in info["result_0"]["servers"]
        if s["backend"] == "be_shop_web_http"
    }
    assert servers["s1"] == "drain" and servers["s2"] == "ready"
    assert info["result_0"]["watcher"]["catalog"]["routes"][0]["host"] == "ops.example.com"
    ready = {
        "breakwater.edge.haproxy_server": {
            "backend": "be_shop_web_http",
            "state": "ready",
            "socket": socket,
        }
    }
    assert play(tmp_path, [ready])["result_0"]["changed"]
    assert {http_get(haproxy.http_port, "ops.example.com")[1].split()[0] for _ in range(8)} == {
        "one",
        "two",
    }


def test_varnish_ban_module_reports_each_node(edge, tmp_path) -> None:
    ban = {
        "breakwater.edge.varnish_ban": {
            "host": "shop.example.com",
            "path": "^/img/",
            "mode": "purge",
            "nodes": [edge.varnish.settings.admin],
            "secret_file": edge.varnish.settings.secret_file,
        }
    }
    result = play(tmp_path, [ban])["result_0"]
    assert result["nodes"] == [
        {"node": edge.varnish.settings.admin, "ok": True, "detail": "purged"}
    ]


def monitor(haproxy) -> int:
    port = int(haproxy.settings.monitor_binds[0].rsplit(":", 1)[1])
    return http_get(port, "monitor")[0]


def test_edge_node_rotation_survives_reloads(etcd, haproxy, backends, watcher, tmp_path) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "node.example.com", "web"))
    wait_for(lambda: http_get(haproxy.http_port, "node.example.com")[0] == 200, what="route")
    assert monitor(haproxy) == 200
    settings = {"socket": haproxy.settings.stats_socket, "config_dir": haproxy.settings.config_dir}
    out = {
        "breakwater.edge.edge_node": {
            "state": "out_of_rotation",
            "wait": True,
            "timeout": 10,
            **settings,
        }
    }
    results = play(tmp_path, [out, out])
    assert results["result_0"]["changed"] and not results["result_1"]["changed"]
    assert monitor(haproxy) == 503
    assert http_get(haproxy.http_port, "node.example.com")[0] == 200  # clients are still served
    reloads = haproxy.processes().reloads
    store(etcd, ingress("shop", "more", "*.more.example.com", "web"))  # first wildcard: a reload
    wait_for(lambda: haproxy.processes().reloads > reloads, what="reload")
    assert monitor(haproxy) == 503, "out of rotation survives a reload"
    back = {"breakwater.edge.edge_node": {"state": "in_rotation", **settings}}
    assert play(tmp_path, [back])["result_0"]["changed"]
    assert monitor(haproxy) == 200


def test_haproxy_config_module_puts_the_lookups_output_in_place(etcd, tmp_path) -> None:
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [("127.0.0.1", 8080)]))
    store(etcd, tls_secret("shop", "www-tls"))
    store(etcd, ingress("shop", "web", "www.example.com", "web", tls_secret="www-tls"))
    config_dir = tmp_path / "breakwater"
    config_file = config_dir / "haproxy.cfg"
    settings = {
        "haproxy": {
            "config_dir": str(config_dir),
            "config_file": str(config_file),
            "stats_socket": str(tmp_path / "admin.sock"),
            "master_socket": str(tmp_path / "master.sock"),
        },
        "catalog": {"allow_special_addresses": True},
    }
    # As the haproxy role does it (roles/haproxy/tasks/configure.yml).
    tasks = [
        {
            "ansible.builtin.set_fact": {
                "effective": "{{ lookup('breakwater.edge.catalog', output='settings', "
                "settings=s)['settings'] }}",
                "rendered": "{{ lookup('breakwater.edge.catalog', output='haproxy', settings=s, "
                "current_config=lookup('ansible.builtin.file', f, errors='ignore') "
                "| default('', true), "
                "endpoints=e) }}",
            },
            "vars": {"s": settings, "e": [etcd.endpoint], "f": str(config_file)},
            "no_log": True,
        },
        {
            "breakwater.edge.haproxy_config": {
                "config": "{{ rendered.config }}",
                "generation_dir": "{{ rendered.generation_dir }}",
                "files": "{{ rendered.files | rejectattr('secret') "
                "| items2dict(key_name='name', value_name='content') }}",
                "secret_files": "{{ rendered.files | selectattr('secret') "
                "| items2dict(key_name='name', value_name='content') }}",
                "config_file": "{{ effective.haproxy.config_file }}",
                "owner": "{{ lookup('ansible.builtin.pipe', 'id -un') }}",
                "group": "{{ lookup('ansible.builtin.pipe', 'id -gn') }}",
            },
            "diff": True,
        },
    ]
    check = play(tmp_path, tasks, check=True)["result_1"]
    assert check["changed"] and not config_dir.exists()
    assert check["diff"]["before"] == "" and "be_shop_web_http" in check["diff"]["after"]
    first = play(tmp_path, tasks)["result_1"]
    assert first["changed"] and first["written"][-1] == str(config_file)
    assert config_file.read_text() == check["diff"]["after"]
    assert (Path(first["generation_dir"]) / "certs").is_dir()
    secret_text = next(path.read_text() for path in Path(first["generation_dir"]).rglob("*.pem"))
    assert secret_text not in json.dumps(first), "secret files are never logged"
    second = play(tmp_path, tasks)["result_1"]
    assert not second["changed"] and second["written"] == [] and second["pruned"] == []

    # A new configuration keeps the one it replaces, as the watcher does after a
    # reload; a run with nothing new then changes nothing.
    store(etcd, ingress("shop", "more", "more.example.com", "web"))
    third = play(tmp_path, tasks)["result_1"]
    assert third["changed"] and third["pruned"] == []
    assert {p.name for p in config_dir.glob("gen-*")} == {
        Path(first["generation_dir"]).name,
        Path(third["generation_dir"]).name,
    }
    fourth = play(tmp_path, tasks, check=True)["result_1"]
    assert not fourth["changed"] and fourth["pruned"] == []


def test_check_edge_names_the_node_that_serves_something_else(
    etcd, haproxy, backends, watcher, tmp_path
) -> None:
    web = backends("web")
    store(etcd, service("shop", "web"))
    store(etcd, endpoint_slice("shop", "web", [web.endpoint]))
    store(etcd, ingress("shop", "web", "check.example.com", "web"))
    status_file = tmp_path / "status.json"
    wait_for(lambda: status_file.exists() and json.loads(status_file.read_text())["generation"])
    status = json.loads(status_file.read_text())
    # Three nodes: lb1 is this edge; lb2 says the same; lb3 serves an older generation.
    lb3 = {**status, "generation": "0123456789abcdef", "generation_since": 1795946000}
    for node, content in (("lb2", status), ("lb3", lb3)):
        (tmp_path / f"{node}.json").write_text(json.dumps(content))
    files = {"lb1": status_file, "lb2": tmp_path / "lb2.json", "lb3": tmp_path / "lb3.json"}
    inventory = {
        "lb": {
            "hosts": {
                node: {
                    "ansible_connection": "local",
                    "breakwater_settings": {
                        "haproxy": {"stats_socket": haproxy.settings.stats_socket},
                        "watcher": {"status_file": str(path)},
                    },
                }
                for node, path in files.items()
            }
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(tmp_path / "inventory.yml"),
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                "-e",
                "ansible_become=false",
                str(ROOT / "playbooks" / "check_edge.yml"),
            ],
            env={
                **os.environ,
                "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            },
            capture_output=True,
            text=True,
        )

    differing = check()
    assert differing.returncode != 0
    assert (
        f"1 of 3 nodes differ from generation {status['generation']} (served by lb1, lb2):"
        " lb3 serves 0123456789abcdef since 2026-11-29 09:53:20 UTC"
    ) in " ".join(differing.stdout.split()), differing.stdout[-3000:]

    (tmp_path / "lb3.json").write_text(json.dumps(status))  # lb3 has caught up
    same = check()
    assert same.returncode == 0, same.stdout[-3000:]
    assert f"3 nodes serve generation {status['generation']}" in same.stdout
