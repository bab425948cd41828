"""The edge's monitoring files (monitoring/): the Prometheus alerting rules pass
``promtool check rules`` and their unit tests (``promtool test rules``); the Grafana
dashboard is valid JSON whose every query parses and names only metrics that exist.

The metric names below are real: the watcher's are checked against its own registry
here; HAProxy's and Varnish's were scraped from the real exporters, as each list says.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from breakwater.daemon.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "breakwater-alerts.yml"
RULE_TESTS = MONITORING / "tests" / "breakwater-alerts.test.yml"
DASHBOARD = MONITORING / "breakwater-dashboard.json"


def names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The watcher's series (src/breakwater/daemon/metrics.py), as exposed: counters with
# _total, histograms as _bucket/_sum/_count (the _created series are left out).
# test_watcher_names_are_its_registrys keeps this list in step with the registry.
WATCHER_METRICS = names(
    """
    breakwater_etcd_connected breakwater_etcd_revision_seen breakwater_etcd_revision_applied
    breakwater_watch_events_total breakwater_syncs_total
    breakwater_sync_duration_seconds_bucket breakwater_sync_duration_seconds_sum
    breakwater_sync_duration_seconds_count
    breakwater_event_to_applied_seconds_bucket breakwater_event_to_applied_seconds_sum
    breakwater_event_to_applied_seconds_count
    breakwater_haproxy_reloads_total breakwater_haproxy_check_failures_total
    breakwater_haproxy_runtime_commands_total breakwater_haproxy_server_slots
    breakwater_haproxy_spare_backends
    breakwater_rejected_objects breakwater_rejected_object breakwater_unreadable_keys_total
    breakwater_generation_info
    """
)

# HAProxy 2.6.12 (Debian 12's haproxy 2.6.12-1+deb12u4), its built-in exporter: haproxy
# started on loopback with a frontend `http-request use-service prometheus-exporter if
# { path /metrics }`, a second frontend, one backend (be_app, with a stick-table) and one
# server, then `curl http://127.0.0.1:<port>/metrics`; every `# TYPE` name (all scopes:
# global, frontend, backend, server, sticktable). Labels: proxy, server, code, state.
HAPROXY_METRICS = names(
    """
    haproxy_backend_active_servers haproxy_backend_agg_check_status
    haproxy_backend_agg_server_check_status haproxy_backend_agg_server_status
    haproxy_backend_backup_servers haproxy_backend_bytes_in_total
    haproxy_backend_bytes_out_total haproxy_backend_check_last_change_seconds
    haproxy_backend_check_up_down_total haproxy_backend_client_aborts_total
    haproxy_backend_connect_time_average_seconds haproxy_backend_connection_attempts_total
    haproxy_backend_connection_errors_total haproxy_backend_connection_reuses_total
    haproxy_backend_current_queue haproxy_backend_current_sessions
    haproxy_backend_downtime_seconds_total haproxy_backend_failed_header_rewriting_total
    haproxy_backend_http_cache_hits_total haproxy_backend_http_cache_lookups_total
    haproxy_backend_http_comp_bytes_bypassed_total haproxy_backend_http_comp_bytes_in_total
    haproxy_backend_http_comp_bytes_out_total haproxy_backend_http_comp_responses_total
    haproxy_backend_http_requests_total haproxy_backend_http_responses_total
    haproxy_backend_internal_errors_total haproxy_backend_last_session_seconds
    haproxy_backend_limit_sessions haproxy_backend_loadbalanced_total
    haproxy_backend_max_connect_time_seconds haproxy_backend_max_queue
    haproxy_backend_max_queue_time_seconds haproxy_backend_max_response_time_seconds
    haproxy_backend_max_session_rate haproxy_backend_max_sessions
    haproxy_backend_max_total_time_seconds haproxy_backend_queue_time_average_seconds
    haproxy_backend_redispatch_warnings_total haproxy_backend_requests_denied_total
    haproxy_backend_response_errors_total haproxy_backend_response_time_average_seconds
    haproxy_backend_responses_denied_total haproxy_backend_retry_warnings_total
    haproxy_backend_server_aborts_total haproxy_backend_sessions_total haproxy_backend_status
    haproxy_backend_total_time_average_seconds haproxy_backend_uweight haproxy_backend_weight
    haproxy_frontend_bytes_in_total haproxy_frontend_bytes_out_total
    haproxy_frontend_connections_rate_max haproxy_frontend_connections_total
    haproxy_frontend_current_sessions haproxy_frontend_denied_connections_total
    haproxy_frontend_denied_sessions_total haproxy_frontend_failed_header_rewriting_total
    haproxy_frontend_http_cache_hits_total haproxy_frontend_http_cache_lookups_total
    haproxy_frontend_http_comp_bytes_bypassed_total haproxy_frontend_http_comp_bytes_in_total
    haproxy_frontend_http_comp_bytes_out_total haproxy_frontend_http_comp_responses_total
    haproxy_frontend_http_requests_rate_max haproxy_frontend_http_requests_total
    haproxy_frontend_http_responses_total haproxy_frontend_intercepted_requests_total
    haproxy_frontend_internal_errors_total haproxy_frontend_limit_session_rate
    haproxy_frontend_limit_sessions haproxy_frontend_max_session_rate
    haproxy_frontend_max_sessions haproxy_frontend_request_errors_total
    haproxy_frontend_requests_denied_total haproxy_frontend_responses_denied_total
    haproxy_frontend_sessions_total haproxy_frontend_status haproxy_process_active_peers
    haproxy_process_build_info haproxy_process_busy_polling_enabled
    haproxy_process_bytes_out_rate haproxy_process_bytes_out_total
    haproxy_process_connected_peers haproxy_process_connections_total
    haproxy_process_current_backend_ssl_key_rate haproxy_process_current_connection_rate
    haproxy_process_current_connections haproxy_process_current_frontend_ssl_key_rate
    haproxy_process_current_run_queue haproxy_process_current_session_rate
    haproxy_process_current_ssl_connections haproxy_process_current_ssl_rate
    haproxy_process_current_tasks haproxy_process_current_zlib_memory
    haproxy_process_dropped_logs_total haproxy_process_failed_resolutions
    haproxy_process_frontend_ssl_reuse haproxy_process_hard_max_connections
    haproxy_process_http_comp_bytes_in_total haproxy_process_http_comp_bytes_out_total
    haproxy_process_idle_time_percent haproxy_process_jobs haproxy_process_limit_connection_rate
    haproxy_process_limit_http_comp haproxy_process_limit_session_rate
    haproxy_process_limit_ssl_rate haproxy_process_listeners
    haproxy_process_max_backend_ssl_key_rate haproxy_process_max_connection_rate
    haproxy_process_max_connections haproxy_process_max_fds
    haproxy_process_max_frontend_ssl_key_rate haproxy_process_max_memory_bytes
    haproxy_process_max_pipes haproxy_process_max_session_rate haproxy_process_max_sockets
    haproxy_process_max_ssl_connections haproxy_process_max_ssl_rate
    haproxy_process_max_zlib_memory haproxy_process_nbproc haproxy_process_nbthread
    haproxy_process_pipes_free_total haproxy_process_pipes_used_total
    haproxy_process_pool_allocated_bytes haproxy_process_pool_failures_total
    haproxy_process_pool_used_bytes haproxy_process_recv_logs_total
    haproxy_process_relative_process_id haproxy_process_requests_total
    haproxy_process_spliced_bytes_out_total haproxy_process_ssl_cache_lookups_total
    haproxy_process_ssl_cache_misses_total haproxy_process_ssl_connections_total
    haproxy_process_start_time_seconds haproxy_process_stopping haproxy_process_unstoppable_jobs
    haproxy_process_uptime_seconds haproxy_server_bytes_in_total haproxy_server_bytes_out_total
    haproxy_server_check_code haproxy_server_check_duration_seconds
    haproxy_server_check_failures_total haproxy_server_check_last_change_seconds
    haproxy_server_check_status haproxy_server_check_up_down_total
    haproxy_server_client_aborts_total haproxy_server_connect_time_average_seconds
    haproxy_server_connection_attempts_total haproxy_server_connection_errors_total
    haproxy_server_connection_reuses_total haproxy_server_current_queue
    haproxy_server_current_sessions haproxy_server_current_throttle
    haproxy_server_downtime_seconds_total haproxy_server_failed_header_rewriting_total
    haproxy_server_http_responses_total haproxy_server_idle_connections_current
    haproxy_server_idle_connections_limit haproxy_server_internal_errors_total
    haproxy_server_last_session_seconds haproxy_server_limit_sessions
    haproxy_server_loadbalanced_total haproxy_server_max_connect_time_seconds
    haproxy_server_max_queue haproxy_server_max_queue_time_seconds
    haproxy_server_max_response_time_seconds haproxy_server_max_session_rate
    haproxy_server_max_sessions haproxy_server_max_total_time_seconds
    haproxy_server_need_connections_current haproxy_server_queue_limit
    haproxy_server_queue_time_average_seconds haproxy_server_redispatch_warnings_total
    haproxy_server_response_errors_total haproxy_server_response_time_average_seconds
    haproxy_server_responses_denied_total haproxy_server_retry_warnings_total
    haproxy_server_safe_idle_connections_current haproxy_server_server_aborts_total
    haproxy_server_sessions_total haproxy_server_status
    haproxy_server_total_time_average_seconds haproxy_server_unsafe_idle_connections_current
    haproxy_server_used_connections_current haproxy_server_uweight haproxy_server_weight
    haproxy_sticktable_size haproxy_sticktable_used
    """
)

# prometheus-varnish-exporter 1.6.1 (Debian 12's 1.6.1-1+b5) against varnishd 7.1.1:
# `varnishd -F -j none -a 127.0.0.1:<port> -T 127.0.0.1:<port> -b 127.0.0.1:<haproxy>
# -n /tmp/<dir> -s malloc,32m`, a few requests through it, then
# `prometheus-varnish-exporter -n /tmp/<dir> -web.listen-address 127.0.0.1:<port>` and
# `curl http://127.0.0.1:<port>/metrics`; every `# TYPE` name (no -with-go-metrics).
# varnish_up is 0 (and only it and varnish_version are left) while varnishd is down.
VARNISH_METRICS = names(
    """
    varnish_backend_bereq_bodybytes varnish_backend_bereq_hdrbytes
    varnish_backend_beresp_bodybytes varnish_backend_beresp_hdrbytes varnish_backend_busy
    varnish_backend_conn varnish_backend_fail varnish_backend_fail_eacces
    varnish_backend_fail_eaddrnotavail varnish_backend_fail_econnrefused
    varnish_backend_fail_enetunreach varnish_backend_fail_etimedout varnish_backend_fail_other
    varnish_backend_happy varnish_backend_helddown varnish_backend_pipe_hdrbytes
    varnish_backend_pipe_in varnish_backend_pipe_out varnish_backend_req
    varnish_backend_unhealthy varnish_backend_up varnish_lck_dbg_busy varnish_lck_dbg_try_fail
    varnish_lock_created varnish_lock_destroyed varnish_lock_operations
    varnish_main_backend_busy varnish_main_backend_conn varnish_main_backend_fail
    varnish_main_backend_recycle varnish_main_backend_req varnish_main_backend_retry
    varnish_main_backend_reuse varnish_main_backend_unhealthy varnish_main_bans
    varnish_main_bans_added varnish_main_bans_completed varnish_main_bans_deleted
    varnish_main_bans_dups varnish_main_bans_lurker_contention
    varnish_main_bans_lurker_obj_killed varnish_main_bans_lurker_obj_killed_cutoff
    varnish_main_bans_lurker_tested varnish_main_bans_lurker_tests_tested varnish_main_bans_obj
    varnish_main_bans_obj_killed varnish_main_bans_persisted_bytes
    varnish_main_bans_persisted_fragmentation varnish_main_bans_req varnish_main_bans_tested
    varnish_main_bans_tests_tested varnish_main_beresp_shortlived
    varnish_main_beresp_uncacheable varnish_main_busy_killed varnish_main_busy_sleep
    varnish_main_busy_wakeup varnish_main_cache_hit varnish_main_cache_hit_grace
    varnish_main_cache_hitmiss varnish_main_cache_hitpass varnish_main_cache_miss
    varnish_main_client_req varnish_main_client_req_400 varnish_main_client_req_417
    varnish_main_client_resp_500 varnish_main_esi_errors varnish_main_esi_req
    varnish_main_esi_warnings varnish_main_exp_mailed varnish_main_exp_received
    varnish_main_fetch varnish_main_fetch_total varnish_main_hcb_insert varnish_main_hcb_lock
    varnish_main_hcb_nolock varnish_main_losthdr varnish_main_n_backend varnish_main_n_expired
    varnish_main_n_gunzip varnish_main_n_gzip varnish_main_n_lru_limited
    varnish_main_n_lru_moved varnish_main_n_lru_nuked varnish_main_n_obj_purged
    varnish_main_n_object varnish_main_n_objectcore varnish_main_n_objecthead
    varnish_main_n_pipe varnish_main_n_purges varnish_main_n_test_gunzip
    varnish_main_n_vampireobject varnish_main_n_vcl varnish_main_n_vcl_avail
    varnish_main_n_vcl_discard varnish_main_pipe_limited varnish_main_pools
    varnish_main_req_dropped varnish_main_s_bgfetch varnish_main_s_pass varnish_main_s_pipe
    varnish_main_s_pipe_hdrbytes varnish_main_s_pipe_in varnish_main_s_pipe_out
    varnish_main_s_req_bodybytes varnish_main_s_req_hdrbytes varnish_main_s_resp_bodybytes
    varnish_main_s_resp_hdrbytes varnish_main_s_synth varnish_main_sc_overload
    varnish_main_sc_pipe_overflow varnish_main_sc_range_short varnish_main_sc_rem_close
    varnish_main_sc_req_close varnish_main_sc_req_http10 varnish_main_sc_req_http20
    varnish_main_sc_resp_close varnish_main_sc_rx_bad varnish_main_sc_rx_body
    varnish_main_sc_rx_close_idle varnish_main_sc_rx_junk varnish_main_sc_rx_overflow
    varnish_main_sc_rx_timeout varnish_main_sc_tx_eof varnish_main_sc_tx_error
    varnish_main_sc_tx_pipe varnish_main_sc_vcl_failure varnish_main_sessions
    varnish_main_sessions_total varnish_main_shm_cont varnish_main_shm_cycles
    varnish_main_shm_flushes varnish_main_shm_records varnish_main_shm_writes varnish_main_summs
    varnish_main_thread_queue_len varnish_main_threads varnish_main_threads_created
    varnish_main_threads_destroyed varnish_main_threads_failed varnish_main_threads_limited
    varnish_main_uptime varnish_main_vcl_fail varnish_main_vmods
    varnish_main_ws_backend_overflow varnish_main_ws_client_overflow
    varnish_main_ws_session_overflow varnish_main_ws_thread_overflow varnish_mempool_allocs
    varnish_mempool_frees varnish_mempool_live varnish_mempool_pool varnish_mempool_randry
    varnish_mempool_recycle varnish_mempool_surplus varnish_mempool_sz_actual
    varnish_mempool_sz_wanted varnish_mempool_timeout varnish_mempool_toosmall
    varnish_mgt_child_died varnish_mgt_child_dump varnish_mgt_child_exit varnish_mgt_child_panic
    varnish_mgt_child_start varnish_mgt_child_stop varnish_mgt_uptime varnish_sma_c_bytes
    varnish_sma_c_fail varnish_sma_c_freed varnish_sma_c_req varnish_sma_g_alloc
    varnish_sma_g_bytes varnish_sma_g_space varnish_up varnish_version
    """
)

# Made by Prometheus itself for every target.
PROMETHEUS_METRICS = frozenset({"up"})

KNOWN_METRICS = WATCHER_METRICS | HAPROXY_METRICS | VARNISH_METRICS | PROMETHEUS_METRICS


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (Debian's prometheus package: scripts/setup)")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> bool:
    if result.returncode != 0:
        print(f"$ {' '.join(result.args)}\n{result.stdout}\n{result.stderr}")
    return result.returncode == 0


# --- PromQL, just enough to find the metric names an expression reads ------------------

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_BRACES = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")  # label matchers; ranges and subqueries
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z]*|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, aggregations, label
    names, strings, durations and numbers left out)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    found = set()
    for match in _TOKEN.finditer(text):
        name, call = match.groups()
        if name and not call and name.lower() not in _KEYWORDS:
            found.add(name)
    return found


def test_metric_names_finds_only_selectors() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, kind) (rate(a_bucket{kind=~"x|y{2}"}[5m])))'
        " / on(instance) group_left(proxy) b offset 10m > 1e3 and bool"
        ' count without (job) (c{job="up"}) or vector(0) unless d[10m:1m]'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


# --- the alerting rules ----------------------------------------------------------------


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check() -> None:
    assert succeeded(promtool("check", "rules", str(RULES)))


def test_rules_pass_their_unit_tests() -> None:
    assert succeeded(promtool("test", "rules", str(RULE_TESTS)))


def test_rules_read_real_metrics_and_say_what_fired() -> None:
    rules = alerting_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "alert names repeat"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Breakwater[A-Z]\w+", name), name
        assert metric_names(rule["expr"]) <= KNOWN_METRICS, (
            name,
            metric_names(rule["expr"]) - KNOWN_METRICS,
        )
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        summary, description = rule["annotations"]["summary"], rule["annotations"]["description"]
        assert "$value" in summary + description, name
        assert re.search(r"\$labels\.instance|\.Labels\.instance", summary + description), name


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alerting_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case.get("exp_alerts") for case in mine), f"{rule['alert']}: never fires"
        assert any(not case.get("exp_alerts") for case in mine), f"{rule['alert']}: never quiet"


# --- the dashboard ---------------------------------------------------------------------

# Grafana's variables, as they could be when a query runs.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "instance": ".*",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in GRAFANA_VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a collapsed row's


def queries() -> list[tuple[str, str]]:
    """(where, expr) of every query of the dashboard's panels."""
    return [
        (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] == "Breakwater edge overview"
    assert board["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    values = re.fullmatch(r"label_values\((.+), *(\w+)\)", variables["instance"]["query"]["query"])
    assert values and values[2] == "instance"
    assert metric_names(values[1]) <= KNOWN_METRICS
    panels = list(all_panels(board["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for item in (panel, *panel["targets"]):
            assert item["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for target in panel["targets"]:
            assert "$instance" in target["expr"], f"{panel['title']}: not by $instance"


def test_dashboard_shows_what_it_promises() -> None:
    used = set().union(*(metric_names(substitute(expr)) for _, expr in queries()))
    exprs = " ".join(expr for _, expr in queries())
    assert {
        "haproxy_frontend_http_requests_total",
        "haproxy_frontend_http_responses_total",
        "haproxy_backend_http_responses_total",
        "haproxy_backend_total_time_average_seconds",
        "breakwater_event_to_applied_seconds_bucket",
        "breakwater_syncs_total",
        "breakwater_haproxy_reloads_total",
        "breakwater_rejected_objects",
        "varnish_main_cache_hit",
        "varnish_main_cache_miss",
    } <= used
    assert 'code="5xx"' in exprs and 'code="4xx"' in exprs
    assert "histogram_quantile(" in exprs


def test_dashboard_queries_read_real_metrics() -> None:
    unknown = {
        where: sorted(metric_names(substitute(expr)) - KNOWN_METRICS)
        for where, expr in queries()
        if metric_names(substitute(expr)) - KNOWN_METRICS
    }
    assert not unknown


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool 2.42 has no check of a lone expression: each one becomes a recording rule."""
    found = queries()
    assert found
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute(expr)}
        for index, (_, expr) in enumerate(found)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    if result.returncode != 0:
        for index, (where, expr) in enumerate(found):
            print(f"dashboard:query_{index} = {where}: {expr}")
    assert succeeded(result)
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --- the watcher's names ---------------------------------------------------------------


def test_watcher_names_are_its_registrys() -> None:
    """Every series the watcher's registry exposes, each kind of it made to appear."""
    metrics = Metrics()
    metrics.syncs.labels("runtime", "ok").inc()
    metrics.sync_seconds.labels("runtime").observe(0.01)
    metrics.applied_seconds.observe(0.01)
    metrics.snapshot.rejected = (("ingress shop/web", "no such service"),)
    metrics.snapshot.rejected_keys = lambda: {"undecodable": 1}
    metrics.snapshot.generation = ("0123abcd", 7)
    exposed = {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in generate_latest(metrics.registry).decode().splitlines()
        if line and not line.startswith("#")
    }
    assert {name for name in exposed if not name.endswith("_created")} == WATCHER_METRICS
