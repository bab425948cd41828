"""ingress-nginx annotations translated into Breakwater's options (docs/traffic.md).

ingress-nginx was retired in March 2026; its users bring Ingresses annotated
``nginx.ingress.kubernetes.io/*``.  :func:`translate` maps the common annotations onto
the keys of the option table (:mod:`.options`), in the text form a route ConfigMap holds,
and reports every other one as ignored, with the reason.  Snippet annotations (raw
NGINX configuration) are never executed.

:data:`ANNOTATIONS` lists every annotation ingress-nginx documents (its annotations.md
and annotations-risk.md, in annotations.md's order, the ones only the latter lists next
to their group) with what Breakwater makes of it; :func:`annotation_table` renders it
for docs/ingress-nginx.md and the README.  The semantics and defaults are upstream's
(``internal/ingress/annotations/*``); where Breakwater differs, the notes say how.

Pure: no I/O, no state; the same annotations give the same translation.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from breakwater import validate
from breakwater.catalog.model import Rejected

NGINX_PREFIX = "nginx.ingress.kubernetes.io/"

Support = Literal["yes", "mapped differently", "no"]


@dataclass(frozen=True)
class Annotation:
    name: str  # without the prefix, e.g. "proxy-body-size"
    support: Support
    notes: str  # Markdown, one line, for the README table: what it maps to, or why not


@dataclass(frozen=True)
class Translation:
    #: Breakwater option key -> value in the text form a ConfigMap holds (lists
    #: space-separated, booleans "true"/"false", durations like "30s").
    values: dict[str, str]
    #: (full annotation name, reason), sorted by name.
    ignored: tuple[tuple[str, str], ...]
    #: canary: "true" -- this Ingress is the canary of another Ingress with the same
    #: host/paths.
    canary: bool
    #: use-regex "true", or rewrite-target set (ingress-nginx then treats paths as regexes).
    use_regex: bool
    #: The rewrite-target as given (nginx $1..$9 converted to HAProxy \1..\9).
    rewrite_target: str | None


SNIPPET_REASON = (
    "raw NGINX configuration from an object is never executed "
    "(how ingress-nginx was exploited, CVE-2025-1974 etc.)"
)
UNKNOWN_REASON = "unknown ingress-nginx annotation"
EMPTY_REASON = "empty value (ingress-nginx ignores it too)"
CANARY_REASON = (
    "on a canary Ingress ingress-nginx uses the main Ingress's setting "
    "(only canary-*, affinity, session-cookie-* and load-balance count there)"
)

_SNIPPET_NOTE = "never executed: raw NGINX configuration from an object (CVE-2025-1974 etc.)"
_AUTH = "authentication is not done by the edge; put it in the application or a sidecar"
_EXTERNAL_AUTH = "external authentication (`auth_request`) is not supported; " + _AUTH
_CLIENT_CERT = "client certificate authentication (mTLS from clients) is not supported"
_BUFFERS = "NGINX buffer tuning; HAProxy buffers by its own settings (not an object's)"
_TLS_EDGE = "the edge's TLS settings are the operator's (haproxy settings), not an object's"
_LOGS = "logging is the edge's, not an object's"
_TRACING = "tracing is not supported"
_MODSEC = "ModSecurity (WAF) is not supported"
_MIRROR = "request mirroring is not supported"
_HASH = "hashing on NGINX variables is not supported; `balance: source` hashes the client address"
_FCGI = "FastCGI servers are not supported"

#: Every annotation ingress-nginx documents, in its annotations.md order (the ones only
#: annotations-risk.md lists next to their group).
ANNOTATIONS: tuple[Annotation, ...] = (
    Annotation(
        "app-root",
        "yes",
        "`app-root`: a request for `/` is redirected (302) to this path",
    ),
    Annotation(
        "affinity",
        "yes",
        "`cookie` -> `sticky-cookie` named by session-cookie-name (default `INGRESSCOOKIE`);"
        " HAProxy's own cookie values, so clients are stuck anew once after the move",
    ),
    Annotation(
        "affinity-mode",
        "mapped differently",
        "Breakwater's cookies always behave as `persistent` (a client stays on its pod when"
        " the Service scales); `balanced` is reported ignored",
    ),
    Annotation(
        "affinity-canary-behavior",
        "mapped differently",
        "Breakwater chooses the canary per request, as `legacy`; `sticky` is reported ignored",
    ),
    Annotation("auth-realm", "no", "basic/digest " + _AUTH),
    Annotation("auth-secret", "no", "basic/digest " + _AUTH),
    Annotation("auth-secret-type", "no", "basic/digest " + _AUTH),
    Annotation("auth-type", "no", "basic/digest " + _AUTH),
    Annotation("auth-tls-secret", "no", _CLIENT_CERT),
    Annotation("auth-tls-verify-depth", "no", _CLIENT_CERT),
    Annotation("auth-tls-verify-client", "no", _CLIENT_CERT),
    Annotation("auth-tls-error-page", "no", _CLIENT_CERT),
    Annotation("auth-tls-pass-certificate-to-upstream", "no", _CLIENT_CERT),
    Annotation("auth-tls-match-cn", "no", _CLIENT_CERT),
    Annotation("auth-url", "no", _EXTERNAL_AUTH),
    Annotation("auth-method", "no", _EXTERNAL_AUTH),
    Annotation("auth-signin", "no", _EXTERNAL_AUTH),
    Annotation("auth-signin-redirect-param", "no", _EXTERNAL_AUTH),
    Annotation("auth-response-headers", "no", _EXTERNAL_AUTH),
    Annotation("auth-request-redirect", "no", _EXTERNAL_AUTH),
    Annotation("auth-cache-key", "no", _EXTERNAL_AUTH),
    Annotation("auth-cache-duration", "no", _EXTERNAL_AUTH),
    Annotation("auth-always-set-cookie", "no", _EXTERNAL_AUTH),
    Annotation("auth-keepalive", "no", _EXTERNAL_AUTH),
    Annotation("auth-keepalive-share-vars", "no", _EXTERNAL_AUTH),
    Annotation("auth-keepalive-requests", "no", _EXTERNAL_AUTH),
    Annotation("auth-keepalive-timeout", "no", _EXTERNAL_AUTH),
    Annotation("auth-proxy-set-headers", "no", _EXTERNAL_AUTH),
    Annotation("auth-snippet", "no", _SNIPPET_NOTE),
    Annotation("enable-global-auth", "no", "there is no global external authentication"),
    Annotation(
        "backend-protocol",
        "yes",
        "`HTTP`, `HTTPS`, `GRPC`, `GRPCS` -> `backend-protocol` `http`, `https`, `grpc`,"
        " `grpcs`; `AUTO_HTTP` (the client's scheme) and `FCGI` are reported ignored",
    ),
    Annotation("fastcgi-index", "no", _FCGI),
    Annotation("fastcgi-params-configmap", "no", _FCGI),
    Annotation(
        "canary",
        "yes",
        "`true`: the Ingress is the canary of the Ingress with the same host and path; as in"
        " ingress-nginx its other annotations (but affinity) are the main Ingress's",
    ),
    Annotation(
        "canary-by-header",
        "yes",
        "`canary-header` (`always` / `never`, or canary-by-header-value)",
    ),
    Annotation("canary-by-header-value", "yes", "`canary-header-value`"),
    Annotation(
        "canary-by-header-pattern",
        "no",
        "PCRE matching of a header value is not supported (use canary-by-header-value);"
        " without a value canary-by-header is then reported ignored too",
    ),
    Annotation("canary-by-cookie", "yes", "`canary-cookie` (`always` / `never`)"),
    Annotation("canary-weight", "yes", "`canary-weight`, percent of requests"),
    Annotation(
        "canary-weight-total",
        "mapped differently",
        "the weight is turned into a percent (`canary-weight`), which must be whole;"
        " a total under 100 is 100, as in ingress-nginx",
    ),
    Annotation(
        "client-body-buffer-size",
        "no",
        "HAProxy buffers request bodies by its own settings, not an object's",
    ),
    Annotation("configuration-snippet", "no", _SNIPPET_NOTE),
    Annotation(
        "custom-http-errors",
        "no",
        "errors are not sent to a Service; `breakwater.io/error-pages` serves pages from"
        " a ConfigMap instead",
    ),
    Annotation(
        "custom-headers",
        "no",
        "response headers from a ConfigMap are not supported",
    ),
    Annotation(
        "default-backend",
        "no",
        "there is no fallback Service: a route without ready servers is answered 503",
    ),
    Annotation(
        "disable-proxy-intercept-errors",
        "no",
        "goes with custom-http-errors, which is not supported",
    ),
    Annotation(
        "hsts",
        "mapped differently",
        "`hsts`: ingress-nginx sets HSTS in its ConfigMap (on for TLS hosts by default),"
        " not per Ingress; Breakwater reads it per Ingress, off unless asked",
    ),
    Annotation("hsts-max-age", "mapped differently", "`hsts-max-age` (seconds), with `hsts`"),
    Annotation(
        "hsts-include-subdomains",
        "mapped differently",
        "`hsts-include-subdomains`, with `hsts`",
    ),
    Annotation("hsts-preload", "mapped differently", "`hsts-preload`, with `hsts`"),
    Annotation("enable-cors", "yes", "`cors`"),
    Annotation(
        "cors-allow-origin",
        "yes",
        "`cors-allow-origin`: `*` or `http(s)://host[:port]`; wildcard subdomains,"
        " `null` and other schemes are refused",
    ),
    Annotation("cors-allow-methods", "yes", "`cors-allow-methods`"),
    Annotation("cors-allow-headers", "yes", "`cors-allow-headers`"),
    Annotation("cors-expose-headers", "yes", "`cors-expose-headers`"),
    Annotation("cors-allow-credentials", "yes", "`cors-allow-credentials` (default `true`)"),
    Annotation("cors-max-age", "yes", "`cors-max-age`, seconds (default `1728000`)"),
    Annotation(
        "force-ssl-redirect",
        "yes",
        "`https-redirect` for every host of the Ingress (308, ingress-nginx's default"
        " `http-redirect-code`)",
    ),
    Annotation(
        "from-to-www-redirect",
        "no",
        "not supported: add the other name to a route that redirects (`redirect-to`)",
    ),
    Annotation(
        "http2-push-preload",
        "no",
        "HTTP/2 server push is not supported (browsers dropped it)",
    ),
    Annotation(
        "limit-connections",
        "mapped differently",
        "`rate-limit-connections`; refused connections are answered 429 (ingress-nginx: 503)",
    ),
    Annotation(
        "limit-rps",
        "mapped differently",
        "`rate-limit-rps`: 429 (ingress-nginx: 503) as soon as the rate is passed, no"
        " burst allowance (ingress-nginx: 5 times the rate); `0` is no limit",
    ),
    Annotation(
        "limit-rpm",
        "mapped differently",
        "`rate-limit-rps` of a sixtieth when it is a whole number (else reported ignored);"
        " with limit-rps the lower rate counts",
    ),
    Annotation(
        "limit-burst-multiplier",
        "no",
        "there is no burst allowance: requests above the rate are refused at once",
    ),
    Annotation("limit-rate", "no", "bandwidth limits are not supported"),
    Annotation("limit-rate-after", "no", "bandwidth limits are not supported"),
    Annotation(
        "limit-allowlist",
        "no",
        "exempting client networks from rate limits is not supported",
    ),
    Annotation(
        "limit-whitelist",
        "no",
        "exempting client networks from rate limits is not supported",
    ),
    Annotation(
        "permanent-redirect",
        "yes",
        "`redirect-to` (an `http`/`https` URL) with `redirect-code` 301",
    ),
    Annotation(
        "permanent-redirect-code",
        "yes",
        "`redirect-code`: 301, 302, 303, 307 or 308",
    ),
    Annotation(
        "temporal-redirect",
        "yes",
        "`redirect-to` with `redirect-code` 302; it wins over permanent-redirect, as in"
        " ingress-nginx",
    ),
    Annotation(
        "temporal-redirect-code",
        "yes",
        "`redirect-code`: 301, 302, 303 or 307",
    ),
    Annotation(
        "relative-redirects",
        "no",
        "the edge's redirects are absolute URLs",
    ),
    Annotation(
        "preserve-trailing-slash",
        "mapped differently",
        "the HTTPS redirect always keeps the request's URI as it is (as `true`); `false`"
        " is reported ignored",
    ),
    Annotation(
        "proxy-body-size",
        "yes",
        "`max-body-size` (`0`: no limit); ingress-nginx's default is `1m`, Breakwater's is"
        " no limit; checked on `Content-Length`",
    ),
    Annotation("proxy-cookie-domain", "no", "rewriting `Set-Cookie` is not supported"),
    Annotation("proxy-cookie-path", "no", "rewriting `Set-Cookie` is not supported"),
    Annotation(
        "proxy-connect-timeout",
        "yes",
        "`timeout-connect` (seconds)",
    ),
    Annotation(
        "proxy-send-timeout",
        "mapped differently",
        "HAProxy has one inactivity timeout per direction pair: the larger of"
        " proxy-read-timeout and this becomes `timeout-server` and `timeout-tunnel`",
    ),
    Annotation(
        "proxy-read-timeout",
        "mapped differently",
        "the larger of this and proxy-send-timeout becomes `timeout-server` and"
        " `timeout-tunnel` (WebSockets idle out after it, as in ingress-nginx)",
    ),
    Annotation(
        "proxy-next-upstream",
        "no",
        "not translated: set `breakwater.io/retries` and `retry-on` (HAProxy's own keywords)",
    ),
    Annotation(
        "proxy-next-upstream-timeout",
        "no",
        "not translated: set `breakwater.io/retries` and `retry-on`",
    ),
    Annotation(
        "proxy-next-upstream-tries",
        "no",
        "not translated: set `breakwater.io/retries` and `retry-on`",
    ),
    Annotation(
        "proxy-request-buffering",
        "no",
        "HAProxy streams request bodies; there is no per-route buffering switch",
    ),
    Annotation("proxy-redirect-from", "no", "rewriting `Location` is not supported"),
    Annotation("proxy-redirect-to", "no", "rewriting `Location` is not supported"),
    Annotation(
        "proxy-http-version",
        "no",
        "HTTP/1.1 is spoken to servers (HTTP/2 with `backend-protocol`); `1.0` is not offered",
    ),
    Annotation(
        "proxy-ssl-secret",
        "mapped differently",
        "with proxy-ssl-verify `on`: `backend-ca` `secret/<name>` (its `ca.crt`, the"
        " Ingress's namespace only); no client certificate is presented to servers",
    ),
    Annotation("proxy-ssl-ciphers", "no", "TLS to servers uses HAProxy's defaults"),
    Annotation(
        "proxy-ssl-name",
        "yes",
        "`backend-sni` (the name sent and verified), with backend-protocol HTTPS or GRPCS",
    ),
    Annotation("proxy-ssl-protocols", "no", "TLS to servers uses HAProxy's defaults"),
    Annotation(
        "proxy-ssl-verify",
        "mapped differently",
        "`on` with proxy-ssl-secret: `backend-ca`; `off` is Breakwater's default too",
    ),
    Annotation(
        "proxy-ssl-verify-depth",
        "no",
        "the whole chain is verified to the CA (HAProxy's default depth)",
    ),
    Annotation(
        "proxy-ssl-server-name",
        "mapped differently",
        "SNI is always sent (`backend-sni`, default the request's Host); `off` is reported ignored",
    ),
    Annotation("enable-rewrite-log", "no", _LOGS),
    Annotation(
        "rewrite-target",
        "yes",
        "the route's paths become regexes and the target (`$1` -> `\\1`) their"
        " `rewrite-target`, as ingress-nginx does; it must start with `/`",
    ),
    Annotation("satisfy", "no", "goes with authentication, which is not supported"),
    Annotation(
        "server-alias",
        "no",
        "add the names to the Ingress's rules instead",
    ),
    Annotation("server-snippet", "no", _SNIPPET_NOTE),
    Annotation(
        "service-upstream",
        "no",
        "the edge balances over the Service's endpoints (or nodes) itself",
    ),
    Annotation(
        "session-cookie-change-on-failure",
        "mapped differently",
        "a client whose server fails is sent to another, which sets a new cookie"
        " (`option redispatch`), as `true`; `false` is reported ignored",
    ),
    Annotation(
        "session-cookie-conditional-samesite-none",
        "no",
        "the sticky cookie carries no `SameSite` attribute",
    ),
    Annotation("session-cookie-domain", "no", "the sticky cookie carries no `Domain` attribute"),
    Annotation(
        "session-cookie-expires",
        "mapped differently",
        "`sticky-cookie-ttl` (when session-cookie-max-age is not set): HAProxy ends the"
        " stickiness after it (`maxlife`), the browser keeps the cookie for its session",
    ),
    Annotation(
        "session-cookie-max-age",
        "mapped differently",
        "`sticky-cookie-ttl`: HAProxy ends the stickiness after it (`maxlife`), the browser"
        " keeps the cookie for its session",
    ),
    Annotation("session-cookie-name", "yes", "the `sticky-cookie` name"),
    Annotation("session-cookie-path", "no", "the sticky cookie carries no `Path` attribute"),
    Annotation(
        "session-cookie-samesite", "no", "the sticky cookie carries no `SameSite` attribute"
    ),
    Annotation("session-cookie-secure", "yes", "`sticky-cookie-secure`"),
    Annotation(
        "ssl-redirect",
        "yes",
        "as ingress-nginx: by default the Ingress's hosts with TLS are redirected to HTTPS"
        " (308), `false` redirects none",
    ),
    Annotation(
        "ssl-passthrough",
        "no",
        "TLS passthrough is not supported: the edge terminates TLS",
    ),
    Annotation("stream-snippet", "no", _SNIPPET_NOTE),
    Annotation("upstream-hash-by", "no", _HASH),
    Annotation("upstream-hash-by-subset", "no", _HASH),
    Annotation("upstream-hash-by-subset-size", "no", _HASH),
    Annotation("x-forwarded-prefix", "no", "`X-Forwarded-Prefix` is not added"),
    Annotation(
        "load-balance",
        "mapped differently",
        "`round_robin` -> `balance: roundrobin`; `ewma` is reported ignored (`leastconn` is"
        " the nearest)",
    ),
    Annotation(
        "upstream-vhost",
        "no",
        "the request's Host is sent to servers unchanged; there is no Host rewrite",
    ),
    Annotation("denylist-source-range", "yes", "`deny-sources` (addresses become /32, /128)"),
    Annotation(
        "whitelist-source-range",
        "yes",
        "`allow-sources` (addresses become /32, /128); allowlist-source-range wins",
    ),
    Annotation("allowlist-source-range", "yes", "`allow-sources` (addresses become /32, /128)"),
    Annotation("proxy-buffering", "no", _BUFFERS),
    Annotation("proxy-buffers-number", "no", _BUFFERS),
    Annotation("proxy-buffer-size", "no", _BUFFERS),
    Annotation("proxy-busy-buffers-size", "no", _BUFFERS),
    Annotation("proxy-max-temp-file-size", "no", _BUFFERS),
    Annotation("ssl-ciphers", "no", _TLS_EDGE),
    Annotation("ssl-prefer-server-ciphers", "no", _TLS_EDGE),
    Annotation(
        "connection-proxy-header",
        "no",
        "HAProxy manages the `Connection` header to servers",
    ),
    Annotation("enable-access-log", "no", _LOGS),
    Annotation("enable-opentelemetry", "no", _TRACING),
    Annotation("opentelemetry-trust-incoming-span", "no", _TRACING),
    Annotation("opentelemetry-operation-name", "no", _TRACING),
    Annotation(
        "use-regex",
        "yes",
        "the Ingress's paths are regexes (the safe subset of docs/traffic.md), for this"
        " Ingress only (ingress-nginx: every path of the host)",
    ),
    Annotation("enable-modsecurity", "no", _MODSEC),
    Annotation("enable-owasp-core-rules", "no", _MODSEC),
    Annotation("modsecurity-transaction-id", "no", _MODSEC),
    Annotation("modsecurity-snippet", "no", _SNIPPET_NOTE),
    Annotation("mirror-request-body", "no", _MIRROR),
    Annotation("mirror-target", "no", _MIRROR),
    Annotation("mirror-host", "no", _MIRROR),
    Annotation(
        "use-port-in-redirects",
        "no",
        "the edge's redirects carry no port",
    ),
)

_BY_NAME: dict[str, Annotation] = {a.name: a for a in ANNOTATIONS}

#: On a canary Ingress, ingress-nginx reads only these (its annotations.md, "Canary").
_CANARY_OWN = frozenset(
    {
        "canary",
        "canary-weight",
        "canary-weight-total",
        "canary-by-header",
        "canary-by-header-value",
        "canary-by-header-pattern",
        "canary-by-cookie",
        "affinity",
        "affinity-mode",
        "affinity-canary-behavior",
        "session-cookie-name",
        "session-cookie-secure",
        "session-cookie-expires",
        "session-cookie-max-age",
        "session-cookie-path",
        "session-cookie-domain",
        "session-cookie-samesite",
        "session-cookie-conditional-samesite-none",
        "session-cookie-change-on-failure",
        "load-balance",
        "upstream-hash-by",
        "upstream-hash-by-subset",
        "upstream-hash-by-subset-size",
    }
)


def annotation_table() -> str:
    """:data:`ANNOTATIONS` as a Markdown table: annotation | support | notes."""
    lines = ["| annotation | support | notes |", "|---|---|---|"]
    lines += [f"| `{a.name}` | {a.support} | {a.notes} |" for a in ANNOTATIONS]
    return "\n".join(lines) + "\n"


# Go's strconv.ParseBool, which ingress-nginx reads booleans with.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Go's strconv.Atoi: an optional sign and decimal digits (bounded here).
_INT_RE = re.compile(r"[+-]?[0-9]{1,12}", re.ASCII)
# NGINX's sizes: bytes, or k, m, g in either case (ngx_parse_size).
_SIZE_RE = re.compile(r"([0-9]{1,13})([kKmMgG]?)", re.ASCII)
# rewrite-target: ingress-nginx's RegexPathWithCapture characters, and a leading '/'
# (Breakwater's rewrite-target is a path); '$' only as $1..$9.
_REWRITE_RE = re.compile(r"/(?:[A-Za-z0-9\-._~/:]|\$[1-9])*", re.ASCII)
# HAProxy keeps times in milliseconds in 32 bits: at most 2147483 whole seconds.
_MAX_SECONDS = validate.MAX_HAPROXY_MS // 1000
_TLS_PROTOCOLS = frozenset({"https", "grpcs"})


class _Reader:
    """The nginx annotations of one object, by short name, and what became of each."""

    def __init__(self, given: dict[str, str]) -> None:
        self.given = given
        self.ignored: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        """The value, outer spaces removed (as ingress-nginx does); None when absent,
        already ignored, or empty (then ignored)."""
        if name not in self.given or name in self.ignored:
            return None
        value = self.given[name].strip()
        if not value:
            self.ignore(name, EMPTY_REASON)
            return None
        return value

    def present(self, name: str) -> bool:
        """Whether the annotation is given a value, ignored or not."""
        return bool(self.given.get(name, "").strip())

    def ignore(self, name: str, reason: str) -> None:
        if name in self.given:
            self.ignored.setdefault(name, reason)

    def ignore_all(self, names: tuple[str, ...], reason: str) -> None:
        for name in names:
            self.ignore(name, reason)

    def boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None:
            return None
        if value in _GO_TRUE:
            return True
        if value in _GO_FALSE:
            return False
        raise _bad(name, value, "is not a boolean (true or false)")

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not _INT_RE.fullmatch(value):
            raise _bad(name, value, "is not a whole number")
        number = int(value)
        if not low <= number <= high:
            raise _bad(name, value, f"is not from {low} to {high}")
        return number

    def checked(self, name: str, check: Callable[[str, str], object]) -> str | None:
        """The value, checked by a validator of :mod:`breakwater.validate`."""
        value = self.get(name)
        if value is not None:
            _check(name, value, check)
        return value


def _full(name: str) -> str:
    return NGINX_PREFIX + name


def _bad(name: str, value: str, cause: str) -> Rejected:
    return Rejected(f"annotation {_full(name)} {validate.show(value)} {cause}")


def _check(name: str, value: str, check: Callable[[str, str], object]) -> object:
    """``check(value, what)``, its InvalidValue a Rejected naming the annotation."""
    what = f"annotation {_full(name)}"
    try:
        return check(value, what)
    except validate.InvalidValue as exc:
        reason = str(exc)
        raise Rejected(reason if reason.startswith(what) else f"{what}: {reason}") from None


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _items(value: str) -> list[str]:
    """A comma-separated list of ingress-nginx's, items stripped, empty ones dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def translate(annotations: Mapping[str, str], *, namespace: str | None = None) -> Translation:
    """Only keys starting with NGINX_PREFIX are looked at. A bad value of a translated
    annotation raises Rejected naming the annotation and the cause, e.g.
    "annotation nginx.ingress.kubernetes.io/proxy-body-size '12x' is not a size".

    ``namespace``: the Ingress's, against which proxy-ssl-secret's ``namespace/name`` is
    checked (ingress-nginx refuses a Secret of another namespace); without it such a
    reference is refused.
    """
    given = {
        key[len(NGINX_PREFIX) :]: value if isinstance(value, str) else str(value)
        for key, value in annotations.items()
        if key.startswith(NGINX_PREFIX)
    }
    reader = _Reader(given)
    for name in given:
        known = _BY_NAME.get(name)
        if name.endswith("-snippet"):
            reader.ignore(name, SNIPPET_REASON)
        elif known is None:
            reader.ignore(name, UNKNOWN_REASON)
        elif known.support == "no":
            reader.ignore(name, known.notes)

    values: dict[str, str] = {}
    canary = bool(reader.boolean("canary"))
    if canary:
        for name in given:
            if name not in _CANARY_OWN:
                reader.ignore(name, CANARY_REASON)

    _https_redirect(reader, values)
    use_regex, rewrite_target = _rewrite(reader)
    _app_root(reader, values)
    _body_size(reader, values)
    _timeouts(reader, values)
    _affinity(reader, values)
    _canary(reader, values, canary)
    _sources(reader, values)
    _backend_protocol(reader, values)
    _backend_tls(reader, values, namespace)
    _rate_limits(reader, values)
    _permanent_temporal(reader, values)
    _cors(reader, values)
    _hsts(reader, values)
    _load_balance(reader, values)

    return Translation(
        values=values,
        ignored=tuple((_full(n), reader.ignored[n]) for n in sorted(reader.ignored)),
        canary=canary,
        use_regex=use_regex,
        rewrite_target=rewrite_target,
    )


def _https_redirect(reader: _Reader, values: dict[str, str]) -> None:
    # The template redirects when force-ssl-redirect, or ssl-redirect and the host has
    # a certificate; both with ConfigMap's http-redirect-code, 308 by default.
    # ssl-redirect (true by default) redirects the hosts with a certificate only: the
    # catalog does that without a value; force-ssl-redirect redirects every host.
    ssl = reader.boolean("ssl-redirect")
    force = reader.boolean("force-ssl-redirect")
    if force:
        values["https-redirect"] = "true"
    elif ssl is False:
        values["https-redirect"] = "false"
    # Without it, the redirect drops a trailing '/'; HAProxy's keeps the URI as it is.
    if reader.boolean("preserve-trailing-slash") is False:
        reader.ignore(
            "preserve-trailing-slash",
            "the HTTPS redirect keeps the request's URI as it is, trailing slash included",
        )


def _rewrite(reader: _Reader) -> tuple[bool, str | None]:
    use_regex = bool(reader.boolean("use-regex"))
    target = reader.get("rewrite-target")
    if target is None:
        return use_regex, None
    if not _REWRITE_RE.fullmatch(target) or len(target) > validate.MAX_PATH:
        raise _bad(
            "rewrite-target",
            target,
            "is not a path starting with '/' (letters, digits, -._~/: and $1 to $9)",
        )
    # ingress-nginx's paths are regexes as soon as a rewrite-target is set.
    return True, re.sub(r"\$([1-9])", r"\\\1", target)


def _app_root(reader: _Reader, values: dict[str, str]) -> None:
    value = reader.checked("app-root", validate.matched_path)
    if value is not None:
        values["app-root"] = value


def _body_size(reader: _Reader, values: dict[str, str]) -> None:
    value = reader.get("proxy-body-size")
    if value is None:
        return
    match = _SIZE_RE.fullmatch(value)
    if not match:
        raise _bad("proxy-body-size", value, "is not a size (such as 512, 64k, 8m or 1g)")
    number = int(match[1])
    if number == 0:
        return  # client_max_body_size 0: no limit, Breakwater's default
    text = f"{number}{match[2].lower()}"
    _check("proxy-body-size", text, validate.size)
    values["max-body-size"] = text


def _timeouts(reader: _Reader, values: dict[str, str]) -> None:
    # Whole seconds without a unit (proxy/main.go reads them with Atoi).
    connect = reader.integer("proxy-connect-timeout", 1, _MAX_SECONDS)
    if connect is not None:
        values["timeout-connect"] = f"{connect}s"
    read = reader.integer("proxy-read-timeout", 1, _MAX_SECONDS)
    send = reader.integer("proxy-send-timeout", 1, _MAX_SECONDS)
    given = [t for t in (read, send) if t is not None]
    if given:
        # One inactivity timeout in HAProxy; NGINX applies both to upgraded
        # connections (WebSockets) too, HAProxy's timeout tunnel there.
        values["timeout-server"] = values["timeout-tunnel"] = f"{max(given)}s"


_SESSION_COOKIE = (
    "session-cookie-name",
    "session-cookie-secure",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-change-on-failure",
    "affinity-mode",
    "affinity-canary-behavior",
)


def _affinity(reader: _Reader, values: dict[str, str]) -> None:
    affinity = reader.get("affinity")
    if affinity is None:
        reader.ignore_all(_SESSION_COOKIE, "has no effect without affinity: cookie")
        return
    if affinity != "cookie":
        raise _bad("affinity", affinity, "is not cookie (the only affinity type)")
    name = reader.checked("session-cookie-name", validate.cookie_name)
    values["sticky-cookie"] = name or "INGRESSCOOKIE"
    max_age = reader.integer("session-cookie-max-age", 1, _MAX_SECONDS)
    if max_age is not None:
        reader.ignore(
            "session-cookie-expires", "session-cookie-max-age is set (browsers prefer it)"
        )
    expires = reader.integer("session-cookie-expires", 1, _MAX_SECONDS)
    ttl = max_age if max_age is not None else expires
    if ttl is not None:
        values["sticky-cookie-ttl"] = f"{ttl}s"
    secure = reader.boolean("session-cookie-secure")
    if secure is not None:
        values["sticky-cookie-secure"] = _bool_text(secure)
    if reader.boolean("session-cookie-change-on-failure") is False:
        reader.ignore(
            "session-cookie-change-on-failure",
            "a client whose server fails is always sent to another (option redispatch)",
        )
    mode = reader.get("affinity-mode")
    if mode == "balanced":
        reader.ignore(
            "affinity-mode",
            "Breakwater's cookies keep a client on its pod when the Service scales (as persistent)",
        )
    elif mode not in (None, "persistent"):
        raise _bad("affinity-mode", mode, "is not balanced or persistent")
    behavior = reader.get("affinity-canary-behavior")
    if behavior == "sticky":
        reader.ignore(
            "affinity-canary-behavior",
            "the canary is chosen per request (as legacy): its clients are not kept on it",
        )
    elif behavior not in (None, "legacy"):
        raise _bad("affinity-canary-behavior", behavior, "is not sticky or legacy")


_CANARY_RULES = (
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
)


def _canary(reader: _Reader, values: dict[str, str], canary: bool) -> None:
    if not canary:
        reader.ignore_all(
            _CANARY_RULES,
            'has no effect without canary: "true" (ingress-nginx: configured but not enabled)',
        )
        return
    _canary_weight(reader, values)
    header = reader.checked("canary-by-header", validate.header_name)
    if header is None:
        reader.ignore_all(
            ("canary-by-header-value", "canary-by-header-pattern"),
            "has no effect without canary-by-header",
        )
    else:
        header_value = reader.checked("canary-by-header-value", validate.header_value)
        if header_value is not None:
            values["canary-header"] = header
            values["canary-header-value"] = header_value
        elif reader.present("canary-by-header-pattern"):
            reader.ignore(
                "canary-by-header",
                "goes with canary-by-header-pattern, which is not supported",
            )
        else:
            values["canary-header"] = header
    cookie = reader.checked("canary-by-cookie", validate.cookie_name)
    if cookie is not None:
        values["canary-cookie"] = cookie


def _canary_weight(reader: _Reader, values: dict[str, str]) -> None:
    weight = reader.integer("canary-weight", 0, 10**9)
    total = reader.integer("canary-weight-total", 0, 10**9)
    if total is not None and total < 100:
        # balancer.lua takes a total above 100 only.
        reader.ignore("canary-weight-total", "ingress-nginx uses 100 for a total under 100")
    total = total if total is not None and total > 100 else 100
    if weight is None:
        return
    if weight > total:
        raise _bad("canary-weight", str(weight), f"is above the total weight ({total})")
    if weight * 100 % total:
        raise _bad(
            "canary-weight",
            str(weight),
            f"of canary-weight-total {total} is not a whole percent",
        )
    values["canary-weight"] = str(weight * 100 // total)


def _networks(name: str, value: str) -> str:
    """A comma-separated list of CIDRs or addresses (net.ParseIPNets) as networks,
    space-separated; host bits dropped (``10.0.0.1/24`` is 10.0.0.0/24 to NGINX too)."""
    networks = []
    for item in _items(value):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _bad(name, item, "is not an IP address or network (CIDR)") from None
        networks.append(str(_check(name, str(network), validate.cidr)))
    return " ".join(dict.fromkeys(networks))


def _sources(reader: _Reader, values: dict[str, str]) -> None:
    # allowlist-source-range; whitelist-source-range is its alias, read when it is unset.
    allow_name = "allowlist-source-range"
    allow = reader.get(allow_name)
    if allow is None:
        allow_name = "whitelist-source-range"
        allow = reader.get(allow_name)
    else:
        reader.ignore("whitelist-source-range", "allowlist-source-range is set and wins")
    for name, key, value in (
        (allow_name, "allow-sources", allow),
        ("denylist-source-range", "deny-sources", reader.get("denylist-source-range")),
    ):
        if value is None:
            continue
        networks = _networks(name, value)
        if networks:
            values[key] = networks
        else:
            reader.ignore(name, EMPTY_REASON)


_PROTOCOLS = {"http": "http", "https": "https", "grpc": "grpc", "grpcs": "grpcs"}


def _backend_protocol(reader: _Reader, values: dict[str, str]) -> None:
    value = reader.get("backend-protocol")
    if value is None:
        return
    protocol = value.lower()  # ingress-nginx: case-insensitive
    if protocol in _PROTOCOLS:
        values["backend-protocol"] = _PROTOCOLS[protocol]
    elif protocol == "auto_http":
        reader.ignore(
            "backend-protocol",
            "AUTO_HTTP (the client's scheme to the servers) is not supported: HTTP is spoken",
        )
    elif protocol == "fcgi":
        reader.ignore("backend-protocol", _FCGI)
    else:
        raise _bad(
            "backend-protocol", value, "is not one of HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP, FCGI"
        )


_PROXY_SSL = (
    "proxy-ssl-secret",
    "proxy-ssl-verify",
    "proxy-ssl-name",
    "proxy-ssl-server-name",
)


def _on_off(reader: _Reader, name: str) -> str | None:
    value = reader.get(name)
    if value not in (None, "on", "off"):
        raise _bad(name, value or "", "is not on or off")
    return value


def _backend_tls(reader: _Reader, values: dict[str, str], namespace: str | None) -> None:
    if values.get("backend-protocol") not in _TLS_PROTOCOLS:
        reader.ignore_all(_PROXY_SSL, "has no effect: backend-protocol is not HTTPS or GRPCS")
        return
    secret = reader.get("proxy-ssl-secret")
    verify = _on_off(reader, "proxy-ssl-verify")
    if verify == "on" and secret is None:
        reader.ignore("proxy-ssl-verify", "has no effect without proxy-ssl-secret (its ca.crt)")
    elif secret is not None and verify != "on":
        reader.ignore(
            "proxy-ssl-secret",
            "no client certificate is presented to servers; its ca.crt verifies them only"
            " with proxy-ssl-verify: on",
        )
    elif secret is not None:
        values["backend-ca"] = f"secret/{_own_secret(secret, namespace)}"
    sni = reader.checked("proxy-ssl-name", _sni)
    if sni is not None:
        values["backend-sni"] = sni.lower()
    if _on_off(reader, "proxy-ssl-server-name") == "off":
        reader.ignore(
            "proxy-ssl-server-name",
            "SNI is always sent (backend-sni, or the request's Host)",
        )


def _sni(value: str, what: str) -> str:
    if value.startswith("*."):
        raise validate.InvalidValue(f"{what} {validate.show(value)} is a wildcard, not a name")
    return validate.hostname(value)


def _own_secret(value: str, namespace: str | None) -> str:
    """proxy-ssl-secret's ``namespace/name``: a Secret of the Ingress's own namespace
    (ingress-nginx refuses another unless allow-cross-namespace-resources)."""
    secret_namespace, slash, name = value.rpartition("/")
    if not slash:
        name = value  # a bare name: the Ingress's namespace
    elif namespace is None:
        raise _bad(
            "proxy-ssl-secret", value, "names a namespace, and the Ingress's is not known here"
        )
    elif secret_namespace != namespace:
        raise _bad(
            "proxy-ssl-secret",
            value,
            f"is in another namespace than the Ingress's ({namespace}): not allowed",
        )
    _check("proxy-ssl-secret", name, validate.dns_subdomain)
    return name


def _rate_limits(reader: _Reader, values: dict[str, str]) -> None:
    # 0 is no limit, as in ingress-nginx (ratelimit/main.go).
    rps = reader.integer("limit-rps", 0, 1_000_000)
    rpm = reader.integer("limit-rpm", 0, 60_000_000)
    connections = reader.integer("limit-connections", 0, 1_000_000)
    rates = [rps] if rps else []
    if rpm and rpm % 60:
        reader.ignore(
            "limit-rpm",
            f"{rpm} a minute is not a whole number a second; set breakwater.io/rate-limit-rps",
        )
    elif rpm:
        rates.append(rpm // 60)
    if rates:
        values["rate-limit-rps"] = str(min(rates))
    if connections:
        values["rate-limit-connections"] = str(connections)


def _permanent_temporal(reader: _Reader, values: dict[str, str]) -> None:
    # redirect.go: temporal-redirect first (code 300-307, default 302), then
    # permanent-redirect (code 300-308, default 301); only http(s) URLs.
    for kind, default, codes in (
        ("temporal", 302, (301, 302, 303, 307)),
        ("permanent", 301, (301, 302, 303, 307, 308)),
    ):
        url_name, code_name = f"{kind}-redirect", f"{kind}-redirect-code"
        if "redirect-to" in values and reader.get(url_name) is not None:
            reader.ignore_all((url_name, code_name), "temporal-redirect is set and wins")
            continue
        url = reader.checked(url_name, validate.redirect_url)
        if url is None:
            reader.ignore(code_name, f"has no effect without {url_name}")
            continue
        code = reader.integer(code_name, 0, 999)
        if code is not None and code not in codes:
            allowed = ", ".join(str(c) for c in codes)
            raise _bad(code_name, str(code), f"is not one of {allowed}")
        values["redirect-to"] = url
        values["redirect-code"] = str(code or default)


_CORS = (
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
)


def _cors_list(
    reader: _Reader, values: dict[str, str], name: str, check: Callable[[str, str], object]
) -> None:
    value = reader.get(name)
    if value is None:
        return
    items = _items(value)
    if not items:
        reader.ignore(name, EMPTY_REASON)
        return
    for item in items:
        _check(name, item, check)
    if name == "cors-allow-origin" and "*" in items:
        items = ["*"]  # as ingress-nginx: '*' anywhere allows every origin
    values[name] = " ".join(items)


def _cors(reader: _Reader, values: dict[str, str]) -> None:
    if not reader.boolean("enable-cors"):
        reader.ignore_all(_CORS, 'has no effect without enable-cors: "true"')
        return
    values["cors"] = "true"
    _cors_list(reader, values, "cors-allow-origin", validate.http_origin)
    _cors_list(reader, values, "cors-allow-methods", validate.safe_token)
    _cors_list(reader, values, "cors-allow-headers", validate.safe_token)
    _cors_list(reader, values, "cors-expose-headers", validate.safe_token)
    credentials = reader.boolean("cors-allow-credentials")
    if credentials is not None:
        values["cors-allow-credentials"] = _bool_text(credentials)
    max_age = reader.integer("cors-max-age", 0, validate.MAX_CACHE_SECONDS)
    if max_age is not None:
        values["cors-max-age"] = str(max_age)


_HSTS_OPTIONS = ("hsts-max-age", "hsts-include-subdomains", "hsts-preload")


def _hsts(reader: _Reader, values: dict[str, str]) -> None:
    """ingress-nginx's HSTS keys (its ConfigMap's), read per Ingress."""
    if not reader.boolean("hsts"):
        reader.ignore_all(_HSTS_OPTIONS, 'has no effect without hsts: "true"')
        return
    values["hsts"] = "true"
    max_age = reader.integer("hsts-max-age", 0, validate.MAX_CACHE_SECONDS)
    if max_age is not None:
        values["hsts-max-age"] = str(max_age)
    for name in ("hsts-include-subdomains", "hsts-preload"):
        flag = reader.boolean(name)
        if flag is not None:
            values[name] = _bool_text(flag)


def _load_balance(reader: _Reader, values: dict[str, str]) -> None:
    value = reader.get("load-balance")
    if value == "round_robin":
        values["balance"] = "roundrobin"
    elif value == "ewma":
        reader.ignore(
            "load-balance", "Peak EWMA is not offered; breakwater.io/balance: leastconn is nearest"
        )
    elif value in ("chash", "chashsubset", "sticky_balanced", "sticky_persistent"):
        reader.ignore("load-balance", "ingress-nginx's internal value (of upstream-hash-by)")
    elif value is not None:
        raise _bad("load-balance", value, "is not round_robin or ewma")
