"""Bisecting a refused configuration down to the objects that make it fail."""

from __future__ import annotations

import asyncio

import pytest

from breakwater.targets.isolate import MAX_CULPRITS, find_culprits


def run(sources: list[str], bad: set[str], broken: bool = False) -> tuple[list[str] | None, int]:
    checks = []

    async def passes(held: set[str]) -> bool:
        checks.append(held)
        return not broken and not (bad - held)

    return asyncio.run(find_culprits(sources, passes)), len(checks)


@pytest.mark.parametrize("bad", [{"s0"}, {"s63"}, {"s17"}, {"s3", "s40"}, {"s1", "s2", "s63"}])
def test_the_culprits_are_found_and_only_they(bad: set[str]) -> None:
    sources = [f"s{i}" for i in range(64)]
    culprits, checks = run(sources, bad)
    assert culprits is not None and set(culprits) == bad
    assert checks <= 2 + len(bad) * 8  # about log2(64) checks for each culprit


def test_no_culprit_when_even_an_empty_configuration_fails() -> None:
    assert run([f"s{i}" for i in range(8)], set(), broken=True)[0] is None


def test_too_many_culprits_is_a_bad_configuration_not_bad_objects() -> None:
    sources = [f"s{i}" for i in range(32)]
    assert run(sources, set(sources[: MAX_CULPRITS + 1]))[0] is None
