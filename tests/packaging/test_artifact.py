"""The collection artifact that ansible-galaxy builds: exactly the files that ship.

galaxy.yml lists what ships as manifest directives (an allowlist). These tests build
the artifact from a copy of the checkout, then again from the same copy littered with
what a working tree collects (builds, caches, venvs, bytecode), and compare the
file lists with each other and with what should ship, stated here on its own terms.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_GALAXY = Path(sys.executable).parent / "ansible-galaxy"

# What ships: the collection's content, the Python package's source (the watcher
# role builds its wheelhouse from it) and the plugins' unit tests (ansible-test units).
SHIPPED_DIRECTORIES = (
    "changelogs/",
    "docs/",
    "inventories/",
    "LICENSES/",
    "meta/",
    "monitoring/",
    "playbooks/",
    "plugins/",
    "roles/",
    "src/breakwater/",
    "tests/unit/plugins/",
)
SHIPPED_FILES = {"README.md", "CHANGELOG.rst", "pyproject.toml", "setup.py", "constraints.txt"}
# ansible-galaxy writes these two.
GENERATED = {"MANIFEST.json", "FILES.json"}

LITTER = {
    "build/lib/breakwater/__init__.py": "stale = True\n",
    "build/bdist.linux-x86_64/x": "",
    "dist/breakwater-edge-0.0.1.tar.gz": "",
    ".mypy_cache/3.11/breakwater/cli.data.json": "{}",
    ".ruff_cache/0.17.5/123": "",
    ".pytest_cache/v/cache/lastfailed": "{}",
    ".hypothesis/examples/x": "",
    ".venv/bin/python": "",
    ".venv-publish/bin/python": "",
    ".lab/collections/x": "",
    ".demo/etcd/member": "",
    "src/breakwater.egg-info/PKG-INFO": "",
    "src/breakwater/__pycache__/cli.cpython-311.pyc": "",
    "src/breakwater/k8s/__pycache__/decode.cpython-311.pyc": "",
    "plugins/modules/__pycache__/route.cpython-311.pyc": "",
    "roles/watcher/tasks/.main.yml.swp": "",
    "tests/unit/plugins/modules/__pycache__/x.pyc": "",
    "tests/output/junit/x.xml": "",
    "changelogs/.plugin-cache.yaml": "objects: {}\n",
    "notes.txt": "",
}


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    )
    return [name for name in out.stdout.split("\0") if name and (ROOT / name).is_file()]


def expected_files() -> set[str]:
    shipped = {
        name
        for name in tracked_files()
        if (name in SHIPPED_FILES or name.startswith(SHIPPED_DIRECTORIES))
        and not any(part.startswith(".") for part in name.split("/"))  # .keep and the like
    }
    return shipped | GENERATED


def copy_checkout(destination: Path) -> Path:
    for name in tracked_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return destination


def build(tree: Path, output: Path) -> set[str]:
    output.mkdir()
    subprocess.run(
        [str(ANSIBLE_GALAXY), "collection", "build", "--output-path", str(output), str(tree)],
        check=True,
        capture_output=True,
        text=True,
    )
    (artifact,) = output.glob("breakwater-edge-*.tar.gz")
    with tarfile.open(artifact) as tar:
        return {member.name for member in tar.getmembers() if member.isfile()}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    base = tmp_path_factory.mktemp("artifact")
    clean = copy_checkout(base / "clean")
    littered = copy_checkout(base / "littered")
    for name, text in LITTER.items():
        path = littered / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return build(clean, base / "out-clean"), build(littered, base / "out-littered")


def test_the_artifact_holds_exactly_what_ships(artifacts: tuple[set[str], set[str]]) -> None:
    clean, _ = artifacts
    expected = expected_files()
    assert sorted(expected - clean) == [], "missing from the artifact"
    assert sorted(clean - expected) == [], "in the artifact but should not ship"


def test_litter_in_the_tree_does_not_change_the_artifact(
    artifacts: tuple[set[str], set[str]],
) -> None:
    clean, littered = artifacts
    assert sorted(littered - clean) == []
    assert sorted(clean - littered) == []


def test_the_artifact_carries_what_an_installed_collection_needs(
    artifacts: tuple[set[str], set[str]],
) -> None:
    clean, _ = artifacts
    roles = {path.parents[1].name for path in (ROOT / "roles").glob("*/meta/argument_specs.yml")}
    assert roles, "no roles found"
    for role in roles:
        assert f"roles/{role}/README.md" in clean  # galaxy-importer requires one per role
        assert f"roles/{role}/meta/argument_specs.yml" in clean
    # The watcher role builds the wheel from the installed collection.
    assert {"pyproject.toml", "setup.py", "constraints.txt"} <= clean
    assert any(name.startswith("src/breakwater/templates/") for name in clean)
    assert "meta/runtime.yml" in clean
    assert "CHANGELOG.rst" in clean
