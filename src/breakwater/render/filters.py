"""The backend rules of the Gateway API's filters: redirects, the request's header
changes and host and path rewrites, the response's header changes (docs/gateway-api.md).
Every value was validated by the catalog; quoted ones are single-quoted, ``%`` doubled
where HAProxy reads a log-format."""

from __future__ import annotations

from breakwater.catalog.model import Redirect, RouteFeatures
from breakwater.render.words import log_format as _format

_REQUEST = "%[req.hdr(host),field(1,:)]"


def _location(redirect: Redirect, tls: bool) -> str:
    """The Location of a redirect for a request that came over TLS or not (without the
    query, added apart): what the redirect does not set is the request's."""
    scheme = redirect.scheme or ("https" if tls else "http")
    host = redirect.hostname or _REQUEST
    port = redirect.port
    if port is None and redirect.scheme is None:
        port = redirect.https_port if tls else redirect.http_port
    if port == {"http": 80, "https": 443}[scheme]:
        port = None
    if redirect.path is not None:
        path = redirect.path.replace("%", "%%")
    elif redirect.prefix is not None:
        prefix, new = redirect.prefix
        head = "" if prefix == "/" else "".join(f"[{c}]" if c in ".+" else c for c in prefix)
        pattern = f"^{head}/?" if new.endswith("/") else f"^{head}"
        path = f'%[path,regsub("{pattern}","{new.replace("%", "%%")}")]'
    else:
        path = "%[path]"
    return f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"


def redirect_lines(redirect: Redirect) -> list[str]:
    """``http-request redirect`` rules: one per case of the scheme (when the Location
    depends on it) and of the query (kept, with its ``?``, when there is one)."""
    lines = []
    depends = redirect.scheme is None  # the scheme, and the port, are the request's
    for tls in (True, False) if depends else (False,):
        location = _location(redirect, tls)
        # The scheme bw_public saw: X-Forwarded-Proto is its own (a client's is dropped),
        # and holds behind the bw_gateway_<shard> frontends too, where ssl_fc is the
        # unix socket's.
        https = "{ req.hdr(x-forwarded-proto) -m str https }"
        scheme = (f" {https}" if tls else f" !{https}") if depends else ""
        lines.append(
            f"http-request redirect location '{location}?%[query]' code {redirect.code}"
            f" if{scheme} {{ query -m found }}"
        )
        lines.append(
            f"http-request redirect location '{location}' code {redirect.code}"
            + (f" if{scheme}" if scheme else "")
        )
    return lines


def filter_lines(features: RouteFeatures) -> list[str]:
    """The rules of the Gateway API filters of a rule: the redirect; then the request's
    header changes, host and path rewrites; the response's header changes."""
    lines = []
    if features.redirect is not None:
        lines += redirect_lines(features.redirect)
    for op, name, value in features.request_headers:
        if op == "remove":
            lines.append(f"http-request del-header {name}")
        else:
            lines.append(f"http-request {op}-header {name} {_format(value)}")
    if features.set_host:
        lines.append(f"http-request set-header host {features.set_host}")
    if features.set_path:
        lines.append(f"http-request set-path {_format(features.set_path)}")
    for op, name, value in features.response_headers:
        if op == "remove":
            lines.append(f"http-response del-header {name}")
        else:
            lines.append(f"http-response {op}-header {name} {_format(value)}")
    return lines
