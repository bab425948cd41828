"""The version in one place: galaxy.yml's, which setup.py gives the Python package.

setup.py reads galaxy.yml (a checkout), else MANIFEST.json (a built or installed
collection), else PKG-INFO (an sdist), and says plainly when there is none.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import breakwater

ROOT = Path(__file__).resolve().parents[2]


def load_setup() -> ModuleType:
    """setup.py as a module: its setup() call runs only as __main__, so not here."""
    spec = importlib.util.spec_from_file_location("breakwater_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


setup_py = load_setup()
GALAXY_VERSION = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


def manifest(version: object) -> str:
    """MANIFEST.json as ansible-galaxy writes it (the parts that matter here)."""
    info = {"namespace": "breakwater", "name": "edge", "version": version}
    return json.dumps({"collection_info": info, "file_manifest_file": {}, "format": 1})


def test_the_checkout_reads_galaxy_yml() -> None:
    # The strict line pattern agrees with a YAML parser on the real file.
    assert setup_py.collection_version(ROOT) == GALAXY_VERSION


def test_the_installed_package_has_galaxy_yml_version() -> None:
    assert breakwater.__version__ == GALAXY_VERSION, (
        "the venv's breakwater metadata is older than galaxy.yml: pip install --no-deps -e ."
    )


def test_galaxy_yml_comes_before_manifest_json(tmp_path: Path) -> None:
    (tmp_path / "galaxy.yml").write_text("namespace: breakwater\nversion: 1.2.3\n")
    (tmp_path / "MANIFEST.json").write_text(manifest("9.9.9"))
    assert setup_py.collection_version(tmp_path) == "1.2.3"


def test_an_installed_collection_reads_manifest_json(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.json").write_text(manifest("2.0.0-rc.1"))
    assert setup_py.collection_version(tmp_path) == "2.0.0-rc.1"


def test_an_sdist_reads_pkg_info(tmp_path: Path) -> None:
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: breakwater\nVersion: 3.1.4\n")
    assert setup_py.collection_version(tmp_path) == "3.1.4"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("version: 1.2.3\n", "1.2.3"),
        ('version: "1.2.3"\n', "1.2.3"),
        ("version: '1.2.3'  # released\n", "1.2.3"),
        ("version: 1.0.0-beta.2+build.7\n", "1.0.0-beta.2+build.7"),
        # nested keys of the same name are not the collection's
        ("dependencies:\n  version: 9.9.9\nversion: 1.2.3\n", "1.2.3"),
    ],
)
def test_galaxy_yml_version_lines(tmp_path: Path, text: str, version: str) -> None:
    (tmp_path / "galaxy.yml").write_text(text)
    assert setup_py.collection_version(tmp_path) == version


@pytest.mark.parametrize(
    "text",
    [
        "namespace: breakwater\n",  # no version
        "version: 1.2.3\nversion: 1.2.4\n",  # twice
        "info:\n  version: 1.2.3\n",  # not top-level
        "version: 1.2\n",  # not a semantic version
        "version: >-\n  1.2.3\n",  # a block scalar a YAML parser would read
        "version: 1.2.3 or so\n",
        "version: \"1.2.3'\n",
    ],
)
def test_galaxy_yml_it_cannot_read_plainly_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "galaxy.yml").write_text(text)
    (tmp_path / "MANIFEST.json").write_text(
        manifest("9.9.9")
    )  # not a fallback for a bad galaxy.yml
    with pytest.raises(setup_py.VersionError, match=r"galaxy\.yml: expected exactly one"):
        setup_py.collection_version(tmp_path)


@pytest.mark.parametrize("text", ["{}", "not json", manifest(None), manifest(""), "[1]"])
def test_a_manifest_without_a_version_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "MANIFEST.json").write_text(text)
    with pytest.raises(setup_py.VersionError, match=r"MANIFEST\.json"):
        setup_py.collection_version(tmp_path)


def test_no_version_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(setup_py.VersionError) as error:
        setup_py.collection_version(tmp_path)
    assert "galaxy.yml" in str(error.value) and "MANIFEST.json" in str(error.value)


def run_setup_py(directory: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "setup.py", directory)
    (directory / "pyproject.toml").write_text(
        '[project]\nname = "breakwater"\ndynamic = ["version"]\n'
        "[tool.setuptools]\npy-modules = []\n"
    )
    return subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )


def test_setuptools_takes_the_version_from_setup_py(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.json").write_text(manifest("4.5.6"))
    result = run_setup_py(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "4.5.6"


def test_setuptools_stops_with_the_message(tmp_path: Path) -> None:
    result = run_setup_py(tmp_path)
    assert result.returncode != 0
    assert "setup.py: no version for the breakwater package" in result.stderr
    assert "Traceback" not in result.stderr
