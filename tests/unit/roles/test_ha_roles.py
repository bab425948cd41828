"""The keepalived and bgp roles' templates, rendered by Ansible from sample inventories
and checked by the daemons' own configuration checkers (keepalived --config-test,
vtysh --dryrun); and their preflight asserts, run on this machine's real facts, failing
on bad inventories with a message that says what to change."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-playbook not installed")

FACTS = {
    "interfaces": ["lo", "eth0", "eth1"],
    "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}},
    "eth0": {
        "ipv4": {"address": "192.0.2.11", "netmask": "255.255.255.0"},
        "ipv6": [
            {"address": "2001:db8:0:1::11", "prefix": "64", "scope": "global"},
            {"address": "fe80::1", "prefix": "64", "scope": "link"},
        ],
    },
    "eth1": {"ipv4": {"address": "198.51.100.11", "netmask": "255.255.255.0"}},
    "default_ipv4": {"address": "192.0.2.11"},
}


def run_playbook(tmp_path: Path, playbook: list, extra: dict) -> subprocess.CompletedProcess:
    collections = tmp_path / "collections" / "ansible_collections" / "breakwater"
    collections.mkdir(parents=True)
    (collections / "edge").symlink_to(ROOT)
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{BIN}:{os.environ['PATH']}",
    )
    return subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(tmp_path / "play.yml"),
            "-e",
            f"@{tmp_path / 'extra.json'}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def render(tmp_path: Path, role: str, templates: list[str], extra: dict) -> dict[str, str]:
    """The role's templates rendered with its defaults and vars, the inventory's values
    and FACTS (as extra vars, which win over the role's files)."""
    out = tmp_path / "out"
    out.mkdir()
    playbook = [
        {
            "name": "render",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [
                str(ROOT / "roles" / role / "defaults" / "main.yml"),
                str(ROOT / "roles" / role / "vars" / "main.yml"),
            ],
            "tasks": [
                {
                    "name": f"render {name}",
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles" / role / "templates" / name),
                        "dest": str(out / name.removesuffix(".j2")),
                    },
                }
                for name in templates
            ],
        }
    ]
    result = run_playbook(tmp_path, playbook, extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        name.removesuffix(".j2"): (out / name.removesuffix(".j2")).read_text() for name in templates
    }


KEEPALIVED_INVENTORY = {
    "inventory_hostname_short": "lb1",
    "keepalived_instances": [
        {
            "name": "web",
            "interface": "eth0",
            "virtual_router_id": 51,
            "priority": 150,
            "vips": ["192.0.2.10", "2001:db8:0:1::10"],
            "advert_int": 0.5,
            "nopreempt": True,
            "unicast_peers": ["192.0.2.11", "192.0.2.12", "2001:db8:0:1::11", "2001:db8:0:1::12"],
        },
        {
            "name": "api",
            "interface": "eth1",
            "virtual_router_id": 52,
            "vips": ["198.51.100.10/24"],
            "auth_pass": "s3cret",
        },
    ],
}


def keepalived_extra(inventory: dict) -> dict:
    return dict(
        inventory,
        __keepalived_instances=(
            "{{ keepalived_instances | breakwater.edge.vrrp_instances(fake_facts,"
            " priority=keepalived_priority, advert_int=keepalived_advert_int,"
            " nopreempt=keepalived_nopreempt) }}"
        ),
        fake_facts=FACTS,
    )


def real_interface() -> str:
    """keepalived --config-test wants the interfaces to exist: one of this machine's."""
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    )
    names = [
        link["ifname"]
        for link in links
        if link["ifname"] != "lo" and "MULTICAST" in link.get("flags", [])
    ]
    return names[0] if names else "lo"


@pytest.mark.skipif(
    not shutil.which("keepalived") or not shutil.which("ip"), reason="keepalived not installed"
)
def test_keepalived_conf_passes_keepalived_config_test(tmp_path):
    files = render(
        tmp_path,
        "keepalived",
        ["keepalived.conf.j2", "vrrp-notify.sh.j2"],
        keepalived_extra(KEEPALIVED_INVENTORY),
    )
    interface = real_interface()
    conf = files["keepalived.conf"].replace("eth0", interface).replace("eth1", interface)
    (tmp_path / "keepalived.conf").write_text(conf)
    check = subprocess.run(
        ["keepalived", "--config-test", "-f", str(tmp_path / "keepalived.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr + conf
    # one instance per family, VRRPv3 for IPv6 and 0.5 s, v2 with authentication
    assert "vrrp_instance web_v4 {" in conf and "vrrp_instance web_v6 {" in conf
    web_v4 = conf.split("vrrp_instance web_v4 {")[1].split("vrrp_instance")[0]
    assert "advert_int 0.5" in web_v4 and "version 3" in web_v4 and "nopreempt" in web_v4
    assert f"192.0.2.10/24 dev {interface}" in web_v4
    assert "unicast_src_ip 192.0.2.11" in web_v4 and "192.0.2.12" in web_v4
    assert "        192.0.2.11\n" not in web_v4  # its own address is no peer
    web_v6 = conf.split("vrrp_instance web_v6 {")[1].split("vrrp_instance")[0]
    assert f"2001:db8:0:1::10/64 dev {interface}" in web_v6 and "2001:db8:0:1::12" in web_v6
    api = conf.split("vrrp_instance api_v4 {")[1]
    assert "version 2" in api and "auth_pass s3cret" in api and "priority 100" in api
    assert conf.count("breakwater_edge_health") == 4  # defined once, tracked by three instances
    assert "weight 0" in conf and "init_file 1" in conf
    # a broken keyword is caught by the same check
    (tmp_path / "bad.conf").write_text(conf.replace("advert_int", "advert_intervall", 1))
    bad = subprocess.run(
        ["keepalived", "--config-test", "-f", str(tmp_path / "bad.conf")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0


def test_notify_script_writes_the_state_and_logs(tmp_path):
    inventory = dict(
        keepalived_extra(KEEPALIVED_INVENTORY), keepalived_state_dir=str(tmp_path / "vrrp")
    )
    script = tmp_path / "notify"
    script.write_text(
        render(tmp_path, "keepalived", ["vrrp-notify.sh.j2"], inventory)["vrrp-notify.sh"]
    )
    script.chmod(0o755)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "logger").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "log"}\n')
    (fake_bin / "logger").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}")
    subprocess.run([str(script), "INSTANCE", "web_v4", "MASTER", "150"], check=True, env=env)
    state = json.loads((tmp_path / "vrrp" / "web_v4.state").read_text())
    assert state["instance"] == "web_v4" and state["state"] == "MASTER" and state["priority"] == 150
    assert isinstance(state["since"], int) and state["since"] > 1_600_000_000
    assert "-t breakwater-vrrp" in (tmp_path / "log").read_text()


BGP_INVENTORY = {
    "inventory_hostname_short": "lb1",
    "bgp_asn": 65001,
    "bgp_router_id": "192.0.2.11",
    "bgp_vips": ["198.19.0.10", "2001:db8:ffff::10/128"],
    "bgp_peers": [
        {"address": "192.0.2.1", "remote_as": 65000, "password": "t0ps3cret"},
        {"address": "2001:db8:0:1::1", "remote_as": 65000, "keepalive": 1, "hold": 3, "bfd": False},
    ],
}


@pytest.mark.skipif(not shutil.which("vtysh"), reason="FRR's vtysh not installed")
def test_frr_conf_passes_vtysh_dryrun(tmp_path):
    files = render(
        tmp_path, "bgp", ["frr.conf.j2", "daemons.j2", "breakwater-vips.service.j2"], BGP_INVENTORY
    )
    conf = files["frr.conf"]
    (tmp_path / "frr.conf").write_text(conf)
    check = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(tmp_path / "frr.conf")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr + conf
    assert "\n network " not in conf and "bgp network import-check" in conf
    assert "ip prefix-list BW-VIPS-V4 seq 10 permit 198.19.0.10/32" in conf
    assert "ipv6 prefix-list BW-VIPS-V6 seq 10 permit 2001:db8:ffff::10/128" in conf
    assert "neighbor 192.0.2.1 password t0ps3cret" in conf
    assert "neighbor 192.0.2.1 timers 3 9" in conf and "neighbor 2001:db8:0:1::1 timers 1 3" in conf
    assert "neighbor 192.0.2.1 bfd profile breakwater" in conf
    assert "neighbor 2001:db8:0:1::1 bfd" not in conf
    assert "detect-multiplier 3" in conf and "receive-interval 100" in conf
    v4 = conf.split("address-family ipv4 unicast")[1].split("exit-address-family")[0]
    assert (
        "neighbor 192.0.2.1 route-map BW-OUT out" in v4
        and "neighbor 192.0.2.1 route-map BW-IN in" in v4
    )
    assert "2001:db8:0:1::1" not in v4
    assert "route-map BW-IN deny 1000" in conf and "route-map BW-IN permit" not in conf
    assert "bgpd=yes" in files["daemons"] and "bfdd=yes" in files["daemons"]
    unit = files["breakwater-vips.service"]
    assert "ip address replace 198.19.0.10/32 dev lo" in unit
    assert "ip address replace 2001:db8:ffff::10/128 dev lo" in unit
    (tmp_path / "bad.conf").write_text(
        conf.replace("permit 198.19.0.10/32", "permit 198.19.0.10/33")
    )
    bad = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(tmp_path / "bad.conf")], capture_output=True, text=True
    )
    assert bad.returncode != 0


@pytest.mark.skipif(not shutil.which("vtysh"), reason="FRR's vtysh not installed")
def test_frr_conf_accepts_what_the_inventory_names(tmp_path):
    inventory = dict(BGP_INVENTORY, bgp_accept_prefixes=["0.0.0.0/0", "10.0.0.0/8 le 24", "::/0"])
    conf = render(tmp_path, "bgp", ["frr.conf.j2"], inventory)["frr.conf"]
    (tmp_path / "frr.conf").write_text(conf)
    check = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(tmp_path / "frr.conf")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr + conf
    assert "ip prefix-list BW-ACCEPT-V4 seq 20 permit 10.0.0.0/8 le 24" in conf
    assert "ipv6 prefix-list BW-ACCEPT-V6 seq 10 permit ::/0" in conf
    assert "route-map BW-IN permit 10" in conf and "route-map BW-IN permit 20" in conf


def test_health_unit_carries_the_bgp_settings(tmp_path):
    unit = render(
        tmp_path,
        "edge_health",
        ["breakwater-edge-health.service.j2"],
        {
            "bgp_asn": 65001,
            "bgp_vips": ["198.19.0.10", "2001:db8:ffff::10"],
            "ansible_facts": {"getent_group": {"frrvty": ["x", "110", ""]}},
        },
    )
    text = unit["breakwater-edge-health.service"]
    assert 'Environment="BREAKWATER_HA_BGP_ASN=65001"' in text
    assert "BREAKWATER_HA_BGP_PREFIXES=198.19.0.10/32,2001:db8:ffff::10/128" in text
    assert "Type=simple" in text and "Restart=always" in text
    assert "SupplementaryGroups=haproxy frrvty" in text
    assert 'printf "1\\\\n" > /run/breakwater/edge-health.track.stop' in text
    assert "no network 2001:db8:ffff::10/128" in text and "address-family ipv6 unicast" in text
    if shutil.which("systemd-analyze"):
        path = tmp_path / "breakwater-edge-health.service"
        path.write_text(text)
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True
        )
        # parse problems name a line; a missing /opt/breakwater here is no problem of the unit
        assert not re.search(r"breakwater-edge-health\.service:\d+:", verify.stderr), verify.stderr


# --- the preflight asserts, on this machine's real facts --------------------------------


def local_network() -> tuple[str, ipaddress.IPv4Interface]:
    """An interface of this machine with an IPv4 network wider than /30, and that network."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True
    ).stdout
    for link in json.loads(out):
        if link["ifname"] == "lo":
            continue
        for address in link.get("addr_info", []):
            interface = ipaddress.ip_interface(f"{address['local']}/{address['prefixlen']}")
            if interface.network.prefixlen <= 29:
                return link["ifname"], interface
    pytest.skip("no IPv4 network wider than /30 on this machine")


def preflight(tmp_path: Path, role: str, extra: dict) -> subprocess.CompletedProcess:
    playbook = [
        {
            "name": "preflight",
            "hosts": "localhost",
            "gather_facts": True,
            "tasks": [
                {
                    "name": "preflight",
                    "ansible.builtin.include_role": {
                        "name": f"breakwater.edge.{role}",
                        "tasks_from": "preflight.yml",
                    },
                }
            ],
        }
    ]
    return run_playbook(tmp_path, playbook, extra)


def vip_in(interface: ipaddress.IPv4Interface, offset: int = 1) -> str:
    hosts = [host for host in interface.network.hosts() if host != interface.ip]
    return str(hosts[-offset])


@pytest.fixture(scope="module")
def network():
    if shutil.which("ip") is None:
        pytest.skip("no ip command")
    return local_network()


def test_preflight_passes_a_sound_vrrp_inventory(tmp_path, network):
    name, interface = network
    extra = {
        "keepalived_instances": [
            {"name": "web", "interface": name, "virtual_router_id": 51, "vips": [vip_in(interface)]}
        ]
    }
    result = preflight(tmp_path, "keepalived", extra)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "instances, message",
    [
        (
            [
                {
                    "name": "web",
                    "interface": "IFACE",
                    "virtual_router_id": 51,
                    "vips": ["203.0.113.77"],
                }
            ],
            "VIP 203.0.113.77 is outside the networks of IFACE",
        ),
        (
            [
                {"name": "web", "interface": "IFACE", "virtual_router_id": 51, "vips": ["VIP1"]},
                {"name": "api", "interface": "IFACE", "virtual_router_id": 51, "vips": ["VIP2"]},
            ],
            "virtual_router_id 51 is used by instance web on IFACE too",
        ),
        (
            [{"name": "web", "interface": "IFACE", "virtual_router_id": 300, "vips": ["VIP1"]}],
            "virtual_router_id 300 must be a whole number from 1 to 255",
        ),
        (
            [
                {
                    "name": "web",
                    "interface": "IFACE",
                    "virtual_router_id": 51,
                    "vips": ["VIP1"],
                    "state": "MASTER",
                    "nopreempt": True,
                }
            ],
            "nopreempt needs state BACKUP",
        ),
    ],
)
def test_preflight_says_what_to_change_in_a_bad_vrrp_inventory(
    tmp_path, network, instances, message
):
    name, interface = network
    text = (
        json.dumps(instances)
        .replace("IFACE", name)
        .replace("VIP1", vip_in(interface))
        .replace("VIP2", vip_in(interface, 2))
    )
    result = preflight(tmp_path, "keepalived", {"keepalived_instances": json.loads(text)})
    assert result.returncode != 0
    assert message.replace("IFACE", name) in result.stdout, result.stdout


def test_preflight_checks_vrids_across_the_group(tmp_path, network):
    name, interface = network
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "lb": {
                    "hosts": {
                        "localhost": {
                            "keepalived_instances": [
                                {
                                    "name": "web",
                                    "interface": name,
                                    "virtual_router_id": 51,
                                    "vips": [vip_in(interface)],
                                }
                            ]
                        },
                        "lb2": {
                            "keepalived_instances": [
                                {
                                    "name": "web",
                                    "interface": name,
                                    "virtual_router_id": 52,
                                    "vips": [vip_in(interface)],
                                }
                            ]
                        },
                    }
                }
            }
        )
    )
    playbook = [
        {
            "name": "preflight",
            "hosts": "localhost",
            "gather_facts": True,
            "tasks": [
                {
                    "name": "preflight",
                    "ansible.builtin.include_role": {
                        "name": "breakwater.edge.keepalived",
                        "tasks_from": "preflight.yml",
                    },
                }
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    collections = tmp_path / "collections" / "ansible_collections" / "breakwater"
    collections.mkdir(parents=True)
    (collections / "edge").symlink_to(ROOT)
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1"
    )
    result = subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            str(inventory),
            "-c",
            "local",
            str(tmp_path / "play.yml"),
            "-e",
            f"ansible_python_interpreter={sys.executable}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "VRRP instance web has different virtual_router_ids across the group" in result.stdout, (
        result.stdout
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {
                "bgp_peers": [{"address": "192.0.2.1", "remote_as": 65000}],
                "bgp_vips": ["198.19.0.10"],
            },
            "bgp_asn 0 must be this node's AS number",
        ),
        ({"bgp_asn": 65001, "bgp_vips": ["198.19.0.10"]}, "bgp_peers is empty"),
        (
            {
                "bgp_asn": 65001,
                "bgp_peers": [{"address": "192.0.2.1"}],
                "bgp_vips": ["198.19.0.10"],
            },
            "set remote_as to the router's AS number",
        ),
        (
            {
                "bgp_asn": 65001,
                "bgp_peers": [{"address": "192.0.2.1", "remote_as": 65000}],
                "bgp_vips": ["198.19.0.0/24"],
            },
            "is a network: announce host prefixes only",
        ),
    ],
)
def test_preflight_says_what_to_change_in_a_bad_bgp_inventory(tmp_path, settings, message):
    result = preflight(tmp_path, "bgp", settings)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout


def test_preflight_passes_a_sound_bgp_inventory(tmp_path):
    result = preflight(
        tmp_path,
        "bgp",
        {
            "bgp_asn": 65001,
            "bgp_router_id": "192.0.2.11",
            "bgp_peers": [{"address": "192.0.2.1", "remote_as": 65000}],
            "bgp_vips": ["198.19.0.10", "2001:db8:ffff::10"],
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
