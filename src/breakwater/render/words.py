"""How a value is written as one argument of haproxy.cfg: single-quoted, where HAProxy
reads no escape and no environment variable (the catalog refused quotes and control
characters), and with ``%`` doubled where HAProxy reads a log-format."""

from __future__ import annotations


def quoted(value: str) -> str:
    """One single-quoted argument."""
    return f"'{value}'"


def log_format(value: str) -> str:
    """A single-quoted log-format argument: ``%`` stands for itself."""
    return quoted(value.replace("%", "%%"))
