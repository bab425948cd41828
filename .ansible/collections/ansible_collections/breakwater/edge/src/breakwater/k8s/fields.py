"""One field of a Kubernetes protobuf message, as the schema tables list it."""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    json_name: str
    number: int
    type: str
    flags: str = ""


def fields(*specs: tuple[str, int, str] | tuple[str, int, str, str]) -> tuple[Field, ...]:
    return tuple(Field(*spec) for spec in specs)
