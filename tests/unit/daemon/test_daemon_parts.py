"""The daemon's parts on their own: backoff, scheduling, reporting."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import pytest

from breakwater.config import CoalesceSettings
from breakwater.daemon.follower import Backoff, Outage
from breakwater.daemon.reporter import Reporter, sd_notify
from breakwater.daemon.scheduler import Scheduler


def test_backoff_doubles_with_jitter_up_to_its_maximum_and_resets() -> None:
    backoff = Backoff(0.2, 10.0)
    steps = [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    delays = [backoff.next() for _ in steps]
    for step, delay in zip(steps, delays, strict=True):
        assert step / 2 <= delay <= step
    assert len({round(d / s, 6) for d, s in zip(delays, steps, strict=True)}) > 1  # jittered
    backoff.reset()
    assert 0.1 <= backoff.next() <= 0.2


def test_an_outage_is_one_log_line_and_its_end_another(caplog) -> None:
    outage = Outage()
    with caplog.at_level(logging.DEBUG, logger="breakwater.watcher"):
        for _ in range(50):
            outage.failed("connection refused")
        outage.ended("watching from revision 9")
        outage.failed("connection refused")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "etcd unavailable, serving the last good configuration: connection refused"
    ] * 2  # the first failure of each outage; the retries between are debug lines
    ended = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(ended) == 1 and "50 failed attempts" in ended[0]


def test_a_burst_waits_for_the_quiet_period_and_never_past_the_maximum() -> None:
    async def scenario() -> tuple[float, float, list[str]]:
        scheduler = Scheduler()
        settings = CoalesceSettings(quiet_period=0.05, max_wait=0.3)
        stopping = asyncio.Event()
        start = time.monotonic()
        scheduler.mark(["a"])

        async def keep_changing() -> None:  # a change every 20 ms, for 0.6 s
            for index in range(30):
                await asyncio.sleep(0.02)
                scheduler.mark([f"k{index}"])

        changing = asyncio.create_task(keep_changing())
        await scheduler.coalesce(settings, stopping, servers_only=False)
        bounded = time.monotonic() - start
        changing.cancel()
        keys = scheduler.take()
        start = time.monotonic()
        scheduler.mark(["b"])
        await scheduler.coalesce(settings, stopping, servers_only=True)
        return bounded, time.monotonic() - start, keys

    bounded, immediate, keys = asyncio.run(scenario())
    assert 0.3 <= bounded < 0.6  # the maximum wait ended a burst that did not stop
    assert immediate < 0.05  # server-only changes do not wait
    assert keys[0] == "a" and len(keys) > 5
    assert Scheduler.cause(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


def test_sd_notify_sends_one_datagram_and_says_when_there_is_no_systemd(
    tmp_path, monkeypatch
) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1")
        assert receiver.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")


def test_the_status_file_is_replaced_whole(tmp_path) -> None:
    path = tmp_path / "run" / "status.json"
    reporter = Reporter(str(path))
    asyncio.run(reporter.write_status(lambda: {"revision": 7, "last_error": None}))
    assert json.loads(path.read_text()) == {"revision": 7, "last_error": None}
    assert not (tmp_path / "run" / "status.json.staged").exists()
    asyncio.run(Reporter(None).write_status(lambda: pytest.fail("no status file: not built")))
