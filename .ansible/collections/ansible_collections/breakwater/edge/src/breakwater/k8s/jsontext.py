"""Strict JSON text: what Python's json reads beyond JSON (NaN, Infinity, lone
surrogates, numbers that overflow, other encodings than UTF-8) is refused, and so is
what it cannot read (nesting too deep, huge integers) -- with one short error."""

from __future__ import annotations

import json
import math
import re
from typing import Any

MESSAGE_LIMIT = 200  # characters of a value or an exception quoted in an error


def short(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """``str(value)``, cut to ``limit`` characters: errors never carry huge values."""
    try:
        text = str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JSONTextError(ValueError):
    """A JSON text :func:`load_json` refuses; the message is short."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError("number out of range")
    return number


# Strict JSON: Python's json also reads NaN and Infinity, and 1e999 as infinity.
_JSON_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


# A \uXXXX escape of a UTF-16 surrogate: alone, json makes it a str that is not UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def load_json(data: bytes) -> Any:
    """Parse JSON text into values JSON can write back: raises :class:`JSONTextError`."""
    try:
        # Strict UTF-8 first: json.loads(bytes) would also take UTF-16 and surrogates.
        obj = _JSON_DECODER.decode(data.decode("utf-8"))
    except RecursionError as exc:
        raise JSONTextError("nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise JSONTextError(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except ValueError as exc:  # syntax, NaN/Infinity, integers over 4300 digits
        raise JSONTextError(short(exc)) from exc
    # Rare (Kubernetes writes non-ASCII as UTF-8, not as escapes): check the strings
    # only when the text holds a surrogate escape -- a valid pair passes.
    if b"\\" in data and _SURROGATE_ESCAPE.search(data) is not None:
        try:
            json.dumps(obj, ensure_ascii=False, check_circular=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JSONTextError(
                "a string holds a lone surrogate (a \\ud800-\\udfff escape)"
            ) from exc
    return obj
