"""Validation of every value that can reach a rendered configuration.

Each function returns the normalised value or raises :class:`InvalidValue` with a
reason an operator can act on.  The rules are strict on purpose: a value accepted
here is written into ``haproxy.cfg`` or a map file, where a space, a newline, a
``#``, a quote or a backslash would change the meaning of the file.
"""

from __future__ import annotations

import ipaddress
import re

MAX_HOSTNAME = 253
MAX_PATH = 1024
MAX_NAME = 253

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
_DNS_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_DNS_LABEL_RE = re.compile(rf"^{_LABEL}$")
_PORT_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?$")
# RFC 3986 path characters, without '?' and '#' (they end a path) and without '%'
# unless it starts a valid escape.
_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")
_DURATION_RE = re.compile(r"^([0-9]{1,7})(us|ms|s|m|h|d)?$")
BALANCE_ALGORITHMS = frozenset(
    {"roundrobin", "static-rr", "leastconn", "first", "source", "random"}
)
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class InvalidValue(ValueError):
    """A value that must not reach a configuration file; the message says why."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def hostname(value: object) -> str:
    """A DNS hostname, optionally with one leading ``*.`` wildcard label; lowercased."""
    if not isinstance(value, str):
        raise InvalidValue(f"hostname {_show(value)} is not a string")
    host = value.lower()
    if len(host) > MAX_HOSTNAME:
        raise InvalidValue(f"hostname is longer than {MAX_HOSTNAME} characters")
    if not _HOSTNAME_RE.match(host):
        raise InvalidValue(f"hostname {_show(value)} is not a valid DNS name")
    return host


def path(value: object) -> str:
    """A URL path: starts with '/', RFC 3986 characters only, at most 1024 long."""
    if not isinstance(value, str):
        raise InvalidValue(f"path {_show(value)} is not a string")
    if len(value) > MAX_PATH:
        raise InvalidValue(f"path is longer than {MAX_PATH} characters")
    if not _PATH_RE.match(value):
        raise InvalidValue(
            f"path {_show(value)} must start with '/' and contain only URL path characters"
        )
    return value


def dns_subdomain(value: object, what: str) -> str:
    """A Kubernetes object name (RFC 1123 subdomain)."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _DNS_SUBDOMAIN_RE.match(value):
        raise InvalidValue(f"{what} {_show(value)} is not a valid Kubernetes name")
    return value


def dns_label(value: object, what: str) -> str:
    """A Kubernetes namespace or service name (RFC 1123 label)."""
    if not isinstance(value, str) or not _DNS_LABEL_RE.match(value):
        raise InvalidValue(f"{what} {_show(value)} is not a valid RFC 1123 label")
    return value


def port_number(value: object, what: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValue(f"{what} {_show(value)} is not a port number (1-65535)")
    return value


def service_port(value: object) -> int | str:
    """A Service port reference: a number, or an IANA service name."""
    if isinstance(value, str) and value.isdigit():
        return port_number(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return port_number(value)
    if isinstance(value, str) and _PORT_NAME_RE.match(value) and re.search("[a-z]", value):
        return value
    raise InvalidValue(f"port {_show(value)} is neither a port number nor a port name")


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def ip_address(value: object) -> str:
    """An IPv4 or IPv6 address, in its canonical form."""
    if not isinstance(value, str):
        raise InvalidValue(f"address {_show(value)} is not a string")
    if _CANONICAL_IPV4_RE.fullmatch(value):
        return value  # the common case, already canonical; ipaddress costs 10 us a call
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise InvalidValue(f"address {_show(value)} is not an IP address") from exc


def boolean(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue(f"{what} {_show(value)} is not a boolean (true or false)")


def duration(value: object, what: str) -> str:
    """An HAProxy time value: a number with an optional unit (us, ms, s, m, h, d)."""
    text = str(value).strip()
    if not _DURATION_RE.match(text):
        raise InvalidValue(f"{what} {_show(value)} is not a duration such as 500ms, 5s or 2m")
    return text


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECONDS_RE = re.compile(r"^([0-9]{1,7})(s|m|h|d)?$")


def seconds(value: object, what: str) -> int:
    """A duration in whole seconds: ``120``, ``120s``, ``5m``, ``1h`` or ``1d``."""
    match = _SECONDS_RE.match(str(value).strip())
    if not match:
        raise InvalidValue(f"{what} {_show(value)} is not a duration such as 120s, 5m or 1h")
    return int(match[1]) * _SECONDS[match[2] or "s"]


def balance(value: object) -> str:
    text = str(value).strip()
    if text not in BALANCE_ALGORITHMS:
        allowed = ", ".join(sorted(BALANCE_ALGORITHMS))
        raise InvalidValue(f"balance {_show(value)} is not one of {allowed}")
    return text
