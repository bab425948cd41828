"""Staging: names kept inside their directory, generation directories with the role's
modes, staged files checked by a real checker process and swapped, old generations
pruned."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from breakwater.render.haproxy import RenderedConfig
from breakwater.targets.staging import (
    CheckFailed,
    FileTarget,
    ensure_node_state,
    inside,
    remove_old_generations,
    write_generation,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("routes-exact.map", "routes-exact.map"), ("certs/a.pem", "certs/a.pem"), ("certs/../b", "b")],
)
def test_inside_accepts_names_that_stay_in_the_directory(tmp_path, name, expected) -> None:
    assert inside(str(tmp_path), name) == str(tmp_path / expected)


@pytest.mark.parametrize("name", ["../x.map", "certs/../../x.pem", "/etc/passwd", ".", ""])
def test_inside_refuses_names_that_leave_the_directory(tmp_path, name) -> None:
    with pytest.raises(OSError, match="outside"):
        inside(str(tmp_path / "gen"), name)


def test_inside_refuses_a_symlink_that_leads_out(tmp_path) -> None:
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "certs").symlink_to(tmp_path)
    with pytest.raises(OSError, match="outside"):
        inside(str(tmp_path / "gen"), "certs/key.pem")


def rendered_in(directory: Path, files: dict[str, str], secrets: set[str]) -> RenderedConfig:
    return RenderedConfig(
        config="",
        generation_dir=str(directory / "gen-0123456789abcdef"),
        generation_files=files,
        secret_files=frozenset(secrets),
    )


def test_a_generation_has_the_roles_modes_and_its_files_text(tmp_path) -> None:
    files = {"routes-exact.map": "a.example.com/ be_a\n", "certs/shop_www.pem": "KEY\n"}
    rendered = rendered_in(tmp_path, files, {"certs/shop_www.pem"})
    write_generation(rendered)
    generation = Path(rendered.generation_dir)
    assert sorted(os.listdir(tmp_path)) == ["gen-0123456789abcdef"]  # no ".new" left
    assert (generation / "routes-exact.map").read_text() == "a.example.com/ be_a\n"
    assert (generation / "certs" / "shop_www.pem").read_text() == "KEY\n"
    assert mode(generation) == 0o755
    assert mode(generation / "certs") == 0o750
    assert mode(generation / "routes-exact.map") == 0o644
    assert mode(generation / "certs" / "shop_www.pem") == 0o600


def test_an_existing_generation_is_not_written_again(tmp_path) -> None:
    write_generation(rendered_in(tmp_path, {"routes-exact.map": "first\n"}, set()))
    write_generation(rendered_in(tmp_path, {"routes-exact.map": "second\n"}, set()))
    assert (tmp_path / "gen-0123456789abcdef" / "routes-exact.map").read_text() == "first\n"


def test_a_generation_with_a_name_outside_writes_nothing(tmp_path) -> None:
    files = {"routes-exact.map": "", "certs/../../escaped.pem": "KEY"}
    with pytest.raises(OSError, match="outside"):
        write_generation(rendered_in(tmp_path / "etc", files, {"certs/../../escaped.pem"}))
    assert list(tmp_path.rglob("*")) == []


def test_the_node_state_map_is_created_empty_and_never_overwritten(tmp_path) -> None:
    ensure_node_state(str(tmp_path))
    assert (tmp_path / "node-state.map").read_text() == ""
    assert mode(tmp_path / "node-state.map") == 0o664
    (tmp_path / "node-state.map").write_text("state out\n")
    ensure_node_state(str(tmp_path))
    assert (tmp_path / "node-state.map").read_text() == "state out\n"


def test_pruning_keeps_the_generations_it_is_told_and_everything_else(tmp_path) -> None:
    for name in ("gen-aaaaaaaaaaaaaaaa", "gen-bbbbbbbbbbbbbbbb", "gen-cccccccccccccccc", "certs"):
        (tmp_path / name).mkdir()
    (tmp_path / "node-state.map").write_text("")
    keep = {str(tmp_path / "gen-aaaaaaaaaaaaaaaa"), str(tmp_path / "gen-cccccccccccccccc")}
    remove_old_generations(str(tmp_path), keep)
    assert sorted(os.listdir(tmp_path)) == [
        "certs",
        "gen-aaaaaaaaaaaaaaaa",
        "gen-cccccccccccccccc",
        "node-state.map",
    ]


def target_in(tmp_path: Path, *check: str, timeout: float = 60.0) -> FileTarget:
    path = tmp_path / "haproxy.cfg"
    path.write_text("last good\n")
    return FileTarget(str(path), list(check), check_timeout=timeout)


def test_a_checked_write_lands_whole_with_its_mode(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/true")
    asyncio.run(target.write_checked("new\n"))
    assert (tmp_path / "haproxy.cfg").read_text() == "new\n"
    assert mode(tmp_path / "haproxy.cfg") == 0o644
    assert sorted(os.listdir(tmp_path)) == ["haproxy.cfg"]


def test_a_refused_write_keeps_the_last_good_file(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/false")
    with pytest.raises(CheckFailed, match="/bin/false failed"):
        asyncio.run(target.write_checked("bad\n"))
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"
    assert sorted(os.listdir(tmp_path)) == ["haproxy.cfg"]  # the staged file is gone


def test_an_unchecked_write_does_not_run_the_checker(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/false")
    asyncio.run(target.write_checked("servers\n", check=False))
    assert (tmp_path / "haproxy.cfg").read_text() == "servers\n"


def test_the_checker_is_given_the_staged_text(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/grep", "-q", "^global$", "{}")
    asyncio.run(target.check_text("global\n"))
    with pytest.raises(CheckFailed, match="grep"):
        asyncio.run(target.check_text("defaults\n"))
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"
    assert sorted(os.listdir(tmp_path)) == ["haproxy.cfg"]  # the trial file is gone


def test_a_checker_that_hangs_is_stopped(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/sleep", "10", timeout=0.2)
    with pytest.raises(CheckFailed, match="timed out"):
        asyncio.run(target.write_checked("new\n"))
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"


def test_stage_swap_and_restore(tmp_path) -> None:
    target = target_in(tmp_path, "/bin/true")
    asyncio.run(target.stage("staged\n"))
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"  # not in place yet
    target.swap()
    assert (tmp_path / "haproxy.cfg").read_text() == "staged\n"
    target.restore("last good\n")
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"
    target.restore(None)  # there was no file before: nothing to put back
    assert (tmp_path / "haproxy.cfg").read_text() == "last good\n"
