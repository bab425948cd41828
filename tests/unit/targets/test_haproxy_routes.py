"""Route maps and certificates as runtime work: which changes, which commands, in which
order, and which changes take a reload instead."""

from __future__ import annotations

import pytest

from breakwater.targets.haproxy_api import HAProxyError, check_command, check_payload
from breakwater.targets.haproxy_routes import (
    LiveFiles,
    entry_command,
    live_directory,
    map_commands,
    payload_chunks,
    payload_lines,
    prepared_version,
    reply_ok,
    route_change,
)

DIR = "/etc/haproxy/breakwater/gen-0123456789abcdef"
NAMES = {
    "PEM-A": frozenset({"a.example"}),
    "PEM-B": frozenset({"b.example"}),
    "PEM-B2": frozenset({"b.example"}),
    "PEM-C": frozenset({"a.example", "c.example"}),
    "PEM-0": frozenset({"zero.example"}),
}


def files(exact: str = "", prefix: str = "", **certs: str) -> dict[str, str]:
    result = {"routes-exact.map": exact, "routes-prefix.map": prefix}
    result |= {f"certs/{name}.pem": pem for name, pem in certs.items()}
    result["crt-list"] = "".join(f"{DIR}/certs/{name}.pem\n" for name in sorted(certs))
    return result


def names_of(pem: str) -> frozenset[str]:
    return NAMES[pem]


def test_only_the_maps_that_changed_are_replaced() -> None:
    live = LiveFiles.of(DIR, files(exact="a/ be_a;-;-;-;-\n", prefix="a/ be_a;-;-;-;-\n"))
    change = route_change(live, files(exact="a/ be_a;-;-;-;-\n", prefix=""), names_of)
    assert change is not None and change.maps == {"routes-prefix.map": ""}
    assert not change.before_maps and not change.after_maps
    commands = map_commands(live, change.maps, {"routes-prefix.map": "7"})
    assert commands == [f"commit map @7 {DIR}/routes-prefix.map"]  # emptied: nothing added
    change = route_change(live, files(exact="a/ be_a;-;-;-;-\nb/ be_b;-;-;-;-\n"), names_of)
    assert change is not None
    commands = map_commands(live, change.maps, {"routes-exact.map": "3", "routes-prefix.map": "4"})
    assert commands[0] == (
        f"add map @3 {DIR}/routes-exact.map <<",
        "a/ be_a;-;-;-;-\nb/ be_b;-;-;-;-\n",
    )
    assert commands[1] == f"commit map @3 {DIR}/routes-exact.map"


def test_a_new_certificate_is_loaded_and_listed_and_a_gone_one_dropped() -> None:
    live = LiveFiles.of(DIR, files(a="PEM-A", b="PEM-B"))
    change = route_change(live, files(a="PEM-A", c2="PEM-0"), names_of)
    assert change is not None
    path = f"{DIR}/certs/c2.pem"
    assert change.before_maps == [
        f"new ssl cert {path}",
        (f"set ssl cert {path} <<", "PEM-0\n"),
        f"commit ssl cert {path}",
        f"add ssl crt-list {DIR}/crt-list {path}",
    ]
    assert change.after_maps == [
        f"del ssl crt-list {DIR}/crt-list {DIR}/certs/b.pem",
        f"del ssl cert {DIR}/certs/b.pem",
    ]


@pytest.mark.parametrize(
    ("before", "after", "why"),
    [
        ({"a": "PEM-A"}, {"0": "PEM-0", "a": "PEM-A"}, "a new first entry: the default"),
        ({"a": "PEM-A", "b": "PEM-B"}, {"b": "PEM-B"}, "the default goes"),
        ({"a": "PEM-A"}, {"a": "PEM-A", "c": "PEM-C"}, "a shared name: order decides"),
        ({"a": "PEM-A", "b": "PEM-B"}, {"a": "PEM-A", "b": "PEM-B", "b2": "PEM-B2"}, "shared"),
        ({}, {"a": "PEM-A"}, "the first certificate: the TLS bind appears"),
        ({"a": "PEM-A"}, {}, "the last one: the bind goes"),
    ],
)
def test_certificate_changes_a_reload_would_serve_differently_take_one(
    before: dict[str, str], after: dict[str, str], why: str
) -> None:
    live = LiveFiles.of(DIR, files(**before))
    assert route_change(live, files(**after), names_of) is None, why


def test_replies_and_the_live_directory() -> None:
    assert prepared_version("New version created: 12") == "12"
    assert prepared_version("Unknown map identifier") is None
    assert reply_ok("add map @1 /x <<", "")
    assert not reply_ok("add map @1 /x <<", "Unknown map identifier")
    assert reply_ok("commit ssl cert /x", "Committing /x\nSuccess!")
    assert not reply_ok("commit ssl cert /x", "Committing /x\nError!")
    assert reply_ok("del ssl crt-list /l /x", "Entry '/x' deleted in crtlist '/l'!")
    show = (
        "# id (file) description\n"
        f"0 ({DIR}/routes-exact.map) pattern loaded from file ... curr_ver=0\n"
        "1 (/etc/haproxy/breakwater/node-state.map) pattern loaded ...\n"
    )
    assert live_directory(show, DIR) == DIR
    assert live_directory(show, "/elsewhere") == DIR
    assert live_directory("# id (file) description\n", DIR) is None


def test_a_long_map_goes_in_chunks_under_the_clis_buffer_committed_once() -> None:
    text = "".join(f"host{i}.example/ be_a;-;-;-;-\n" for i in range(1000))
    chunks = payload_chunks(text, 8192)
    assert "".join(chunks) == text
    assert all(len(chunk) <= 8192 and chunk.endswith("\n") for chunk in chunks)
    assert len(chunks) == 4
    assert payload_chunks("x" * 10 + "\n" + "y\n", 4) == ["x" * 10 + "\n", "y\n"]
    live = LiveFiles.of(DIR, files())
    commands = map_commands(live, {"routes-exact.map": text}, {"routes-exact.map": "9"})
    assert [c[0] if isinstance(c, tuple) else c for c in commands] == [
        *[f"add map @9 {DIR}/routes-exact.map <<"] * 4,
        f"commit map @9 {DIR}/routes-exact.map",
    ]


def test_payloads_are_lines_and_nothing_else() -> None:
    assert payload_lines("a\n\nb\n  \nc") == "a\nb\nc\n"
    check_payload("add map @1 /x <<", "a b\nc d\n")
    for line, payload in [
        ("add map @1 /x", "a b\n"),  # no payload marker
        ("add map @1 /x <<", "a b"),  # no final newline
        ("add map @1 /x <<", "a b\n\nshow info\n"),  # an empty line ends it early
        ("add map @1 /x <<", "a\tb\n"),  # control characters
    ]:
        with pytest.raises(HAProxyError):
            check_payload(line, payload)


def test_one_entry_added_or_removed_is_one_command_else_a_new_version() -> None:
    path = "/etc/haproxy/gen-1/routes-prefix.map"
    before = "a.example/ be_a;-;-;-;-\nb.example/ be_b;-;-;-;-\n"
    added = before + "c.example/ be_c;r;-;-;-\n"
    # The value holds ';': it travels as a payload line, never on the command line.
    assert entry_command(path, before, added) == (
        f"add map {path} <<",
        "c.example/ be_c;r;-;-;-\n",
    )
    assert entry_command(path, added, before) == f"del map {path} c.example/"
    # Another value for a key, two entries, a key that holds ';': a whole new version.
    moved = before.replace("be_b;", "be_c;")
    assert entry_command(path, before, moved) is None
    assert entry_command(path, "", added) is None
    assert entry_command(path, before + "x.example/a;b be_x;-;-;-;-\n", before) is None
    for command in (entry_command(path, before, added), entry_command(path, added, before)):
        line, payload = command if isinstance(command, tuple) else (command, None)
        check_command(line)
        if payload is not None:
            check_payload(line, payload)
