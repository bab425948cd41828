"""A drain's wait for the VIP release and the BGP withdrawal (breakwater.ha.release)."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from breakwater.ha import release

IP_OUTPUT = [
    {"ifname": "lo", "addr_info": [{"local": "127.0.0.1"}, {"local": "198.19.0.10"}]},
    {"ifname": "eth0", "addr_info": [{"local": "192.0.2.11"}, {"local": "2001:DB8::10"}]},
]


def fake_ip(tmp_path, output):
    """A command printing ``output`` as ``ip -j address show`` would (it reads the file
    each time, so a test can change what the node holds)."""
    data = tmp_path / "ip.json"
    data.write_text(json.dumps(output))
    return [sys.executable, "-c", f"print(open({str(data)!r}).read())"], data


def test_held_vips_compares_normalised_addresses(tmp_path):
    command, _ = fake_ip(tmp_path, IP_OUTPUT)
    held = release.held_vips(["192.0.2.10/24", "2001:db8::10", "198.19.0.10"], command)
    assert held == ["2001:db8::10", "198.19.0.10"]


def test_waits_until_the_vips_are_gone(tmp_path):
    command, data = fake_ip(tmp_path, IP_OUTPUT)

    async def scenario():
        waiter = asyncio.create_task(
            release.wait_released(["2001:db8::10"], None, False, 5, interval=0.05, command=command)
        )
        await asyncio.sleep(0.2)
        assert not waiter.done()
        data.write_text(json.dumps(IP_OUTPUT[:1]))
        return await waiter

    result = asyncio.run(scenario())
    assert result["held"] == [] and result["waited"] >= 0.2


def test_waits_for_the_withdrawal_the_state_file_reports(tmp_path):
    command, _ = fake_ip(tmp_path, [])
    health = tmp_path / "edge-health.json"
    health.write_text(json.dumps({"healthy": False, "bgp": {"announced": True}}))

    async def scenario():
        waiter = asyncio.create_task(
            release.wait_released([], str(health), None, 5, interval=0.05, command=command)
        )
        await asyncio.sleep(0.2)
        assert not waiter.done()
        health.write_text(json.dumps({"healthy": False, "bgp": {"announced": False}}))
        return await waiter

    assert asyncio.run(scenario())["announced"] is False


def test_a_timeout_names_what_is_left(tmp_path):
    command, _ = fake_ip(tmp_path, IP_OUTPUT)
    with pytest.raises(TimeoutError, match=r"still holds 198\.19\.0\.10 and no health state"):
        asyncio.run(
            release.wait_released(
                ["198.19.0.10"],
                str(tmp_path / "missing.json"),
                True,
                0.1,
                interval=0.05,
                command=command,
            )
        )


def test_without_bgp_in_the_state_file_there_is_nothing_to_withdraw(tmp_path):
    command, _ = fake_ip(tmp_path, [])
    health = tmp_path / "edge-health.json"
    health.write_text(json.dumps({"healthy": False, "bgp": None}))
    result = asyncio.run(release.wait_released([], str(health), None, 1, command=command))
    assert result["announced"] is None
