"""Validation of every value that can reach a rendered configuration or a runtime command.

Each function returns the normalised value or raises :class:`InvalidValue` with a
reason an operator can act on.  The rules are Kubernetes' own where Kubernetes has
one (``k8s.io/apimachinery/pkg/util/validation`` and the API server's validation of
each kind), and stricter where HAProxy's grammar needs it: a value accepted here is
written into ``haproxy.cfg``, a map file or a runtime API command, where a space, a
newline, a ``#``, a quote, a ``;`` or a backslash would change the meaning of the line.

Every pattern is matched whole (``fullmatch``): ``$`` would accept one trailing newline.
"""

from __future__ import annotations

import ipaddress
import re

MAX_HOSTNAME = 253
MAX_PATH = 1024
MAX_NAME = 253
MAX_LABEL = 63
MAX_PORT_NAME = 15
# HAProxy keeps times in milliseconds in a signed 32-bit integer ("timer overflow").
MAX_HAPROXY_MS = 2_147_483_647
# Varnish TTL and grace from a route: a year is already far beyond any useful TTL.
MAX_CACHE_SECONDS = 365 * 86400

# Kubernetes' name patterns, as regular expressions to build others from.
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# IsDNS1123Subdomain: labels of any length (only the whole is bounded, by MAX_NAME).
DNS_SUBDOMAIN = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
DNS1035_LABEL = r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN_RE = re.compile(DNS_SUBDOMAIN, re.ASCII)
# A hostname: a DNS subdomain whose labels are 63 characters at most (RFC 1035 2.3.4).
# Stricter than Kubernetes, which bounds only the whole: a longer label is no name DNS
# can hold, so no client resolves it and no certificate can be issued for it.
_HOSTNAME_RE = re.compile(rf"{DNS_LABEL}(?:\.{DNS_LABEL})*", re.ASCII)
_DNS_LABEL_RE = re.compile(DNS_LABEL, re.ASCII)
_DNS1035_LABEL_RE = re.compile(DNS1035_LABEL, re.ASCII)
_IANA_SVC_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,13}[a-z0-9])?", re.ASCII)
# RFC 3986 path characters, without '?' and '#' (they end a path) and without '%'
# unless it starts a valid escape.
_PATH_RE = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*", re.ASCII)
# A path written into haproxy.cfg itself (a health check): HAProxy's tokenizer reads
# quotes, '$' (environment variables), '\' and '#'; none of them is allowed there.
_CONFIG_PATH_RE = re.compile(r"/(?:[A-Za-z0-9\-._~!&()*+,;=:@/]|%[0-9A-Fa-f]{2})*", re.ASCII)
_DURATION_RE = re.compile(r"([0-9]{1,10})(us|ms|s|m|h|d)?", re.ASCII)
_SECONDS_RE = re.compile(r"([0-9]{1,10})(s|m|h|d)?", re.ASCII)
_MICROSECONDS = {"us": 1, "ms": 1000, "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6}
_MICROSECONDS["d"] = 24 * _MICROSECONDS["h"]
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
BALANCE_ALGORITHMS = frozenset(
    {"roundrobin", "static-rr", "leastconn", "first", "source", "random"}
)
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class InvalidValue(ValueError):
    """A value that must not reach a configuration file; the message says why."""


def reason_of(exc: Exception) -> str:
    """An exception as a rejection reason: ours say why; others say the object is malformed."""
    if isinstance(exc, InvalidValue):
        return str(exc)
    text = str(exc)
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"malformed object ({type(exc).__name__}: {text})"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def show(value: object) -> str:
    """A value as a reason quotes it (the catalog's own reasons too): its repr, cut at
    80 characters."""
    return _show(value)


def hostname(value: object, fold_case: bool = True) -> str:
    """A host of a route: a DNS-1123 subdomain, optionally ``*.`` + one.

    As Kubernetes' Ingress validation (``validateIngressRules``): at most 253
    characters, a wildcard only as the whole first label, and never an IP address --
    read as Kubernetes reads one (``ParseIPSloppy``: ``010.0.0.1`` is one).  Labels are
    63 characters at most (see ``_HOSTNAME_RE``).  Upper case is folded, as DNS does,
    for the hosts of ConfigMaps and plain routes; ``fold_case=False`` (an Ingress's
    rules) refuses it, as Kubernetes does.
    """
    if not isinstance(value, str):
        raise InvalidValue(f"hostname {_show(value)} is not a string")
    host = value.lower() if fold_case else value
    if len(host) > MAX_HOSTNAME:
        raise InvalidValue(f"hostname is longer than {MAX_HOSTNAME} characters")
    wildcard = host.startswith("*.")
    if not _HOSTNAME_RE.fullmatch(host[2:] if wildcard else host):
        if not fold_case and _HOSTNAME_RE.fullmatch((host[2:] if wildcard else host).lower()):
            raise InvalidValue(f"hostname {_show(value)} must be lower case")
        raise InvalidValue(f"hostname {_show(value)} is not a valid DNS name")
    if not wildcard and _is_ip(host):
        raise InvalidValue(f"hostname {_show(value)} is an IP address, not a DNS name")
    return host


def tls_host(value: object) -> str:
    """A host of an Ingress's ``spec.tls``: Kubernetes' rule as it is (``validateIngressTLS``).

    A DNS-1123 subdomain or ``*.`` + one, lower case, at most 253 characters.  Unlike a
    rule's host it may be an IP address, and its labels are not bounded: the catalog
    reads it for nothing else (the certificate served is chosen by SNI from its names).
    """
    if not isinstance(value, str):
        raise InvalidValue(f"tls host {_show(value)} is not a string")
    name = value[2:] if value.startswith("*.") else value
    if len(value) > MAX_HOSTNAME or not _DNS_SUBDOMAIN_RE.fullmatch(name):
        raise InvalidValue(f"tls host {_show(value)} is not a valid DNS name")
    return value


def _is_ip(text: str) -> bool:
    """Whether Kubernetes' ``netutils.ParseIPSloppy`` reads ``text`` (a DNS subdomain, so
    no ':') as an IPv4 address: four decimal fields of at most 255, leading zeros
    allowed -- ``010.0.0.1`` is one to Kubernetes, though :mod:`ipaddress` refuses it."""
    fields = text.split(".")
    return len(fields) == 4 and all(f.isdigit() and int(f) <= 255 for f in fields)


def path(value: object) -> str:
    """A URL path: starts with '/', RFC 3986 characters only, at most 1024 long."""
    if not isinstance(value, str):
        raise InvalidValue(f"path {_show(value)} is not a string")
    if len(value) > MAX_PATH:
        raise InvalidValue(f"path is longer than {MAX_PATH} characters")
    if not _PATH_RE.fullmatch(value):
        raise InvalidValue(
            f"path {_show(value)} must start with '/' and contain only URL path characters"
        )
    return value


# Kubernetes' Ingress validation of Exact and Prefix paths (validateHTTPIngressPath):
# no empty, '.' or '..' segment and no encoded '/' inside, no '.' or '..' segment last.
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")


def matched_path(value: object, what: str = "path") -> str:
    """A path matched as ``Exact`` or ``Prefix``: :func:`path`, and Kubernetes' rules for
    those types -- no ``//``, ``/./``, ``/../``, ``%2f`` inside, no ``/.`` or ``/..`` at
    the end.  Such a path names, to the server behind, another path than the one routed."""
    text = path(value)
    for sequence in _INVALID_PATH_SEQUENCES:
        if sequence in text:
            raise InvalidValue(f"{what} {_show(value)} must not contain {sequence!r}")
    for suffix in _INVALID_PATH_SUFFIXES:
        if text.endswith(suffix):
            raise InvalidValue(f"{what} {_show(value)} must not end with {suffix!r}")
    return text


def config_path(value: object, what: str) -> str:
    """A URL path written as a word of ``haproxy.cfg``: no quotes, ``$``, ``\\`` or ``#``."""
    text = path(value)
    if not _CONFIG_PATH_RE.fullmatch(text):
        raise InvalidValue(f"{what} {_show(value)} must not contain quotes or '$'")
    return text


def dns_subdomain(value: object, what: str) -> str:
    """A Kubernetes object name: ``IsDNS1123Subdomain``, at most 253 characters (its
    labels are not bounded one by one, as a hostname's are)."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAME
        or not _DNS_SUBDOMAIN_RE.fullmatch(value)
    ):
        raise InvalidValue(f"{what} {_show(value)} is not a valid Kubernetes name")
    return value


def dns_label(value: object, what: str) -> str:
    """A namespace or a Service port name (RFC 1123 label, at most 63 characters)."""
    if not isinstance(value, str) or not _DNS_LABEL_RE.fullmatch(value):
        raise InvalidValue(f"{what} {_show(value)} is not a valid RFC 1123 label")
    return value


def service_name(value: object, what: str = "service name") -> str:
    """A Service name: an RFC 1035 label (starts with a letter), as Kubernetes requires."""
    if not isinstance(value, str) or not _DNS1035_LABEL_RE.fullmatch(value):
        raise InvalidValue(f"{what} {_show(value)} is not a valid RFC 1035 label")
    return value


def port_number(value: object, what: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidValue(f"{what} {_show(value)} is not a port number (1-65535)")
    return value


def port_name(value: object, what: str = "port name") -> str:
    """An IANA service name (RFC 6335): 1-15 of a-z, 0-9 and '-', a letter, no '--'."""
    if (
        not isinstance(value, str)
        or not _IANA_SVC_NAME_RE.fullmatch(value)
        or "--" in value
        or not re.search("[a-z]", value)
    ):
        raise InvalidValue(f"{what} {_show(value)} is not a valid port name (IANA service name)")
    return value


def service_port(value: object) -> int | str:
    """A Service port reference of a ConfigMap (text: digits are a number) or of the
    catalog: a number, or a port name.  An Ingress's ``port.number`` / ``port.name`` are
    checked apart first (:func:`port_number`, :func:`port_name`)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return port_number(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return port_number(value)
    if isinstance(value, str):
        try:
            return port_name(value)
        except InvalidValue:
            pass
    raise InvalidValue(f"port {_show(value)} is neither a port number nor a port name")


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)
# Kubernetes' ValidateNonSpecialIP for endpoint addresses: unspecified, loopback,
# link-local and link-local multicast addresses point at the node itself.
_SPECIAL_IPV4_PREFIXES = ("0.", "127.", "169.254.", "224.0.0.")


def listen_address(value: object) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) where a daemon of ours listens, as its parts."""
    text = value if isinstance(value, str) else ""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise InvalidValue(
            f"{_show(value)} is not an IP address and a port, e.g. 127.0.0.1:9406 or [::1]:9406"
        ) from None
    if not colon or not 0 < number < 65536:
        raise InvalidValue(f"{_show(value)}: port out of range")
    return host, number


def ip_address(value: object, family: str | None = None, allow_special: bool = True) -> str:
    """An IPv4 or IPv6 address, in its canonical form.

    ``family``: ``"IPv4"`` or ``"IPv6"`` (an EndpointSlice's ``addressType``): an
    address of the other family is refused.  ``allow_special=False``: the addresses
    Kubernetes refuses for endpoints (``ValidateNonSpecialIP``: loopback, link-local,
    unspecified, link-local multicast) are refused too, and all of 0.0.0.0/8 ("this
    network", RFC 1122: never a remote server).  Never a scope (``fe80::1%eth0``):
    HAProxy cannot take one, and the text after ``%`` is not checked by :mod:`ipaddress`.

    Stricter than Kubernetes' default (sloppy) parse, as its ``StrictIPCIDRValidation``
    is: no leading zeros (``010.0.0.1`` is 8.0.0.1 to libc, which HAProxy falls back to,
    and 10.0.0.1 to Kubernetes) and no IPv4-mapped IPv6 address (``::ffff:10.0.0.1``,
    which Kubernetes' sloppy check takes as IPv4: one family written as the other).
    """
    if not isinstance(value, str):
        raise InvalidValue(f"address {_show(value)} is not a string")
    if _CANONICAL_IPV4_RE.fullmatch(value):
        # The common case, already canonical; ipaddress costs 10 us a call.
        if family == "IPv6":
            raise InvalidValue(f"address {_show(value)} is IPv4, in an IPv6 slice")
        if not allow_special and (value.startswith(_SPECIAL_IPV4_PREFIXES)):
            raise InvalidValue(
                f"address {_show(value)} is loopback, link-local or unspecified "
                "(Kubernetes refuses it for endpoints)"
            )
        return value
    if "%" in value:
        raise InvalidValue(f"address {_show(value)} carries a scope; not supported")
    try:
        address = ipaddress.ip_address(value)
    except ValueError as exc:
        raise InvalidValue(f"address {_show(value)} is not an IP address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise InvalidValue(f"address {_show(value)} is an IPv4-mapped IPv6 address")
    if family is not None and f"IPv{address.version}" != family:
        raise InvalidValue(f"address {_show(value)} is IPv{address.version}, in an {family} slice")
    if not allow_special and (
        address.is_unspecified
        or address.is_loopback
        or address.is_link_local
        or _is_link_local_multicast(address)
    ):
        raise InvalidValue(
            f"address {_show(value)} is loopback, link-local or unspecified "
            "(Kubernetes refuses it for endpoints)"
        )
    return str(address)


_LINK_LOCAL_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/24")


def _is_link_local_multicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Go's ``IsLinkLocalMulticast``, as Kubernetes' ``ValidateNonSpecialIP`` uses it:
    224.0.0.0/24, or an IPv6 multicast address of link-local scope whatever its flags
    (``ff02::``, ``ff12::``, ``ff32::``...; RFC 4291 2.7)."""
    if address.version == 4:
        return address in _LINK_LOCAL_MULTICAST_V4
    packed = address.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


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
    """An HAProxy time value: a number with an optional unit (us, ms, s, m, h, d).

    Above zero and within HAProxy's limit (2147483647 ms, about 24.8 days).
    """
    text = str(value).strip() if isinstance(value, str | int) else ""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise InvalidValue(f"{what} {_show(value)} is not a duration such as 500ms, 5s or 2m")
    microseconds = int(match[1]) * _MICROSECONDS[match[2] or "ms"]
    if microseconds == 0:
        raise InvalidValue(f"{what} {_show(value)} must be above zero")
    if microseconds > MAX_HAPROXY_MS * 1000:
        raise InvalidValue(f"{what} {_show(value)} is longer than HAProxy's limit (24d)")
    return text


def seconds(value: object, what: str) -> int:
    """A duration in whole seconds: ``120``, ``120s``, ``5m``, ``1h`` or ``1d``; at most a year."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    match = _SECONDS_RE.fullmatch(text)
    if not match:
        raise InvalidValue(f"{what} {_show(value)} is not a duration such as 120s, 5m or 1h")
    total = int(match[1]) * _SECONDS[match[2] or "s"]
    if total > MAX_CACHE_SECONDS:
        raise InvalidValue(f"{what} {_show(value)} is longer than a year")
    return total


def balance(value: object) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    if text not in BALANCE_ALGORITHMS:
        allowed = ", ".join(sorted(BALANCE_ALGORITHMS))
        raise InvalidValue(f"balance {_show(value)} is not one of {allowed}")
    return text


# --- the last check before a value is written: the renderer's and the runtime API's ---

# The characters of one word of haproxy.cfg: printable ASCII without whitespace,
# quotes, backslash or '#' (a regular-expression class, for the renderer's checks too).
CONFIG_WORD_CHARS = r"!$-&(-\[\]-~"
_CONFIG_WORD_RE = re.compile(rf"[{CONFIG_WORD_CHARS}]+", re.ASCII)


def config_word(value: object) -> bool:
    """Whether ``value`` is one word HAProxy reads as written: printable ASCII, no
    whitespace, quotes, backslash or ``#``.  The renderer's own check (not Kubernetes'
    rules): everything it writes between spaces must pass it."""
    return isinstance(value, str) and _CONFIG_WORD_RE.fullmatch(value) is not None


# --- traffic features (docs/traffic.md): values written into rules of haproxy.cfg -------

_SIZE_RE = re.compile(r"([0-9]{1,12})([kmg]?)", re.ASCII)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_BODY_SIZE = 1024**4  # 1 TiB: HAProxy compares Content-Length as a 64-bit integer
# A cookie name: a token without the characters HAProxy's config reads specially.
_COOKIE_NAME_RE = re.compile(r"[!&*+\-.^_`|~0-9A-Za-z]{1,64}", re.ASCII)
# A header name written as a word of haproxy.cfg: a token without '#', '$', '%', "'".
_HEADER_NAME_RE = re.compile(r"[!&*+\-.^_`|~0-9A-Za-z]{1,128}", re.ASCII)
# What a single-quoted argument of haproxy.cfg may hold: printable ASCII and spaces,
# no quote (it would end the argument) and no control character (a newline would end
# the line).  Inside single quotes HAProxy reads no escape and no environment variable.
_QUOTABLE_RE = re.compile(r"[ !-&(-~]*", re.ASCII)
_URL_RE = re.compile(
    r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
    r"(/(?:[A-Za-z0-9\-._~!$&()*+,;=:@/]|%[0-9A-Fa-f]{2})*)?"
    r"(\?(?:[A-Za-z0-9\-._~!$&()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?",
    re.ASCII,
)
MAX_REGEX = 256
MAX_HEADER_VALUE = 1024


def integer(value: object, what: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``."""
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not re.fullmatch(r"-?[0-9]{1,12}", text, re.ASCII):
        raise InvalidValue(f"{what} {_show(value)} is not a whole number")
    number = int(text)
    if not low <= number <= high:
        raise InvalidValue(f"{what} {_show(value)} is not from {low} to {high}")
    return number


def size(value: object, what: str) -> int:
    """A size in bytes: ``512``, ``64k``, ``10m``, ``1g`` (powers of 1024); above zero."""
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise InvalidValue(f"{what} {_show(value)} is not a size such as 512, 64k, 10m or 1g")
    total = int(match[1]) * _SIZE_UNITS[match[2]]
    if not 0 < total <= MAX_BODY_SIZE:
        raise InvalidValue(f"{what} {_show(value)} is not from 1 byte to 1t")
    return total


def cidr(value: object, what: str) -> str:
    """An IPv4 or IPv6 network (``10.0.0.0/8``) or address, normalised (host bits must
    be zero, as Kubernetes' loadBalancerSourceRanges wants)."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise InvalidValue(f"{what} {_show(value)} is not a network such as 10.0.0.0/8") from None
    return str(network)


def _word_token(value: object, what: str, kind: str) -> str:
    if not isinstance(value, str) or not _HEADER_NAME_RE.fullmatch(value):
        raise InvalidValue(f"{what} {_show(value)} is not {kind} (letters, digits, -)")
    return value


def safe_token(value: object, what: str) -> str:
    """An HTTP token (RFC 9110 5.6.2: a method, a header name) written into haproxy.cfg
    as it is: without ``'``, ``#``, ``$`` or ``%``, which the config or a log-format
    reads."""
    return _word_token(value, what, "an HTTP token")


def header_name(value: object, what: str) -> str:
    """A header name (a :func:`safe_token`), lower case: HAProxy compares them so."""
    return _word_token(value, what, "a header name").lower()


def cookie_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _COOKIE_NAME_RE.fullmatch(value):
        raise InvalidValue(f"{what} {_show(value)} is not a cookie name (an HTTP token)")
    return value


def header_value(value: object, what: str) -> str:
    """A header value written into a rule: printable ASCII and spaces, no quote, no
    control character, at most 1,024 characters; as given, outer spaces removed."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > MAX_HEADER_VALUE or not _QUOTABLE_RE.fullmatch(text):
        raise InvalidValue(
            f"{what} {_show(value)} is not a header value (printable ASCII, no quote)"
        )
    return text


def redirect_url(value: object, what: str) -> str:
    """An absolute ``http`` or ``https`` URL (RFC 3986 characters, no fragment): never
    another scheme (``javascript:``, ``file:``, ``data:``)."""
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > 2048 or not _URL_RE.fullmatch(text):
        raise InvalidValue(f"{what} {_show(value)} is not an absolute http or https URL")
    return text


def http_origin(value: object, what: str) -> str:
    """A CORS origin: ``*`` or ``scheme://host[:port]`` (http or https, no path)."""
    text = value.strip() if isinstance(value, str) else ""
    if text == "*":
        return text
    match = _URL_RE.fullmatch(text) if len(text) <= MAX_HOSTNAME + 16 else None
    if not match or match[4] or match[5]:
        raise InvalidValue(f"{what} {_show(value)} is not * or an origin such as https://a.b")
    return text


def regex(value: object, what: str) -> str:
    """A regular expression HAProxy (PCRE2) runs on each request: a safe subset.

    At most 256 characters of printable ASCII without quotes; it compiles (Python's
    ``re``, whose syntax for this subset is PCRE's); no back-reference, no
    look-around; no quantified group holding another quantifier or an alternation
    (``(a+)+``, ``(a|a)*``: catastrophic backtracking); at most two unbounded
    quantifiers (``.*x.*y.*z`` backtracks polynomially).  HAProxy compiles it again
    (``haproxy -c``) before it is live.  A library would be better than this walk,
    but none checks backtracking for PCRE; the subset is small on purpose.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REGEX:
        raise InvalidValue(f"{what} {_show(value)} is not a regex of 1 to {MAX_REGEX} characters")
    if not _QUOTABLE_RE.fullmatch(value) or '"' in value:
        raise InvalidValue(f"{what} {_show(value)} holds a quote or a control character")
    try:
        parsed = re._parser.parse(value)  # type: ignore[attr-defined]
    except re.error as exc:
        raise InvalidValue(f"{what} {_show(value)} does not compile: {exc}") from None
    unbounded = _regex_check(parsed, False, what, value)
    if unbounded > 2:
        raise InvalidValue(f"{what} {_show(value)} has more than two unbounded repeats")
    return value


_MAXREPEAT = 4294967295


def _regex_check(pattern: object, in_repeat: bool, what: str, value: str) -> int:
    """Walk a parsed regex; raise for what the subset refuses; count unbounded repeats."""
    unbounded = 0
    for op, arg in pattern:  # type: ignore[attr-defined]
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            raise InvalidValue(f"{what} {_show(value)} uses a back-reference")
        if name in ("ASSERT", "ASSERT_NOT"):
            raise InvalidValue(f"{what} {_show(value)} uses a look-around")
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _low, high, sub = arg
            if in_repeat:
                raise InvalidValue(f"{what} {_show(value)} nests a repeat in a repeat")
            if high == _MAXREPEAT or high > 1000:
                unbounded += 1
            unbounded += _regex_check(sub, high > 1, what, value)
        elif name == "SUBPATTERN":
            unbounded += _regex_check(arg[-1], in_repeat, what, value)
        elif name == "BRANCH":
            if in_repeat:
                raise InvalidValue(f"{what} {_show(value)} repeats an alternation")
            for branch in arg[1]:
                unbounded += _regex_check(branch, in_repeat, what, value)
        elif name == "ATOMIC_GROUP":
            unbounded += _regex_check(arg, in_repeat, what, value)
    return unbounded


def quotable(text: str) -> bool:
    """Whether ``text`` can be written as one single-quoted argument of haproxy.cfg:
    printable ASCII and spaces, no quote (the renderer's check of quoted text)."""
    return _QUOTABLE_RE.fullmatch(text) is not None
