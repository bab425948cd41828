#!/usr/bin/env python3
"""Log lines per reload: what HAProxy writes when it is reloaded with N backends.

Renders N backends (one server each) with the watcher's renderer, starts Debian's
HAProxy in master-worker mode on loopback with ``log stdout`` (as production does),
reloads it through the master socket, waits for the old worker to exit, and counts
the lines each channel got during the reload: the log target (stdout), and stderr,
where HAProxy 2.6 prints every stopped proxy whatever its configuration.

    .venv/bin/python bench/log_volume.py [--backends 500 10000] [--backend-log errors all]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts tests/integration on the path)
from harness import free_port, parse_show_proc, wait_for

from breakwater.catalog import Backend, BackendOptions, Catalog, Route, Server
from breakwater.render.haproxy import render_haproxy
from breakwater.render.slots import assign_slots
from breakwater.targets.settings import HAProxySettings
from breakwater.targets.staging import ensure_node_state, write_generation


def master(socket_path: str, command: str) -> str:
    return subprocess.run(
        ["socat", "-", f"UNIX-CONNECT:{socket_path}"],
        input=command + "\n",
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def lines_per_reload(count: int, backend_log: str, work: Path) -> dict[str, int]:
    settings = HAProxySettings(
        config_dir=str(work / "breakwater"),
        config_file=str(work / "haproxy.cfg"),
        stats_socket=str(work / "admin.sock"),
        master_socket=str(work / "master.sock"),
        http_binds=(f"127.0.0.1:{free_port()}",),
        https_binds=(),
        hard_stop_after="10s",
        backend_log=backend_log,
    )
    backends = {}
    routes = []
    for index in range(count):
        name = f"be_bench_svc{index}_http"
        backends[name] = Backend(
            name,
            "bench",
            f"svc{index}",
            "http",
            BackendOptions(),
            (Server("127.0.0.1", 1, "ready"),),  # never receives a request
        )
        routes.append(Route(f"svc{index}.bench.example", "/", "prefix", name, f"svc{index}"))
    catalog = Catalog(backends=backends, routes=routes)
    rendered = render_haproxy(catalog, assign_slots(catalog, {}, 4), settings)
    Path(settings.config_dir).mkdir()
    ensure_node_state(settings.config_dir)
    write_generation(rendered)
    Path(settings.config_file).write_text(rendered.config)
    stdout, stderr = open(work / "stdout", "wb"), open(work / "stderr", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        ["haproxy", "-W", "-S", settings.master_socket, "-f", settings.config_file],
        stdout=stdout,
        stderr=stderr,
    )
    try:
        table = wait_for(
            lambda: (
                "worker" in master(settings.master_socket, "show proc")
                and parse_show_proc(master(settings.master_socket, "show proc"))
            ),
            timeout=120,
        )
        time.sleep(0.5)
        before = {
            name: len((work / name).read_text().splitlines()) for name in ("stdout", "stderr")
        }
        master(settings.master_socket, "reload")
        wait_for(
            lambda: (
                (t := parse_show_proc(master(settings.master_socket, "show proc"))).workers
                and t.workers != table.workers
                and len(t.workers) == 1
            ),
            timeout=120,
        )
        time.sleep(0.5)
        after = {name: (work / name).read_text().splitlines() for name in ("stdout", "stderr")}
    finally:
        process.terminate()
        process.wait(30)
    figures = {}
    for name in ("stdout", "stderr"):
        new = after[name][before[name] :]
        figures[name] = len(new)
        figures[f"{name} 'Proxy stopped'"] = sum(
            1 for line in new if re.search(r"Proxy \S+ stopped", line)
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", type=int, nargs="+", default=[500, 10000])
    parser.add_argument("--backend-log", nargs="+", default=["all", "errors"])
    args = parser.parse_args()
    print(f"{'backends':>8} {'backend_log':<11} {'log target lines':>16} {'stderr lines':>12}")
    for count in args.backends:
        for backend_log in args.backend_log:
            with tempfile.TemporaryDirectory(prefix="bw-bench-") as work:
                figures = lines_per_reload(count, backend_log, Path(work))
            print(f"{count:>8} {backend_log:<11} {figures['stdout']:>16} {figures['stderr']:>12}")


if __name__ == "__main__":
    main()
