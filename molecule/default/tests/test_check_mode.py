"""--check --diff tells the truth on the converged edge (runs first: right after
converge and idempotence, before the behaviour tests change anything)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import testinfra
import testinfra.utils.ansible_runner

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
LB_NODES = RUNNER.get_hosts("lb")
LAB = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / ".lab" / "molecule"


def run_json(*arguments: str, program: str = "ansible-playbook") -> dict:
    """Runs an Ansible command with the installed collection; its JSON report."""
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."))
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(project / ".lab" / "installed"),
        "BREAKWATER_LAB_DIR": str(LAB),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / program),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            *arguments,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return dict(json.loads(run.stdout))


def changed_tasks(report: dict) -> dict[str, set[str]]:
    """Task (or handler) name -> the hosts it changed, or would change in check mode."""
    changed: dict[str, set[str]] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for name, result in task["hosts"].items():
                if result.get("changed"):
                    changed.setdefault(task["task"]["name"], set()).add(name)
    return changed


def test_check_mode_on_the_converged_edge_reports_nothing_to_change() -> None:
    report = run_json("breakwater.edge.site", "--check", "--diff")
    assert changed_tasks(report) == {}
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), report["stats"]


def test_check_mode_reports_exactly_one_real_change_and_its_handlers() -> None:
    node = LB_NODES[0]
    # The node's settings as Ansible templates them, with one value changed.
    shown = run_json(
        node, "-m", "ansible.builtin.debug", "-a", "var=breakwater_settings", program="ansible"
    )
    settings = shown["plays"][0]["tasks"][0]["hosts"][node]["breakwater_settings"]
    maxconn = int(settings["haproxy"]["maxconn"])
    settings["haproxy"]["maxconn"] = maxconn + 1
    extra = LAB / f"check-mode-{node}.json"
    extra.write_text(json.dumps({"breakwater_settings": settings}))

    report = run_json(
        "breakwater.edge.site", "--check", "--diff", "--limit", node, "-e", f"@{extra}"
    )
    changed = changed_tasks(report)
    # haproxy.cfg (the haproxy role's module) and watcher.yml (the watcher renders the
    # same configuration) change; each notifies its reload, and nothing else changes.
    assert changed == {
        "breakwater.edge.haproxy : Put the configuration in place, as the watcher does": {node},
        "breakwater.edge.watcher : Write watcher.yml": {node},
        "breakwater.edge.haproxy : Reload haproxy": {node},
        "breakwater.edge.watcher : Reload watcher": {node},
    }
    diffs = json.dumps(
        [
            result.get("diff")
            for play in report["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
        ]
    )
    assert f"maxconn {maxconn + 1}" in diffs
    # Check mode changed nothing on the node.
    host = testinfra.get_host(f"podman://{node}")
    config = host.file(settings["haproxy"]["config_file"]).content_string
    assert f"maxconn {maxconn}\n" in config and f"maxconn {maxconn + 1}" not in config
