"""The rules of edge-health, without daemons: where the monitor is asked, what the
watcher's heartbeat means, the verdict's hysteresis, and the FRR lines that follow."""

from __future__ import annotations

import json

import pytest

from breakwater.config import ConfigError, load_config
from breakwater.ha.check import Verdict, judge_heartbeat, monitor_address
from breakwater.ha.frr import FRR, Announcement, parse_running, parse_summary
from breakwater.ha.health import Judgement, Offer, Release
from breakwater.ha.vrrp import vrrp_states


@pytest.mark.parametrize(
    ("bind", "address"),
    [
        (":8404", ("127.0.0.1", 8404)),
        ("*:8404", ("127.0.0.1", 8404)),
        ("0.0.0.0:8404", ("127.0.0.1", 8404)),
        ("[::]:8404", ("::1", 8404)),
        ("ipv6@:::8404", ("::1", 8404)),
        ("198.18.0.5:8404 name monitor", ("198.18.0.5", 8404)),
        ("unix@/run/haproxy/monitor.sock mode 600", "/run/haproxy/monitor.sock"),
    ],
)
def test_the_monitor_is_asked_where_it_listens(bind, address):
    assert monitor_address(bind) == address


def test_a_monitor_bind_without_a_port_is_refused():
    with pytest.raises(ValueError, match="no port"):
        monitor_address("127.0.0.1")


NOW = 1_800_000_000.0


def beat(**fields):
    return {
        "written_at": NOW - 1,
        "started_at": NOW - 600,
        "synced": True,
        "etcd_connected": True,
        **fields,
    }


def test_a_synced_watcher_with_a_fresh_heartbeat_is_fine():
    assert judge_heartbeat(beat(), 10, NOW) == (None, False)


def test_an_etcd_outage_is_not_the_node_s_fault():
    # every node serves the last good state alike: none is withdrawn for it
    assert judge_heartbeat(beat(synced=False, etcd_connected=False), 10, NOW) == (None, False)


def test_an_old_heartbeat_is_a_hard_failure():
    reason, soft = judge_heartbeat(beat(written_at=NOW - 30), 10, NOW)
    assert "30 s old" in reason and not soft


def test_no_heartbeat_is_a_hard_failure():
    assert judge_heartbeat(None, 10, NOW) == ("no watcher heartbeat", False)


def test_a_watcher_still_syncing_after_a_start_is_soft_then_hard():
    reason, soft = judge_heartbeat(beat(synced=False, started_at=NOW - 3), 10, NOW)
    assert soft and "has not synced yet" in reason
    reason, soft = judge_heartbeat(beat(synced=False, started_at=NOW - 60), 10, NOW)
    assert not soft and "has not synced in 60 s" in reason


OK = Verdict(ok=True)
BAD = Verdict(ok=False, reasons=("monitor 127.0.0.1:8404: Connection refused",))
SOFT = Verdict(ok=False, soft=True, reasons=("the watcher started 1 s ago",))
PLANNED = Verdict(ok=False, planned=True, reasons=("monitor answered 503: out of rotation",))


def run(judgement, *verdicts):
    return [(judgement.see(v, NOW + i), judgement.healthy) for i, v in enumerate(verdicts)]


def test_a_node_earns_the_vip_after_rise_good_checks():
    judgement = Judgement(fall=2, rise=3)
    assert not judgement.healthy
    assert run(judgement, OK, OK, OK) == [(False, False), (False, False), (True, True)]
    assert judgement.reasons == ()


def test_one_bad_check_is_not_enough_to_fall_and_rise_starts_again_after_one():
    judgement = Judgement(fall=2, rise=2)
    run(judgement, OK, OK)
    assert run(judgement, BAD, OK, BAD, BAD) == [
        (False, True),
        (False, True),
        (False, True),
        (True, False),
    ]
    assert judgement.reasons == BAD.reasons and not judgement.planned
    assert run(judgement, OK, BAD, OK, OK) == [
        (False, False),
        (False, False),
        (False, False),
        (True, True),
    ]


def test_out_of_rotation_takes_effect_at_the_first_check_and_says_planned():
    judgement = Judgement(fall=3, rise=2)
    run(judgement, OK, OK)
    assert run(judgement, PLANNED) == [(True, False)]
    assert judgement.planned and judgement.since == NOW


def test_a_drain_stays_planned_until_the_node_is_healthy_again_unless_it_breaks():
    judgement = Judgement(fall=2, rise=3)
    run(judgement, OK, OK, OK, PLANNED)
    # back in rotation: still unhealthy until rise, and still a planned drain meanwhile
    assert run(judgement, OK, OK) == [(False, False), (False, False)]
    assert judgement.planned
    assert run(judgement, OK) == [(True, True)] and not judgement.planned
    run(judgement, PLANNED)
    assert run(judgement, BAD) == [(True, False)]  # broke besides: no more planned
    assert not judgement.planned and judgement.reasons == BAD.reasons


def offers(release, judgement, *steps):
    """(verdict, seconds later) steps: the phases the release goes through."""
    now, seen = NOW, []
    for verdict, later in steps:
        now += later
        judgement.see(verdict, now)
        seen.append(release.offer(judgement, now))
    return seen


def test_a_planned_drain_closes_connections_then_sends_gshut_then_withdraws():
    judgement, release = Judgement(fall=2, rise=2), Release(11, 10, bgp=True)
    seen = offers(
        release,
        judgement,
        (OK, 0),
        (OK, 0.5),
        (PLANNED, 0.5),
        (PLANNED, 10),
        (PLANNED, 1.5),
        (PLANNED, 9),
        (PLANNED, 1.5),
    )
    assert [o.phase for o in seen] == [
        "released",
        "serving",
        "closing",
        "closing",
        "graceful-shutdown",
        "graceful-shutdown",
        "released",
    ]
    assert seen[2] == Offer(hold=True, announce=True, gshut=False, phase="closing")
    assert seen[4] == Offer(hold=False, announce=True, gshut=True, phase="graceful-shutdown")
    assert seen[6] == Offer(False, False, False, "released")


def test_vrrp_alone_releases_after_closing_and_a_failure_releases_at_once():
    judgement, release = Judgement(fall=2, rise=2), Release(11, 10, bgp=False)
    seen = offers(release, judgement, (OK, 0), (OK, 0.5), (PLANNED, 0.5), (PLANNED, 11.5))
    assert [o.phase for o in seen] == ["released", "serving", "closing", "released"]
    judgement, release = Judgement(fall=2, rise=2), Release(11, 10, bgp=True)
    seen = offers(release, judgement, (OK, 0), (OK, 0.5), (BAD, 0.5), (BAD, 0.5))
    assert [o.phase for o in seen] == ["released", "serving", "serving", "released"]


def test_a_node_that_never_served_has_nothing_to_drain():
    judgement, release = Judgement(fall=2, rise=2), Release(11, 10, bgp=True)
    assert [o.phase for o in offers(release, judgement, (PLANNED, 0))] == ["released"]


def test_back_in_rotation_during_the_drain_serves_again_once_risen():
    judgement, release = Judgement(fall=2, rise=2), Release(11, 10, bgp=True)
    seen = offers(release, judgement, (OK, 0), (OK, 0.5), (PLANNED, 0.5), (OK, 0.5), (OK, 0.5))
    assert [o.phase for o in seen] == ["released", "serving", "closing", "closing", "serving"]


def test_a_soft_failure_keeps_a_healthy_node_but_does_not_make_one():
    judgement = Judgement(fall=2, rise=2)
    assert run(judgement, SOFT, SOFT, SOFT) == [(False, False)] * 3
    run(judgement, OK, OK)
    assert run(judgement, SOFT, SOFT, SOFT) == [(False, True)] * 3


RUNNING = """\
frr version 8.4.4
hostname lb1
!
router bgp 65001
 bgp router-id 198.18.20.11
 bgp graceful-shutdown
 neighbor 198.18.20.1 remote-as 65000
 !
 address-family ipv4 unicast
  network 198.19.0.10/32
  network 203.0.113.0/24
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8::10/128
 exit-address-family
exit
!
router bgp 65009 vrf other
 address-family ipv4 unicast
  network 198.19.0.99/32
 exit-address-family
exit
"""


def test_the_running_configuration_says_what_is_announced():
    now = parse_running(RUNNING, 65001)
    assert now == Announcement(
        frozenset({"198.19.0.10/32", "203.0.113.0/24", "2001:db8::10/128"}), True
    )
    assert parse_running(RUNNING, 65002) == Announcement(frozenset(), False)


def test_only_the_missing_lines_are_sent_and_only_the_vips_are_taken_back():
    frr = FRR(
        "/usr/bin/vtysh -N lb1", 65001, ["198.19.0.10/32", "2001:db8::10/128", "198.19.0.11/32"]
    )
    now = parse_running(RUNNING, 65001)
    assert frr.commands(now, announce=True, gshut=True) == [
        "address-family ipv4 unicast",
        "network 198.19.0.11/32",
        "exit-address-family",
    ]
    assert frr.commands(now, announce=False, gshut=False) == [
        "address-family ipv4 unicast",
        "no network 198.19.0.10/32",
        "exit-address-family",
        "address-family ipv6 unicast",
        "no network 2001:db8::10/128",
        "exit-address-family",
        "no bgp graceful-shutdown",
    ]  # 203.0.113.0/24 is not ours: it stays
    announced = Announcement(frr.prefixes, False)
    assert frr.commands(announced, announce=True, gshut=False) == []
    assert frr.command == ["/usr/bin/vtysh", "-N", "lb1"]


def test_bgp_peers_from_both_families_are_one_entry_each():
    summary = {
        "ipv4Unicast": {
            "peers": {
                "198.18.20.1": {
                    "remoteAs": 65000,
                    "state": "Established",
                    "peerUptime": "00:01:02",
                    "pfxRcd": 0,
                    "pfxSnt": 1,
                }
            }
        },
        "ipv6Unicast": {
            "peers": {
                "198.18.20.1": {
                    "remoteAs": 65000,
                    "state": "Established",
                    "peerUptime": "00:01:02",
                    "pfxRcd": 0,
                    "pfxSnt": 1,
                }
            }
        },
    }
    assert parse_summary(json.dumps(summary)) == [
        {
            "peer": "198.18.20.1",
            "remote_as": 65000,
            "state": "Established",
            "uptime": "00:01:02",
            "prefixes_sent": {"ipv4Unicast": 1, "ipv6Unicast": 1},
            "prefixes_received": {"ipv4Unicast": 0, "ipv6Unicast": 0},
        }
    ]
    assert parse_summary("{}") == []


def test_vrrp_states_are_read_and_a_broken_file_is_reported(tmp_path):
    (tmp_path / "VI_EDGE4.state").write_text(
        json.dumps({"instance": "VI_EDGE4", "state": "MASTER"})
    )
    (tmp_path / "VI_EDGE6.state").write_text("{not json")
    states = vrrp_states(str(tmp_path))
    assert states[0] == {"instance": "VI_EDGE4", "state": "MASTER"}
    assert states[1]["instance"] == "VI_EDGE6" and states[1]["state"] is None and states[1]["error"]
    assert vrrp_states(str(tmp_path / "missing")) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bgp_asn": 65001}, "names nothing to announce"),
        ({"bgp_asn": 65001, "bgp_prefixes": ["198.19.0.0/24"]}, "not a host prefix"),
        ({"bgp_asn": 65001, "bgp_prefixes": ["vip"]}, "'vip' is not an IP prefix"),
        ({"bgp_asn": 4294967296, "bgp_prefixes": ["198.19.0.1/32"]}, "is not an ASN"),
        ({"interval": 0}, "ha.interval"),
    ],
)
def test_bad_ha_settings_are_refused_with_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        load_config(
            document={"etcd": {"endpoints": ["http://127.0.0.1:2379"]}, "ha": values}, environ={}
        )


def test_ha_settings_come_from_the_environment_too():
    config = load_config(
        document={"etcd": {"endpoints": ["http://127.0.0.1:2379"]}},
        environ={
            "BREAKWATER_HA_BGP_ASN": "65001",
            "BREAKWATER_HA_BGP_PREFIXES": "198.19.0.10/32,2001:db8::10/128",
        },
    )
    assert config.ha.bgp_asn == 65001
    assert config.ha.bgp_prefixes == ("198.19.0.10/32", "2001:db8::10/128")
