"""What a backend section says besides its balance, timeouts, health check and servers:
how HAProxy talks to the servers (protocol, TLS, PROXY protocol, retries, stickiness)
and the rules of route features (docs/traffic.md).  Nothing here is rendered for a
backend that uses none, so plain routes render as they always did.

Every value was validated by the catalog (``breakwater.validate``); what is written
as a quoted argument is single-quoted, where HAProxy reads no escape and no
environment variable, and a ``%`` is doubled where HAProxy reads a log-format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from breakwater.catalog import Backend, BackendOptions, Route, RouteFeatures
from breakwater.catalog.model import Canary, Cors
from breakwater.render.filters import filter_lines
from breakwater.render.words import log_format as _format
from breakwater.render.words import quoted as _quoted

# Statuses HAProxy 2.6 itself answers with, for which ``http-error`` sets the page.
HTTP_ERROR_STATUSES = frozenset(
    {200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504}
)
HTML = "'text/html; charset=utf-8'"
# The client's connection was TLS. A backend section also serves requests decided in
# the bw_gateway_<shard> frontends, behind unix sockets where ssl_fc is false: they set
# txn.bw_https from bw_public's own X-Forwarded-Proto. (bw_internal, Varnish's way
# back, never meets these rules: route features and the cache do not combine.)
HTTPS = "{ ssl_fc } || { var(txn.bw_https) -m bool }"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ca_file(pem: str) -> str:
    """The generation directory's name of a CA bundle."""
    return f"ca/{_digest(pem)}.pem"


def page_file(body: str) -> str:
    """The generation directory's name of an error page."""
    return f"errors/{_digest(body)}.html"


def generation_files(backends: Iterable[Backend]) -> dict[str, str]:
    """The CA bundles and error pages the backends name, by relative file name."""
    files: dict[str, str] = {}
    for backend in backends:
        options = backend.options
        if options.ca_pem:
            files[ca_file(options.ca_pem)] = options.ca_pem
        if options.features is not None:
            for _status, body in options.features.error_pages:
                files[page_file(body)] = body
    return files


def server_options(options: BackendOptions, directory: str) -> list[str]:
    """The ``default-server`` words for how HAProxy talks to the servers (``directory``:
    the generation directory, where the CA bundle is)."""
    words: list[str] = []
    checked = options.health_check_path is not None
    if options.h2 and not options.tls:
        words += ["proto", "h2"]
        words += ["check-proto", "h2"] if checked else []
    if options.tls:
        if options.ca_pem:
            ca = f"{directory}/{ca_file(options.ca_pem)}"
            words += ["ssl", "verify", "required", "ca-file", ca]
        else:
            words += ["ssl", "verify", "none"]
        words += ["sni", f"str({options.sni})" if options.sni else "req.hdr(host),field(1,:)"]
        alpn = "h2" if options.h2 else "http/1.1"
        words += ["alpn", alpn]
        if checked:
            words += ["check-alpn", alpn] + (["check-sni", options.sni] if options.sni else [])
    if options.proxy_protocol:
        words += ["send-proxy-v2" if options.proxy_protocol == "v2" else "send-proxy"]
        words += ["check-send-proxy"] if checked else []
    return words


def backend_lines(backend: Backend, directory: str) -> str:
    """The lines of ``backend``'s section for its options beyond the template's own
    (balance, connect/server timeouts, health check): empty for a plain backend."""
    options = backend.options
    lines: list[str] = []
    if options.timeout_tunnel:
        lines.append(f"timeout tunnel {options.timeout_tunnel}")
    if options.timeout_queue:
        lines.append(f"timeout queue {options.timeout_queue}")
    features = options.features
    retries, retry_on = options.retries, options.retry_on
    if features is not None and features.retries is not None:  # a Gateway API retry
        retries, retry_on = features.retries, features.retry_on
    if retries is not None:
        lines.append(f"retries {retries}")
        lines.append("option redispatch 1")
    if retry_on:
        lines.append("retry-on " + " ".join(retry_on))
    sticky = options.sticky
    if sticky is not None:
        words = ["cookie", sticky.name, "insert", "indirect", "nocache", "dynamic"]
        words += ["httponly"] if sticky.httponly else []
        words += ["secure"] if sticky.secure else []
        words += ["maxlife", sticky.ttl] if sticky.ttl else []
        lines.append(" ".join(words))
        # The cookie names a server by a hash of its address and this key: a slot the
        # runtime API gives another server never inherits the clients of the one before.
        lines.append(f"dynamic-cookie-key {_digest('breakwater ' + backend.name)}")
        if retries is None:
            lines.append("option redispatch 1")
    words = server_options(options, directory)
    if words:
        lines.append("default-server " + " ".join(words))
    if options.features is not None:
        lines += feature_lines(options.features, directory)
    return "".join(f"    {line}\n" for line in lines)


def feature_lines(features: RouteFeatures, directory: str) -> list[str]:
    """The rules of an object's route features, in the order they apply: who may ask,
    how often, how much; answers the edge gives itself; the path the servers get;
    then the response."""
    lines: list[str] = []
    if features.redirect is not None:  # a Gateway API redirect: no other rule runs
        return filter_lines(features)
    if features.allow_sources:
        lines.append(
            "http-request deny deny_status 403 if !{ src " + " ".join(features.allow_sources) + " }"
        )
    if features.deny_sources:
        lines.append(
            "http-request deny deny_status 403 if { src " + " ".join(features.deny_sources) + " }"
        )
    rps, connections = features.rate_limit_rps, features.rate_limit_connections
    if rps or connections:
        stored = ["http_req_rate(1s)"] if rps else []
        stored += ["conn_cur"] if connections else []
        lines.append(f"stick-table type ipv6 size 1m expire 60s store {','.join(stored)}")
        lines.append("http-request track-sc0 src")
        if rps:
            lines.append(f"http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {rps} }}")
        if connections:
            lines.append(
                f"http-request deny deny_status 429 if {{ sc_conn_cur(0) gt {connections} }}"
            )
    if features.max_body_size:
        lines.append(
            "http-request deny deny_status 413 if"
            f" {{ req.hdr_val(content-length) gt {features.max_body_size} }}"
        )
    cors = features.cors
    if cors is not None:
        lines += _cors_request(cors)
    if features.redirect_to:
        lines.append(
            f"http-request redirect location {_format(features.redirect_to)}"
            f" code {features.redirect_code}"
        )
    if features.app_root:
        lines.append(
            f"http-request redirect location {_format(features.app_root)} code 302 if {{ path / }}"
        )
    lines += _rewrite(features.rewrite)
    lines += filter_lines(features)
    if features.hsts:
        lines.append(
            f"http-response set-header Strict-Transport-Security {_format(features.hsts)}"
            f" if {HTTPS}"
        )
    if cors is not None:
        lines += _cors_response(cors)
    for status, body in features.error_pages:
        page = f"{directory}/{page_file(body)}"
        if status in HTTP_ERROR_STATUSES:
            lines.append(f"http-error status {status} content-type {HTML} file {page}")
        lines.append(
            f"http-response return status {status} content-type {HTML} file {page}"
            f" if {{ status {status} }}"
        )
    return lines


def _rewrite(rewrites: tuple[tuple[str, str], ...]) -> list[str]:
    if len(rewrites) == 1:
        regex, target = rewrites[0]
        return [f"http-request replace-path {_quoted(regex)} {_format(target)}"]
    # Several: the first that matches, and only it (a rewritten path may match another).
    lines = []
    for number, (regex, _target) in enumerate(rewrites, 1):
        lines.append(
            f"http-request set-var(txn.bw_rewrite) int({number})"
            f" if !{{ var(txn.bw_rewrite) -m found }} {{ path_reg {_quoted(regex)} }}"
        )
    for number, (regex, target) in enumerate(rewrites, 1):
        lines.append(
            f"http-request replace-path {_quoted(regex)} {_format(target)}"
            f" if {{ var(txn.bw_rewrite) -m int {number} }}"
        )
    return lines


def _origin_allowed(cors: Cors, origin: str = "req.hdr(origin)") -> str:
    """The condition: the request's Origin (or the variable holding it) is allowed."""
    if "*" in cors.origins:
        return f"{{ {origin} -m found }}"
    return f"{{ {origin} -m str " + " ".join(cors.origins) + " }"


def _allow_origin(cors: Cors) -> str:
    return "'*'" if "*" in cors.origins else "'%[var(txn.bw_origin)]'"


def _cors_request(cors: Cors) -> list[str]:
    headers = [
        f"hdr Access-Control-Allow-Origin {_allow_origin(cors)}",
        f"hdr Access-Control-Allow-Methods {_format(', '.join(cors.methods))}",
        f"hdr Access-Control-Allow-Headers {_format(', '.join(cors.headers))}",
        f"hdr Access-Control-Max-Age {cors.max_age}",
    ]
    if cors.credentials:
        headers.append("hdr Access-Control-Allow-Credentials true")
    return [
        "http-request set-var(txn.bw_origin) req.hdr(origin)",
        "http-request return status 204 " + " ".join(headers) + " if METH_OPTIONS"
        " { req.hdr(access-control-request-method) -m found } " + _origin_allowed(cors),
    ]


def _cors_response(cors: Cors) -> list[str]:
    allowed = _origin_allowed(cors, "var(txn.bw_origin)")
    lines = [
        f"http-response set-header Access-Control-Allow-Origin {_allow_origin(cors)} if {allowed}"
    ]
    if cors.credentials:
        lines.append(f"http-response set-header Access-Control-Allow-Credentials true if {allowed}")
    if cors.expose_headers:
        lines.append(
            "http-response set-header Access-Control-Expose-Headers"
            f" {_format(', '.join(cors.expose_headers))} if {allowed}"
        )
    return lines


def canaries(routes: Iterable[Route]) -> tuple[Canary, ...]:
    """The canaries the routes use, each once, in a stable order."""
    found = {route.canary.key(): route.canary for route in routes if route.canary is not None}
    return tuple(found[key] for key in sorted(found))


def canary_lines(canaries_used: Iterable[Canary]) -> str:
    """The frontend's rules that send a share of a route's requests to its canary
    (before the route's own ``use_backend``): the header, then the cookie, decide
    (``always`` / ``never``, or the header's value); the weight, otherwise."""
    # The canary's key ends the route's map value: each rule starts with a comparison
    # of the value's last bytes, which fails at once for every other route.
    lines = []
    for canary in canaries_used:
        route = f"{{ var(txn.bw_route) -m end ;{canary.key()} }}"
        use = f"use_backend {canary.backend} if {route}"
        decided = []
        if canary.header:
            header = f"req.hdr({canary.header})"
            if canary.header_value:
                # Another value decides nothing: the cookie and the weight do.
                value = _quoted(canary.header_value)
                lines.append(f"{use} {{ {header} -m str -- {value} }}")
            else:
                lines.append(f"{use} {{ {header} -m str always }}")
                decided.append(f"!{{ {header} -m str always never }}")
        if canary.cookie:
            cookie = f"req.cook({canary.cookie})"
            lines.append(
                f"{use} {' '.join(decided)} {{ {cookie} -m str always }}".replace("  ", " ")
            )
            decided.append(f"!{{ {cookie} -m str always never }}")
        if canary.weight:
            lines.append(_joined(use, *decided, f"{{ rand(100) -m int lt {canary.weight} }}"))
    return "".join(f"    {line}\n" for line in lines)


def _joined(*parts: str) -> str:
    return " ".join(parts)
