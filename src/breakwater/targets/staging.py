"""Staging: files written beside their target, checked by the daemon's own checker,
swapped in by an atomic rename; content-addressed generation directories, written
only inside themselves and pruned.  What every target shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from typing import Literal

from breakwater.catalog import Rejection
from breakwater.render.haproxy import RenderedConfig

log = logging.getLogger(__name__)


Action = Literal["none", "runtime", "reload", "written", "dry-run", "failed"]


class CheckFailed(Exception):
    """The daemon's own checker refused a staged file; the message has its output."""


@dataclass
class ApplyResult:
    action: Action
    detail: str = ""
    runtime_commands: int = 0
    diff: str = ""
    refused: tuple[Rejection, ...] = ()  # left out: by the renderer, or held back
    check_failed: str | None = None  # the checker's output, when it refused the file
    # Why a reload: "slots" (a backend outgrew its slots and cannot grow at runtime),
    # "spares" (a new Service found no idle spare section), "certificates" (the default
    # certificate changes, or certificates share a name), "rename" (spare sections in
    # use get their backends' names), "runtime-refused" (HAProxy refused a runtime
    # command), "config" (anything else).
    cause: str = ""


@dataclass
class FileTarget:
    """Staged write, check and atomic swap of one configuration file."""

    path: str
    check_command: list[str]  # '{}' is replaced by the staged path
    check_timeout: float = 60.0

    def staged_path(self) -> str:
        directory, name = os.path.split(self.path)
        return os.path.join(directory, f".{name}.staged")

    def current(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    async def check(self, staged: str) -> None:
        command = [staged if part == "{}" else part for part in self.check_command]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            output, _stderr = await asyncio.wait_for(process.communicate(), self.check_timeout)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise CheckFailed(f"{command[0]} check timed out after {self.check_timeout}s") from exc
        if process.returncode != 0:
            text = output.decode(errors="replace").strip()
            raise CheckFailed(f"{' '.join(command)} failed: {text[-2000:]}")

    async def check_text(self, text: str) -> None:
        """Check ``text`` as this file would be checked, without touching the file."""
        directory, name = os.path.split(self.path)
        trial = os.path.join(directory, f".{name}.trial")
        await asyncio.to_thread(write_file, trial, text, 0o600)
        try:
            await self.check(trial)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(trial)

    async def stage(self, text: str, mode: int = 0o644, check: bool = True) -> None:
        """Write ``text`` beside the target and check it (unless told not to).

        A staged file that cannot be written or fails its check is removed.
        """
        staged = self.staged_path()
        try:
            # In a thread: a large file's write and fsync must not stall the event loop.
            await asyncio.to_thread(write_file, staged, text, mode)
            if check:
                await self.check(staged)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            raise

    def swap(self) -> None:
        """Rename the staged file over the target (atomic)."""
        staged = self.staged_path()
        try:
            os.replace(staged, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            raise

    def restore(self, previous: str | None) -> None:
        """Put back the file as it was before a swap that the daemon did not take."""
        if previous is not None:
            write_file(self.path, previous, 0o644)

    async def write_checked(self, text: str, mode: int = 0o644, check: bool = True) -> None:
        """Stage beside the target, check (unless told not to), rename over it (atomic)."""
        await self.stage(text, mode, check)
        self.swap()


def write_file(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def inside(directory: str, name: str) -> str:
    """``directory``/``name``, refused unless it resolves to a path inside ``directory``."""
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root or path == root:
        raise OSError(f"refusing to write {name!r}: outside {directory}")
    return path


def write_generation(rendered: RenderedConfig) -> None:
    """Write the content-addressed generation directory, if it is not there yet.

    Every file lands inside it (names are resolved and compared before anything is
    written), whatever its name holds.
    """
    if os.path.isdir(rendered.generation_dir):
        return
    building = rendered.generation_dir + ".new"
    paths = {name: inside(building, name) for name in rendered.generation_files}
    shutil.rmtree(building, ignore_errors=True)
    # Modes as the haproxy role writes them: maps readable, keys for the owner only.
    os.mkdir(building)
    os.chmod(building, 0o755)
    os.mkdir(os.path.join(building, "certs"))
    os.chmod(os.path.join(building, "certs"), 0o750)
    for name, text in rendered.generation_files.items():
        folder = os.path.dirname(paths[name])
        if not os.path.isdir(folder):  # ca/, errors/: readable as the maps
            os.makedirs(folder, 0o755)
        mode = 0o600 if name in rendered.secret_files else 0o644
        write_file(paths[name], text, mode)
    os.rename(building, rendered.generation_dir)


def ensure_node_state(config_dir: str) -> None:
    """The node's rotation map must exist (empty: in rotation) for the config to load."""
    path = os.path.join(config_dir, "node-state.map")
    if not os.path.exists(path):
        write_file(path, "", 0o664)


_NAMED_GENERATION = re.compile(r"(/\S*/gen-[0-9a-f]{16})/")


def generation_dirs(config: str | None) -> list[str]:
    """The generation directories a rendered ``haproxy.cfg`` names (in file order)."""
    return list(dict.fromkeys(_NAMED_GENERATION.findall(config or "")))


def remove_old_generations(config_dir: str, keep: set[str]) -> None:
    for entry in os.listdir(config_dir):
        path = os.path.join(config_dir, entry)
        if entry.startswith("gen-") and path not in keep:
            shutil.rmtree(path, ignore_errors=True)
