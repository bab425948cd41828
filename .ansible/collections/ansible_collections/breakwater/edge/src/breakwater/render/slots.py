"""Server slots: each backend keeps free, disabled slots, so servers are added, removed
and drained through the runtime API while the rendered file says exactly what HAProxy
runs; a backend that outgrows its slots gets more through the runtime API too
(HAProxy's dynamic servers, ``add server``).  Placing servers into slots, the
``server`` lines, the one parser of them, the runtime commands between two layouts,
and what a reload is needed for."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from breakwater.catalog import Catalog, Server

FREE_SLOT = "127.0.0.1:1"
"""Address rendered for a free slot (and set through the runtime API when freed)."""


SlotLayout = Mapping[str, list[Server | None]]
Layout = dict[str, list[Server | None]]


def server_lines(slots: list[Server | None]) -> str:
    """The ``server`` lines of one backend's slots, for templates.

    The default template's innermost loop, written in Python: at 10,000 backends of
    16 slots, a Jinja2 loop over the slots was most of a render.
    """
    lines = []
    for index, slot in enumerate(slots, 1):
        if slot is None:
            lines.append(f"    server s{index} {FREE_SLOT} disabled\n")
        else:
            weight = " weight 0" if slot.state == "drain" else ""
            lines.append(f"    server s{index} {slot.endpoint}{weight}\n")
    return "".join(lines)


def slot_count(servers: int, minimum: int) -> int:
    """Slots for a backend: the next power of two with room to spare."""
    count = max(minimum, 1)
    while count < servers:
        count *= 2
    return count


def assign_slots(
    catalog: Catalog, previous: SlotLayout, minimum: int
) -> dict[str, list[Server | None]]:
    """Place each backend's servers into slots, keeping every server in its old slot
    (and a slot a server leaves free, while there are others).

    A backend grows (to the next power of two) only when its servers no longer fit;
    it never shrinks while it exists, so scaling down needs no reload.
    """
    layout: dict[str, list[Server | None]] = {}
    for name, backend in catalog.backends.items():
        wanted = {(s.address, s.port): s for s in backend.servers}
        old = list(previous.get(name) or [None] * slot_count(len(wanted), minimum))
        slots: list[Server | None] = []
        for slot in old:
            kept = wanted.pop((slot.address, slot.port), None) if slot else None
            slots.append(kept)
        pending = sorted(wanted.values(), key=lambda s: (s.address, s.port))
        # New servers take slots that were free already before those a server leaves
        # now: HAProxy keeps a server's idle connections across 'set server addr', so a
        # slot readdressed at once would send requests to the pod that left.
        vacated = [i for i, slot in enumerate(old) if slot is not None and slots[i] is None]
        free = [i for i, slot in enumerate(slots) if slot is None and i not in set(vacated)]
        for index in free + vacated:
            if not pending:
                break
            slots[index] = pending.pop(0)
        if pending:
            slots.extend(pending)
            slots.extend([None] * (slot_count(len(slots), minimum) - len(slots)))
        layout[name] = slots
    return layout


_BACKEND_LINE = re.compile(r"^backend\s+(\S+)")


# The one parser of a rendered server line: slot number, address, options.
_SLOT_LINE = re.compile(r"^[ \t]+server[ \t]+s(\d+)[ \t]+(\S+)(.*)$", re.MULTILINE)


def layout_from_config(config: str) -> dict[str, list[Server | None]]:
    """The server slots a rendered ``haproxy.cfg`` holds (what HAProxy runs now).

    Used at start by the watcher and by the lookup plugin, so a render from the same
    objects gives the same bytes instead of reshuffling the slots.
    """
    layout: dict[str, list[Server | None]] = {}
    backend: str | None = None
    for line in config.splitlines():
        if match := _BACKEND_LINE.match(line):
            backend = match[1] if match[1].startswith(("be_", "bw_spare_")) else None
            continue
        match = _SLOT_LINE.match(line)
        if backend is None or match is None:
            continue
        slots = layout.setdefault(backend, [])
        if int(match[1]) != len(slots) + 1:
            return {}  # not a layout we rendered: start afresh
        options = match[3].split()
        if "disabled" in options:
            slots.append(None)
            continue
        host, _colon, port = match[2].rpartition(":")
        try:
            server = Server(
                host.strip("[]"), int(port), "drain" if "0" in options[1:2] else "ready"
            )
        except ValueError:
            return {}
        slots.append(server)
    return layout


# What a reload is not needed for: whole server lines (a backend with more slots has
# the same rest) and comment lines; and the generation directory, whose files (maps,
# certificates) change through the runtime API too.
_NOT_STRUCTURE = re.compile(
    r"^(?:[ \t]+server[ \t]+s\d+[ \t]+\S+.*|[ \t]*#.*)(?:\n|\Z)", re.MULTILINE
)
_GENERATION = re.compile(r"/gen-[0-9a-f]{16}/")


def structure_of(config: str, layout: SlotLayout) -> tuple[str, tuple[tuple[str, int], ...]]:
    """What a reload is needed for: everything but server lines, comments and the
    generation directory's name; and slot counts."""
    slots = tuple(sorted((name, len(slots)) for name, slots in layout.items()))
    text = _NOT_STRUCTURE.sub("", config)
    return _GENERATION.sub("/gen-*/", text), slots


# What ``add server`` needs to know of a backend, from the configuration HAProxy loaded.
_STATIC_BALANCE = frozenset({"static-rr"})
_DYNAMIC_BALANCE = frozenset({"roundrobin", "leastconn", "first", "random"})


def added_server_options(config: str, backends: Iterable[str]) -> dict[str, str | None]:
    """For each of ``backends`` in ``config``: what a server added at runtime must be
    given to be the server its ``server`` line would make, or None when it cannot be
    added so (or the backend is not there).

    HAProxy adds servers only to backends with a dynamic algorithm (not ``static-rr``,
    nor a hash without ``hash-type consistent``), and a server added at runtime takes
    nothing from ``default-server`` lines: their options are given with it.  (A
    keyword ``add server`` does not know makes HAProxy refuse it; the watcher then
    reloads, as it would have without dynamic servers.)  Only the sections concerned
    are read: this runs on the event path, and the file may hold 10,000 backends.
    """
    result: dict[str, str | None] = {}
    for name in backends:
        at = config.find(f"\nbackend {name}\n")
        if at < 0:
            result[name] = None
            continue
        # The defaults section in force: the last one above (a new one starts afresh).
        defaults_at = max(config.rfind("\ndefaults\n", 0, at), config.rfind("\ndefaults ", 0, at))
        settings: dict[str, list[str]] = {"balance": [], "hash-type": [], "default-server": []}
        sections = [_section(config, defaults_at)] if defaults_at >= 0 else []
        for lines in [*sections, _section(config, at)]:
            for words in lines:
                if words[0] == "default-server":
                    settings["default-server"].extend(words[1:])
                elif words[0] in settings:
                    settings[words[0]] = words[1:]
        balance = (settings["balance"] or ["roundrobin"])[0]
        consistent = settings["hash-type"][:1] == ["consistent"]
        dynamic = balance in _DYNAMIC_BALANCE or (balance not in _STATIC_BALANCE and consistent)
        result[name] = " ".join(settings["default-server"]) if dynamic else None
    return result


_NEXT_SECTION = re.compile(r"\n(?=[^\s#])")


def _section(config: str, at: int) -> list[list[str]]:
    """The lines of the section whose header follows ``config[at]`` (a newline), as
    words, header and comments left out."""
    header_end = config.find("\n", at + 1)
    if header_end < 0:
        return []
    following = _NEXT_SECTION.search(config, header_end)
    body = config[header_end : following.start() if following else len(config)]
    return [
        words
        for line in body.splitlines()
        if (words := line.split()) and not words[0].startswith("#")
    ]


def runtime_commands(
    old: SlotLayout, new: SlotLayout, added: Mapping[str, str | None] | None = None
) -> list[str]:
    """Runtime API commands that take HAProxy from layout ``old`` to ``new``.

    Valid between layouts with the same backends, each with as many slots or more in
    ``new``: the slots beyond ``old``'s are added (``add server``) with the options
    ``added`` gives for their backend (see :func:`added_server_options`), in
    maintenance, and made ready once in place.
    """
    free_host, free_port = FREE_SLOT.rsplit(":", 1)
    commands: list[str] = []
    for backend, slots in new.items():
        previous = old[backend]
        if len(slots) > len(previous):
            options = (added or {}).get(backend)
            if options is None:
                raise ValueError(f"{backend}: servers cannot be added at runtime")
            # After the slots it has are placed, below.
            commands_after = _added_slots(backend, slots, len(previous), options)
        else:
            commands_after = []
        kept = slots[: len(previous)]
        for index, (before, after) in enumerate(zip(previous, kept, strict=True), 1):
            server = f"{backend}/s{index}"
            if before == after:
                continue
            if after is None:
                commands.append(f"set server {server} state maint")
                commands.append(f"set server {server} addr {free_host} port {free_port}")
                continue
            if before is None or (before.address, before.port) != (after.address, after.port):
                commands.append(f"set server {server} addr {after.address} port {after.port}")
            if before is None or before.state != after.state:
                commands.append(f"set weight {server} {0 if after.state == 'drain' else 1}")
            if before is None:
                commands.append(f"set server {server} state ready")
        commands.extend(commands_after)
    return commands


def _added_slots(backend: str, slots: list[Server | None], start: int, options: str) -> list[str]:
    """``add server`` for the slots from ``start`` on: each added in maintenance (as
    HAProxy adds them), its health check enabled when it has one, and made ready
    when it holds a server."""
    extra = f" {options}" if options else ""
    check = "check" in options.split()
    commands = []
    for index, slot in enumerate(slots[start:], start + 1):
        server = f"{backend}/s{index}"
        if slot is None:
            commands.append(f"add server {server} {FREE_SLOT} disabled{extra}")
        else:
            weight = " weight 0" if slot.state == "drain" else ""
            commands.append(f"add server {server} {slot.endpoint}{weight}{extra}")
        if check:
            commands.append(f"enable health {server}")
        if slot is not None:
            commands.append(f"set server {server} state ready")
    return commands
