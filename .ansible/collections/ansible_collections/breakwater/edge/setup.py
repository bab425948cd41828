"""The breakwater package's version is the collection's: galaxy.yml's ``version:``.

Everything else (pyproject.toml's ``dynamic = ["version"]``, ``breakwater.__version__``
through the installed metadata, the watcher role's wheelhouse) derives from it. Read
from, in order:

- galaxy.yml next to this file: a checkout of the collection;
- MANIFEST.json (``collection_info.version``): an installed or unpacked collection
  artifact, which ansible-galaxy writes without galaxy.yml (the watcher role builds
  its wheel from there with ``pip wheel <collection dir>``);
- PKG-INFO: an sdist built from either, where setuptools wrote the version down.
"""

from __future__ import annotations

import json
import re
from email.parser import HeaderParser
from pathlib import Path

# Build isolation installs setuptools and wheel only, so no YAML parser: galaxy.yml's
# version is read from its one top-level line, and anything that line cannot say
# plainly (indented, quoted differently, a flow mapping, twice) is refused rather
# than guessed at. ansible-galaxy itself requires a semantic version.
GALAXY_VERSION = re.compile(
    r"^version:[ \t]*(?P<quote>[\"']?)"
    r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)"
    r"(?P=quote)[ \t]*(?:#.*)?$"
)


class VersionError(Exception):
    """No collection version could be read."""


def collection_version(directory: Path) -> str:
    """The collection's version, from galaxy.yml, MANIFEST.json or PKG-INFO."""
    galaxy = directory / "galaxy.yml"
    if galaxy.is_file():
        lines = [line for line in galaxy.read_text().splitlines() if line.startswith("version:")]
        matches = [GALAXY_VERSION.match(line) for line in lines]
        if len(lines) != 1 or matches[0] is None:
            raise VersionError(
                f"{galaxy}: expected exactly one top-level line 'version: X.Y.Z' "
                f"(a semantic version, read without a YAML parser), found {lines!r}"
            )
        return matches[0]["version"]
    manifest = directory / "MANIFEST.json"
    if manifest.is_file():
        try:
            version = json.loads(manifest.read_text())["collection_info"]["version"]
        except (ValueError, KeyError, TypeError) as exc:
            raise VersionError(f"{manifest}: no collection_info.version ({exc!r})") from exc
        if not isinstance(version, str) or not version:
            raise VersionError(f"{manifest}: collection_info.version is {version!r}")
        return version
    pkg_info = directory / "PKG-INFO"
    if pkg_info.is_file():
        version = HeaderParser().parsestr(pkg_info.read_text())["Version"]
        if version:
            return str(version)
    raise VersionError(
        f"no version for the breakwater package in {directory}: it takes the collection's,"
        " from galaxy.yml (a checkout) or MANIFEST.json (a built or installed collection),"
        " and neither is there"
    )


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it
    import tempfile

    from setuptools import setup

    try:
        VERSION = collection_version(Path(__file__).resolve().parent)
    except VersionError as exc:
        raise SystemExit(f"setup.py: {exc}") from None
    # A fresh build directory for every build: setuptools copies the sources into
    # build/lib and never removes what src/ no longer has, so a stale build/ in a
    # checkout (the watcher role builds its wheelhouse from the checkout) would ship
    # deleted modules.
    with tempfile.TemporaryDirectory(prefix="breakwater-build-") as build_base:
        setup(version=VERSION, options={"build": {"build_base": build_base}})
