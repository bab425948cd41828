"""The Python package on its own: a wheel built from the checkout (its files, without
what git ignores), installed into a clean venv with its dependencies, gives a working
``breakwater`` command.

The wheel is built and installed once for this module (PyPI or the configured index
must be reachable); the command then runs from outside the source tree, with no
PYTHONPATH, so everything it uses (modules, templates) comes from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
GALAXY_VERSION = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # outside the source tree

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        """The installed ``breakwater`` command, from outside the checkout."""
        result = subprocess.run(
            [str(self.venv / "bin" / "breakwater"), *args],
            cwd=self.workdir,
            env=clean_environment(self.venv),
            input=stdin,  # bytes: protobuf values are not text
            capture_output=True,
            timeout=60,
            check=False,
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )


def clean_environment(venv: Path) -> dict[str, str]:
    """The caller's environment without anything that points Python at the checkout
    or at the test venv (PYTHONPATH, VIRTUAL_ENV, the user site)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key != "VIRTUAL_ENV"
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    env["PYTHONNOUSERSITE"] = "1"
    return env


def checkout_copy(destination: Path) -> Path:
    """The checkout's files without what git ignores: a build/ or *.egg-info/ left in
    the working tree would otherwise hide a file missing from package-data (setuptools
    reuses both), and let stale modules into the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path.is_file():  # not deleted in the working tree
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination / name)
    return destination


def step(*args: str, cwd: Path) -> None:
    """A setup command (pip, venv) that must succeed; its output if it does not."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    wheels, venv, workdir = base / "wheels", base / "venv", base / "work"
    workdir.mkdir()
    source = checkout_copy(base / "checkout")
    step(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(source), cwd=base
    )
    (wheel,) = wheels.glob("breakwater-*.whl")
    step(sys.executable, "-m", "venv", str(venv), cwd=base)
    python = str(venv / "bin" / "python")
    constraints = str(ROOT / "constraints.txt")
    step(python, "-m", "pip", "install", "-q", "-c", constraints, str(wheel), cwd=workdir)
    return Installed(wheel, venv, workdir)


def test_the_wheel_is_named_with_galaxy_yml_version(installed: Installed) -> None:
    name, version, *_ = installed.wheel.name.split("-")
    assert name == "breakwater"
    assert Version(version) == Version(GALAXY_VERSION)


def test_the_wheel_holds_the_package_and_its_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        files = {name for name in wheel.namelist() if name.startswith("breakwater/")}
    source = {
        path.relative_to(ROOT / "src").as_posix()
        for path in (ROOT / "src" / "breakwater").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    # Templates render from package data (importlib.resources); the protobuf
    # descriptors are built in code (breakwater.k8s.descriptors), so modules only.
    assert {"breakwater/templates/haproxy.cfg.j2", "breakwater/templates/varnish.vcl.j2"} <= files
    assert {"breakwater/py.typed", "breakwater/k8s/descriptors.py"} <= files
    # Exactly the source: nothing missing, nothing stale from an old build/ directory.
    assert files == source


def test_it_runs_from_the_venv_not_the_checkout(installed: Installed) -> None:
    result = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import breakwater; print(breakwater.__file__)",
        ],
        cwd=installed.workdir,
        env=clean_environment(installed.venv),
        capture_output=True,
        text=True,
        check=True,
    )
    module = Path(result.stdout.strip())
    assert module.is_relative_to(installed.venv), module
    assert not module.is_relative_to(ROOT), module


def test_help(installed: Installed) -> None:
    result = installed.run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: breakwater")
    for command in ("watch", "check-config", "decode"):
        assert command in result.stdout


def test_version_is_galaxy_yml_version(installed: Installed) -> None:
    result = installed.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"breakwater {Version(GALAXY_VERSION)}"


def test_decode_a_service_as_stored_in_etcd(installed: Installed) -> None:
    result = installed.run("decode", str(FIXTURES / "core.v1.Service.pb"))
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    assert (decoded["apiVersion"], decoded["kind"]) == ("v1", "Service")
    assert decoded["metadata"]["name"] == "nameValue"
    assert decoded["metadata"]["namespace"] == "namespaceValue"
    assert decoded == json.loads((FIXTURES / "core.v1.Service.json").read_text())


def test_decode_an_ingress_from_stdin(installed: Installed) -> None:
    data = (FIXTURES / "networking.k8s.io.v1.Ingress.pb").read_bytes()
    result = installed.run("decode", "-", stdin=data)
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    assert (decoded["kind"], decoded["metadata"]["name"]) == ("Ingress", "nameValue")


def test_check_config_renders_the_packaged_template(installed: Installed) -> None:
    config = installed.workdir / "watcher.yml"
    config.write_text("catalog:\n  ingress_class: edge\n")
    result = installed.run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["catalog"]["ingress_class"] == "edge"
    assert "configuration is valid" in result.stderr


def test_a_stale_build_directory_never_reaches_the_wheel(tmp_path: Path) -> None:
    """The watcher role builds its wheelhouse from the checkout, where setuptools' build/
    may hold modules src/ no longer has; each build starts from a fresh directory."""
    source = checkout_copy(tmp_path / "checkout")
    stale = source / "build" / "lib" / "breakwater" / "removed_long_ago.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("raise SystemExit('a module deleted from src/')\n")
    wheels = tmp_path / "wheels"
    step(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-w",
        str(wheels),
        str(source),
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("breakwater-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "breakwater/cli.py" in names
    assert not [name for name in names if "removed_long_ago" in name]
