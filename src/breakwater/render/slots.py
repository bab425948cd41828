"""Server slots: each backend keeps free, disabled slots, so servers are added, removed
and drained through the runtime API while the rendered file says exactly what HAProxy
runs.  Placing servers into slots, the ``server`` lines, the one parser of them, the
runtime commands between two layouts, and what a reload is needed for."""

from __future__ import annotations

import re
from collections.abc import Mapping

from breakwater.catalog import Catalog, Server

FREE_SLOT = "127.0.0.1:1"
"""Address rendered for a free slot (and set through the runtime API when freed)."""


SlotLayout = Mapping[str, list[Server | None]]


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
    """Place each backend's servers into slots, keeping every server in its old slot.

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
        for index, slot in enumerate(slots):
            if slot is None and pending:
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
            backend = match[1] if match[1].startswith("be_") else None
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


def structure_of(config: str, layout: SlotLayout) -> tuple[str, tuple[tuple[str, int], ...]]:
    """What a reload is needed for: everything but the server lines, and slot counts."""
    slots = tuple(sorted((name, len(slots)) for name, slots in layout.items()))
    return _SLOT_LINE.sub("", config), slots


def runtime_commands(old: SlotLayout, new: SlotLayout) -> list[str]:
    """Runtime API commands that take HAProxy from layout ``old`` to ``new``.

    Only valid between layouts with the same backends and slot counts.
    """
    free_host, free_port = FREE_SLOT.rsplit(":", 1)
    commands: list[str] = []
    for backend, slots in new.items():
        for index, (before, after) in enumerate(zip(old[backend], slots, strict=True), 1):
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
    return commands
