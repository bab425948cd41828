"""keepalived's VRRP states, as its notify script records them (roles/keepalived):
one JSON file a VRRP instance, ``<vrrp_dir>/<instance>.state``."""

from __future__ import annotations

import json
import os
from typing import Any


def vrrp_states(directory: str) -> list[dict[str, Any]]:
    """Every instance's last transition, by instance name; a file that cannot be read
    is reported as such rather than skipped."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".state"))
    except FileNotFoundError:
        return []
    states = []
    for name in names:
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                state = json.load(handle)
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            state = {"instance": name.removesuffix(".state"), "state": None, "error": str(exc)}
        states.append(state)
    return states
