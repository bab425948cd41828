"""meta/runtime.yml agrees with what CI tests and with the modules' documentation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())


def pinned(package: str) -> Version:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return Version(version.strip())
    raise AssertionError(f"{package} is not pinned in constraints.txt")


def test_requires_ansible_starts_at_the_ansible_core_ci_tests() -> None:
    tested = pinned("ansible-core")
    specifier = SpecifierSet(RUNTIME["requires_ansible"])
    assert tested in specifier
    lower = [Version(s.version) for s in specifier if s.operator == ">="]
    assert lower, "requires_ansible has no lower bound"
    # Nothing older than the minor release CI runs is claimed.
    assert (lower[0].major, lower[0].minor) == (tested.major, tested.minor)


def modules_taking_etcd() -> set[str]:
    found = set()
    for path in (ROOT / "plugins" / "modules").glob("*.py"):
        text = path.read_text()
        fragments = re.search(r"extends_documentation_fragment:\n((?:\s+- .*\n)+)", text)
        if fragments and re.search(r"- breakwater\.edge\.etcd\s*$", fragments[1], re.M):
            found.add(path.stem)
    return found


def test_the_etcd_action_group_is_every_module_that_takes_the_etcd_connection() -> None:
    group = set(RUNTIME["action_groups"]["etcd"])
    assert modules_taking_etcd(), "no module documents the etcd connection"
    assert group == modules_taking_etcd()
