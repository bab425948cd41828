"""The renderer's own check at the exit: nothing it cannot write safely is written."""

from __future__ import annotations

import re
from collections.abc import Mapping

from breakwater.catalog import Backend, BackendOptions, Catalog, Rejection, Route, RouteFeatures
from breakwater.render.maps import map_key, map_value, route_maps
from breakwater.validate import CONFIG_WORD_CHARS, config_word, quotable

_MAP_WORD = re.compile(r"[!-~]+", re.ASCII)  # one word of a map line: no space, no control


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}", re.ASCII)


def _backend_words(backend: Backend) -> list[str]:
    """What of a backend is written as words of haproxy.cfg (ports are checked apart)."""
    options = backend.options
    words = [backend.name, options.balance, options.health_check_interval]
    words += [w for w in (options.health_check_path, options.timeout_connect) if w]
    words += [options.timeout_server] if options.timeout_server else []
    words += _option_words(options)
    if options.features is not None:
        words += _feature_words(options.features)
    words += [server.address for server in backend.servers]
    return words


def _option_words(options: BackendOptions) -> list[str]:
    words = [w for w in (options.timeout_tunnel, options.timeout_queue, options.sni) if w]
    words += list(options.retry_on)
    if options.sticky is not None:
        words += [options.sticky.name] + ([options.sticky.ttl] if options.sticky.ttl else [])
    return words


def _feature_words(features: RouteFeatures) -> list[str]:
    """Words of the features' rules; what is written quoted must be quotable."""
    words = list(features.allow_sources) + list(features.deny_sources)
    if features.cors is not None:
        words += [o for o in features.cors.origins if o != "*"]
        quoted = [*features.cors.methods, *features.cors.headers, *features.cors.expose_headers]
    else:
        quoted = []
    quoted += [features.hsts or "", features.redirect_to or "", features.app_root or ""]
    quoted += [part for rewrite in features.rewrite for part in rewrite]
    for _op, name, value in features.request_headers + features.response_headers:
        words.append(name)
        quoted.append(value)
    words += [features.set_host] if features.set_host else []
    words += [features.timeout] if features.timeout else []
    words += list(features.retry_on)
    quoted += [features.set_path or ""]
    redirect = features.redirect
    if redirect is not None:
        words += [redirect.hostname] if redirect.hostname else []
        quoted += [redirect.path or "", *(redirect.prefix or ())]
    if not all(quotable(text) for text in quoted):
        words.append("'")  # refused below, as any word that is not one
    return words


def _route_clean(route: Route) -> bool:
    """The words and quoted values of a route's Gateway API conditions (none for the
    routes of other objects: a route's map key and value are checked as map words)."""
    words, quoted = [], []
    for conditions, _alternative in route.chain:
        words += [conditions.method] if conditions.method else []
        quoted += [conditions.path_regex] if conditions.path_regex else []
        for name, _kind, value in conditions.headers + conditions.query:
            words.append(name)
            quoted.append(value)
    return (not words or _words_clean(words)) and all(quotable(text) for text in quoted)


def _ports_valid(backend: Backend) -> bool:
    return all(
        isinstance(s.port, int) and not isinstance(s.port, bool) and 0 < s.port < 65536
        for s in backend.servers
    )


def _backend_problem(backend: Backend) -> str | None:
    bad = next((word for word in _backend_words(backend) if not config_word(word)), None)
    if bad is not None:
        return f"{bad[:60]!r} is not one word of haproxy.cfg"
    return None if _ports_valid(backend) else "a server port is not a port number"


# A negated class, so a search over all the words joined is one pass in C.
_NOT_WORD_CHARS = re.compile(rf"[^\n{CONFIG_WORD_CHARS}]", re.ASCII)


def _words_clean(words: list[str]) -> bool:
    text = "\n".join(words)
    if _NOT_WORD_CHARS.search(text) or "\n\n" in text:
        return False
    return not text.startswith("\n") and not text.endswith("\n") and bool(text or not words)


_MAP_TEXT = re.compile(r"(?:[!-~]+ [!-~]+\n)*", re.ASCII)


def _map_clean(text: str) -> bool:
    """Every line two words: ``key value`` (one pass in C)."""
    return _MAP_TEXT.fullmatch(text) is not None


def _all_clean(catalog: Catalog, map_texts: tuple[str, ...], clean: Mapping[str, Backend]) -> bool:
    """One pass over the whole catalog and the map files rendered from it: the common
    case, where nothing is refused (tens of milliseconds at 10,000 backends).  A backend
    that is the very object ``clean`` holds under its name passed before, and is skipped."""
    fresh = [b for name, b in catalog.backends.items() if clean.get(name) is not b]
    words = [word for backend in fresh for word in _backend_words(backend)]
    if not _words_clean(words):
        return False
    if not all(_ports_valid(backend) for backend in fresh):
        return False
    if not all(_map_clean(text) for text in map_texts):
        return False
    if not all(_route_clean(route) for route in catalog.routes if route.chain):
        return False
    return all(_FILE_NAME.fullmatch(name) for name in catalog.certificates)


def screen(
    catalog: Catalog,
    map_texts: tuple[str, ...] = (),
    clean: Mapping[str, Backend] | None = None,
) -> tuple[Catalog, tuple[Rejection, ...]]:
    """The catalog without anything the renderer cannot write safely, and what it left out.

    The catalog validates every value by Kubernetes' rules and HAProxy's; this is the
    second line, at the exit: every word written into ``haproxy.cfg`` is printable ASCII
    without whitespace, quotes, ``\\`` or ``#``, every map entry is two words, every
    file name stays inside the generation directory.  What fails is left out with its
    route's object named, never written -- and never expected to happen.

    ``clean``: backends a screen passed before (the sections HAProxy runs), by name;
    the very same objects are not checked again.
    """
    if _all_clean(catalog, map_texts or route_maps(catalog.routes), clean or {}):
        return catalog, ()
    refused: list[Rejection] = []
    bad_backends = {}
    for name, backend in catalog.backends.items():
        problem = _backend_problem(backend)
        if problem is not None:
            bad_backends[name] = problem
    routes = []
    for route in catalog.routes:
        problem = next((bad_backends[n] for n in route.backends if n in bad_backends), None)
        if problem is None and not (
            _MAP_WORD.fullmatch(map_key(route)) and _MAP_WORD.fullmatch(map_value(route))
        ):
            problem = f"route {map_key(route)[:60]!r} is not one word of a map file"
        if problem is None and route.chain and not _route_clean(route):
            problem = f"a condition of route {map_key(route)[:60]!r} is not writable"
        if problem is None:
            routes.append(route)
        else:
            refused.append(Rejection(route.source, f"refused by the renderer: {problem}"))
    certificates = {}
    for name, certificate in catalog.certificates.items():
        if _FILE_NAME.fullmatch(name):
            certificates[name] = certificate
        else:
            problem = f"certificate file name {name[:60]!r}"
            refused.append(Rejection(certificate.source, f"refused by the renderer: {problem}"))
    if not refused and not bad_backends:
        return catalog, ()
    used = {name for route in routes for name in route.backends}
    default = catalog.default_backend if catalog.default_backend not in bad_backends else None
    # Sections no route used before (idle spares, kept sections) stay: only backends
    # whose routes were all refused go with them.
    unrouted = set(catalog.backends) - {n for r in catalog.routes for n in r.backends}
    unrouted.discard(catalog.default_backend or "")
    backends = {
        name: backend
        for name, backend in catalog.backends.items()
        if name not in bad_backends and (name in used or name == default or name in unrouted)
    }
    routed = {name for route in catalog.routes for name in route.backends}
    for name in sorted(set(bad_backends) - routed):
        refused.append(Rejection(f"backend {name[:60]!r}", bad_backends[name]))
    screened = Catalog(
        routes=routes,
        backends=backends,
        certificates=certificates,
        default_backend=default,
        rejected=catalog.rejected,
    )
    return screened, tuple(dict.fromkeys(refused))
