"""HAProxy's control sockets, on the text HAProxy 2.6 (Debian 12) really sends."""

from __future__ import annotations

import pytest

from breakwater.targets.haproxy_api import (
    HAProxyError,
    ProcessTable,
    check_command,
    parse_show_proc,
    runtime_reply_ok,
)

# "show proc" on the master socket, HAProxy 2.6.12: right after start ...
STARTED = (
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "26368           master          0 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "26370           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# programs\n"
    "\n"
)
# ... and after a reload, the old worker still serving a connection.
RELOADED = (
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "26610           master          1 [failed: 0]   0d00h00m03s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "26657           worker          0               0d00h00m02s     2.6.12-1+deb12u4\n"
    "# old workers\n"
    "26611           worker          1               0d00h00m03s     2.6.12-1+deb12u4\n"
    "# programs\n"
    "\n"
)


def test_show_proc_after_start() -> None:
    assert parse_show_proc(STARTED) == ProcessTable(26368, 0, 0, (26370,))


def test_show_proc_after_a_reload_lists_the_current_workers_only() -> None:
    assert parse_show_proc(RELOADED) == ProcessTable(26610, 1, 0, (26657,))


def test_show_proc_counts_failed_reloads() -> None:
    failed = RELOADED.replace("1 [failed: 0]", "2 [failed: 1]")
    assert parse_show_proc(failed).failed == 1


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "# workers\n26657 worker 0\n"])
def test_show_proc_without_a_master_line_is_an_error(text: str) -> None:
    with pytest.raises(HAProxyError, match="unexpected 'show proc' output"):
        parse_show_proc(text)


# Replies of HAProxy 2.6.12's stats socket, as the session returns them (stripped).
@pytest.mark.parametrize(
    ("command", "reply", "ok"),
    [
        (
            "set server be/s1 addr 10.0.0.1 port 8080",
            "IP changed from '127.0.0.1' to '10.0.0.1', port changed from '1' to '8080' "
            "by 'stats socket command'",
            True,
        ),
        (
            "set server be/s1 addr 10.0.0.1 port 8080",
            "no need to change the addr, no need to change the port by 'stats socket command'",
            True,
        ),
        (
            "set server be/s1 addr 10.0.0.x port 80",
            "Invalid addr '10.0.0.x' by 'stats socket command'",
            False,
        ),
        ("set weight be/s1 1", "", True),
        ("set server be/s1 state ready", "", True),
        ("set server be/s9 state ready", "No such server.", False),
    ],
)
def test_runtime_replies(command: str, reply: str, ok: bool) -> None:
    assert runtime_reply_ok(command, reply) is ok


@pytest.mark.parametrize(
    "line", ["set server be_shop_web_http/s12 addr 10.0.0.1 port 8080", "set weight be/s1 0"]
)
def test_one_printable_command_is_accepted(line: str) -> None:
    check_command(line)


@pytest.mark.parametrize(
    "line",
    [
        "set weight be/s1 1; shutdown sessions server be/s1",
        "set weight be/s1 1\nshutdown frontend public",
        "set weight be/s1\t1",
        "set server be/s1 addr 10.0.0.1\u2028 port 1",
    ],
)
def test_a_line_that_would_run_more_than_one_command_is_refused(line: str) -> None:
    with pytest.raises(HAProxyError, match="refused runtime command"):
        check_command(line)
