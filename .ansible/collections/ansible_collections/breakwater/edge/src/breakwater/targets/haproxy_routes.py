"""Routes and certificates through HAProxy's runtime API: what HAProxy serves from the
generation directory it loaded, and the commands that bring it to a new one.

HAProxy names a map, a certificate and a crt-list by the path it loaded them from: the
generation directory of the last reload (:attr:`LiveFiles.directory`).  The files
rendered since then live in newer directories; HAProxy is given their contents under
the old names, and a reload from the newer files serves the same.

Route maps are replaced whole and atomically: ``prepare map`` opens an empty version,
``add map @<version>`` fills it (one payload), ``commit map @<version>`` makes it the
map in one step, so a request sees the old map or the new one, never half of either.
Certificates: ``new ssl cert`` + ``set ssl cert`` + ``commit ssl cert``, then ``add ssl
crt-list``; gone ones leave the crt-list, then the store.  What would serve differently
after a reload than at runtime takes a reload: see :func:`certificate_commands`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MAP_FILES = ("routes-exact.map", "routes-prefix.map")
CERT_DIR = "certs/"


@dataclass
class LiveFiles:
    """What HAProxy serves from its generation directory: map and certificate texts by
    their name in the directory, under the paths of ``directory``."""

    directory: str
    maps: dict[str, str] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)  # "certs/<name>.pem" -> PEM
    default: str | None = None  # the crt-list's first entry: "certs/<name>.pem"

    @classmethod
    def of(cls, directory: str, files: Mapping[str, str]) -> LiveFiles:
        return cls(
            directory,
            {name: files.get(name, "") for name in MAP_FILES},
            {name: text for name, text in files.items() if name.startswith(CERT_DIR)},
            default_certificate(files),
        )

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)


@dataclass
class RouteChange:
    """What changes in the generation directory, as runtime work."""

    maps: dict[str, str] = field(default_factory=dict)  # map name -> new text
    before_maps: list[Command] = field(default_factory=list)  # certificates added
    after_maps: list[Command] = field(default_factory=list)  # certificates removed
    certificates: dict[str, str] = field(default_factory=dict)  # the new set
    default: str | None = None

    def __bool__(self) -> bool:
        return bool(self.maps or self.before_maps or self.after_maps)


Command = str | tuple[str, str]
"""A runtime API command: one line, or a line ending in ``<<`` and its payload."""


def default_certificate(files: Mapping[str, str]) -> str | None:
    """The first entry of a rendered crt-list, as a name in the generation directory."""
    first = files.get("crt-list", "").partition("\n")[0]
    return CERT_DIR + os.path.basename(first) if first else None


def payload_lines(text: str) -> str:
    """``text`` as a payload: no empty line (one ends the payload), a final newline."""
    return "".join(line + "\n" for line in text.splitlines() if line.strip())


def route_change(
    live: LiveFiles,
    files: Mapping[str, str],
    names_of: Callable[[str], frozenset[str]],
) -> RouteChange | None:
    """The runtime work from ``live`` to the generation files ``files``; None when it
    takes a reload: the crt-list's first entry, the default certificate for clients
    without SNI, would change (a reload loads the crt-list in name order, the runtime
    appends), or see :func:`certificate_commands`."""
    change = RouteChange()
    for name in MAP_FILES:
        text = files.get(name, "")
        if text != live.maps.get(name, ""):
            change.maps[name] = text
    wanted = {name: text for name, text in files.items() if name.startswith(CERT_DIR)}
    if wanted != live.certificates:
        if default_certificate(files) != live.default:
            return None  # the default certificate (clients without SNI) would change
        commands = certificate_commands(live, wanted, names_of)
        if commands is None:
            return None
        change.before_maps, change.after_maps = commands
        change.certificates = wanted
        change.default = default_certificate(files)
    return change


def certificate_commands(
    live: LiveFiles,
    wanted: Mapping[str, str],
    names_of: Callable[[str], frozenset[str]],
) -> tuple[list[Command], list[Command]] | None:
    """Commands that load the certificates of ``wanted`` that HAProxy lacks (before the
    maps change) and drop those it no longer needs (after); None when the result
    could serve differently from a reload of the files, which takes a reload:

    - the bind appears or goes (the first certificate, the last);
    - a PEM longer than a runtime command takes (:data:`PAYLOAD_LIMIT`);
    - an added certificate shares a name (SNI) with another certificate: which one
      HAProxy picks then depends on the order they were loaded in.

    A renewed Secret is a new file name (its digest), so it is added, then the old
    one removed.
    """
    current = live.certificates
    if not current or not wanted:
        return None
    added = sorted(name for name in wanted if name not in current)
    removed = sorted(name for name in current if name not in wanted)
    changed = sorted(name for name in wanted if name in current and wanted[name] != current[name])
    if changed:
        return None  # a name is its content's digest: not ours, or not what HAProxy has
    for name in added:
        names = names_of(wanted[name])
        for other in wanted:
            if other != name and names & names_of(wanted[other]):
                return None
    crt_list = live.path("crt-list")
    before: list[Command] = []
    for name in added:
        path = live.path(name)
        if len(payload_lines(wanted[name])) > PAYLOAD_LIMIT:
            return None  # more than the CLI takes in one command (a long chain)
        before += [
            f"new ssl cert {path}",
            (f"set ssl cert {path} <<", payload_lines(wanted[name])),
            f"commit ssl cert {path}",
            f"add ssl crt-list {crt_list} {path}",
        ]
    after: list[Command] = []
    for name in removed:
        path = live.path(name)
        after += [f"del ssl crt-list {crt_list} {path}", f"del ssl cert {path}"]
    return before, after


def entry_command(path: str, before: str, after: str) -> Command | None:
    """The one command that takes the map at ``path`` from ``before`` to ``after``
    (map texts) when they differ by one entry added or removed: one entry changes at
    once, so no half-applied map is ever seen.  None when more differ, or an entry
    takes another value (``set map`` takes no payload, and a value holds ``;``, which
    would end a command): a new version, filled and committed (:func:`map_commands`).

    A route added or removed is one entry per map: one command instead of the whole
    map again, which HAProxy would parse anew at each change (1,000 routes: 60 KB).
    """
    old, new = set(before.splitlines()), set(after.splitlines())
    gone, added = old - new, new - old
    if len(added) == 1 and not gone:
        return (f"add map {path} <<", f"{next(iter(added))}\n")
    if len(gone) == 1 and not added:
        key = next(iter(gone)).split(" ", 1)[0]
        return None if ";" in key else f"del map {path} {key}"
    return None


def map_commands(
    live: LiveFiles, maps: Mapping[str, str], versions: Mapping[str, str]
) -> list[Command]:
    """Fill each prepared version (``versions``: map name -> version) and commit it."""
    commands: list[Command] = []
    for name, text in maps.items():
        path, version = live.path(name), versions[name]
        for chunk in payload_chunks(payload_lines(text)):
            commands.append((f"add map @{version} {path} <<", chunk))
        commands.append(f"commit map @{version} {path}")
    return commands


PAYLOAD_LIMIT = 8192
"""Bytes of payload per command.  HAProxy's CLI takes a command with its payload only
whole in its input buffer (``tune.bufsize``, 16 KiB by default: measured on 2.6, a
14 KB payload is taken, an 18 KB one gets no answer, a 45 KB one a reset).  A map's
entries are sent in several ``add map @<version>`` commands, committed once."""


def payload_chunks(lines: str, limit: int = PAYLOAD_LIMIT) -> list[str]:
    """``lines`` (each ending in a newline) cut between lines into chunks of at most
    ``limit`` bytes (a longer line is a chunk of its own)."""
    chunks: list[str] = []
    start = 0
    while start < len(lines):
        end = start + limit
        if end >= len(lines):
            chunks.append(lines[start:])
            break
        cut = lines.rfind("\n", start, end)
        cut = cut + 1 if cut >= start else lines.find("\n", end) + 1
        chunks.append(lines[start:cut])
        start = cut
    return chunks


def reply_ok(command: str, reply: str) -> bool:
    """Whether a reply to one of these commands means success."""
    verb = " ".join(command.split()[:3])
    if verb.startswith(("add map", "commit map", "del map")):
        return reply == ""
    if verb == "new ssl cert":
        return reply.startswith("New empty certificate store")
    if verb == "set ssl cert":
        return reply.startswith("Transaction created") or reply.startswith("Transaction updated")
    if verb in ("commit ssl cert", "add ssl crt-list"):
        return reply.rstrip().endswith("Success!")
    if verb == "del ssl crt-list":
        return reply.startswith("Entry ") and " deleted in crtlist " in reply
    if verb == "del ssl cert":
        return reply.startswith("Certificate ") and reply.rstrip().endswith("deleted!")
    return False


def prepared_version(reply: str) -> str | None:
    prefix = "New version created: "
    if reply.startswith(prefix) and reply[len(prefix) :].strip().isdigit():
        return reply[len(prefix) :].strip()
    return None


def live_directory(show_map: str, current: str) -> str | None:
    """The generation directory whose route maps HAProxy runs, from ``show map``
    (``current`` when it is that one)."""
    found = None
    for line in show_map.splitlines():
        start, end = line.find(" ("), line.find(") ")
        if start < 0 or end < start:
            continue
        path = line[start + 2 : end]
        if os.path.basename(path) == MAP_FILES[0]:
            found = os.path.dirname(path)
            if found == current:
                return current
    return found
