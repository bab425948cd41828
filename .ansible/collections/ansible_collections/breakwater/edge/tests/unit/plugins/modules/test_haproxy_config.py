# Copyright: Breakwater contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the haproxy_config module asks of the package, without HAProxy (ansible-test units).

Writing, checking and swapping with a real HAProxy is in tests/integration.
"""

from __future__ import annotations

import os

import pytest

edge = pytest.importorskip("breakwater.edge")

GENERATION = "gen-0123456789abcdef"


def install(tmp_path, **overrides):
    arguments = dict(
        config_file=str(tmp_path / "haproxy.cfg"),
        config="global\n",
        generation_dir=str(tmp_path / GENERATION),
        files={"routes-exact.map": ""},
        secret_files={"certs/a.pem": "KEY"},
        check_mode=True,
    )
    arguments.update(overrides)
    return edge.install_haproxy_config(**arguments)


def test_check_mode_says_what_would_be_written_and_pruned_and_writes_nothing(tmp_path):
    (tmp_path / "haproxy.cfg").write_text("old\n")
    (tmp_path / "gen-fedcba9876543210").mkdir()
    before = sorted(os.listdir(tmp_path))
    change = install(tmp_path)
    assert change["changed"]
    assert change["before"] == "old\n" and change["after"] == "global\n"
    assert [os.path.basename(p) for p in change["written"]] == [
        "node-state.map",
        GENERATION,
        "haproxy.cfg",
    ]
    assert [os.path.basename(p) for p in change["pruned"]] == ["gen-fedcba9876543210"]
    assert sorted(os.listdir(tmp_path)) == before


def test_nothing_to_do_is_no_change(tmp_path):
    (tmp_path / "haproxy.cfg").write_text("global\n")
    (tmp_path / "node-state.map").write_text("")
    (tmp_path / GENERATION).mkdir()
    change = install(tmp_path)
    assert not change["changed"] and change["written"] == () and change["pruned"] == ()


@pytest.mark.parametrize("name", ["gen-x", "generation", "gen-0123456789abcdef0"])
def test_a_generation_directory_is_named_as_the_renderer_names_it(tmp_path, name):
    with pytest.raises(ValueError, match="not a generation directory"):
        install(tmp_path, generation_dir=str(tmp_path / name))


def test_a_file_is_secret_or_not(tmp_path):
    with pytest.raises(ValueError, match="in both"):
        install(tmp_path, files={"a": ""}, secret_files={"a": ""})


def test_the_generation_the_watcher_keeps_after_a_reload_is_no_change(tmp_path):
    """After a reload the watcher keeps the generation in use and the one before it;
    the same configuration installed again changes nothing (check mode agrees)."""
    current = tmp_path / GENERATION
    (tmp_path / "haproxy.cfg").write_text(f"global\n# {current}/routes-exact.map\n")
    (tmp_path / "node-state.map").write_text("")
    current.mkdir()
    previous = tmp_path / "gen-fedcba9876543210"
    previous.mkdir()
    os.utime(previous, (1, 1))
    change = install(tmp_path, config=f"global\n# {current}/routes-exact.map\n")
    assert not change["changed"] and change["pruned"] == ()
    older = tmp_path / "gen-00000000000000aa"
    older.mkdir()
    os.utime(older, (0, 0))
    change = install(tmp_path, config=f"global\n# {current}/routes-exact.map\n")
    assert [os.path.basename(p) for p in change["pruned"]] == ["gen-00000000000000aa"]
