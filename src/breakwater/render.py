"""Render the routing model into HAProxy's files.

One entry point, :func:`render_haproxy`, used by the watcher, the lookup plugins and
the modules alike.  The result is a :class:`RenderedConfig`: ``haproxy.cfg`` plus its
content-addressed generation directory (route maps, crt-list, PEM files).  The
configuration names the generation directory, so identical ``haproxy.cfg`` bytes
mean identical files everywhere, and a new set of maps can be checked with
``haproxy -c`` before anything live is touched.

Servers are rendered into fixed slots (:class:`SlotLayout`): each backend keeps free,
disabled slots, so the watcher can add, remove and drain servers through the runtime
API and the rendered file still says exactly what HAProxy runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import jinja2

from breakwater.catalog import Backend, Catalog, Rejection, Route, Server
from breakwater.validate import config_word

FREE_SLOT = "127.0.0.1:1"
"""Address rendered for a free slot (and set through the runtime API when freed)."""

SlotLayout = Mapping[str, list[Server | None]]
DEFAULT_TEMPLATE = "haproxy.cfg.j2"
DEFAULT_VCL_TEMPLATE = "varnish.vcl.j2"


@dataclass(frozen=True)
class HAProxySettings:
    config_dir: str = "/etc/haproxy/breakwater"
    config_file: str = "/etc/haproxy/haproxy.cfg"
    stats_socket: str = "/run/haproxy/admin.sock"
    master_socket: str = "/run/haproxy/master.sock"
    http_binds: tuple[str, ...] = (":80",)
    https_binds: tuple[str, ...] = (":443",)
    # Health endpoint for what balances across edge nodes (DNS, VRRP, a cloud LB):
    # 200 in rotation, 503 out (breakwater.edge.edge_node). Empty: none.
    monitor_binds: tuple[str, ...] = ()
    maxconn: int = 4096  # HAProxy needs about 2 file descriptors per connection
    hard_stop_after: str = "5m"
    timeout_connect: str = "5s"
    timeout_client: str = "60s"
    timeout_server: str = "60s"
    log_target: str = "stdout"
    user: str | None = None
    group: str | None = None
    socket_group: str | None = None  # group allowed on the stats socket (the watcher's)
    template: str | None = None  # a path: the operator's own template
    min_slots: int = 4


@dataclass(frozen=True)
class VarnishSettings:
    """The Varnish tier: where HAProxy sends cacheable requests, and the way back.

    Varnish's misses return to HAProxy through ``return_socket``, a unix socket
    bound by HAProxy's internal frontend: no client can open it, so no header a
    client sends can route around the cache or into the internal frontend.
    """

    enabled: bool = False
    server: str = "127.0.0.1:6081"  # HAProxy server address of Varnish's listener
    return_socket: str = "/run/haproxy/varnish-return.sock"
    return_socket_mode: str = "660"
    return_socket_group: str | None = "varnish"
    admin: str = "127.0.0.1:6082"  # varnishd -T
    secret_file: str = "/etc/varnish/secret"  # varnishd -S
    vcl_file: str = "/etc/varnish/breakwater.vcl"
    template: str | None = None  # a path: the operator's own VCL template
    keep_vcls: int = 3  # loaded VCLs kept (the active one included)
    varnishd: str = "varnishd"
    nodes: tuple[str, ...] = ()  # admin addresses of every edge's Varnish, for ban/purge
    health_interval: str = "1s"


@dataclass(frozen=True)
class GenerationFiles:
    """Absolute paths, inside the generation directory, named by the template."""

    directory: str
    exact_map: str
    prefix_map: str
    crt_list: str


@dataclass
class RenderedConfig:
    config: str
    generation_dir: str
    generation_files: dict[str, str] = field(default_factory=dict)  # relative name -> text
    secret_files: frozenset[str] = frozenset()  # relative names written with mode 0600
    refused: tuple[Rejection, ...] = ()  # what the renderer would not write (see screen)


def map_key(route: Route) -> str:
    return f"{route.host}{route.path}"


def map_value(route: Route) -> str:
    """``backend;flags;ttl;grace;cookies`` -- HAProxy splits it with ``field()``.

    Flags: ``r`` redirect to HTTPS, ``c`` cacheable.  The cache policy fields are
    sent to Varnish as request headers; every part is validated (names, integers).
    """
    flags = ("r" if route.https_redirect else "") + ("c" if route.cache else "")
    cache = route.cache
    policy = (
        [
            str(cache.ttl if cache.ttl is not None else "-"),
            str(cache.grace if cache.grace is not None else "-"),
            "strip" if cache.strip_cookies else "keep",
        ]
        if cache
        else ["-", "-", "-"]
    )
    return ";".join([route.backend, flags or "-", *policy])


_HOST = "req.hdr(host),field(1,:),lower"  # the Host header without port, lower case


@dataclass(frozen=True)
class RouteLookup:
    """Which map lookups the routes need, in order; the template leaves out the rest."""

    sources: list[str]  # HAProxy samples giving the host part of the map key
    exact: bool  # the exact map has entries
    prefix: bool  # the prefix map has entries
    redirect: bool  # some route redirects plain HTTP to HTTPS
    exact_hosts: bool  # some route names a host (not a wildcard, not any host)


def route_lookup(routes: list[Route], exact_map: str, prefix_map: str) -> RouteLookup:
    hosts = {route.host for route in routes}
    exact_hosts = any(not host.startswith("*") for host in hosts)
    sources = [_HOST] if exact_hosts else []
    if any(host.startswith("*.") for host in hosts):
        sources.append(_HOST + ",regsub(^[^.]*,*)")
    if "*" in hosts:
        sources.append("str(*)")
    redirect = any(route.https_redirect for route in routes)
    return RouteLookup(sources, bool(exact_map), bool(prefix_map), redirect, exact_hosts)


def route_maps(routes: list[Route]) -> tuple[str, str]:
    """(exact map, prefix map) text.

    Exact routes and the exact form of each prefix ("/foo" serves "/foo") go to the
    exact map; each prefix "/foo" also goes to the prefix map as "/foo/", so that
    "/foobar" is not served.  HAProxy's map_beg returns the longest prefix.
    """
    exact: dict[str, str] = {}
    prefix: dict[str, str] = {}
    for route in routes:
        if route.match == "exact":
            exact[map_key(route)] = map_value(route)
    for route in routes:
        if route.match != "prefix":
            continue
        if route.path == "/":
            prefix.setdefault(map_key(route), map_value(route))
        else:
            exact.setdefault(map_key(route), map_value(route))
            prefix.setdefault(f"{map_key(route)}/", map_value(route))
    return (
        "".join(f"{key} {value}\n" for key, value in sorted(exact.items())),
        "".join(f"{key} {value}\n" for key, value in sorted(prefix.items())),
    )


@lru_cache(maxsize=8)
def _template(path: str | None, default: str = DEFAULT_TEMPLATE) -> jinja2.Template:
    if path is None:
        source = resources.files("breakwater").joinpath("templates", default).read_text()
    else:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    environment = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return environment.from_string(source)


def server_lines(slots: list[Server | None]) -> str:
    """The ``server`` lines of one backend's slots, for templates.

    The default template's innermost loop, written in Python: at 10,000 backends of
    16 slots, a Jinja2 loop over the slots was most of a render.
    """
    lines = []
    for index, slot in enumerate(slots, 1):
        if slot is None:
            lines.append(f"    server s{index} {FREE_SLOT} disabled\n")
        else:
            weight = " weight 0" if slot.state == "drain" else ""
            lines.append(f"    server s{index} {slot.endpoint}{weight}\n")
    return "".join(lines)


def clear_template_cache() -> None:
    """Forget compiled templates (SIGHUP re-reads an operator's template)."""
    _template.cache_clear()


def render_vcl(
    settings: VarnishSettings, header: str = "Rendered by Breakwater; edits are overwritten."
) -> str:
    """The VCL: the same for 10 cacheable routes or 10,000 (policy comes in headers)."""
    return _template(settings.template, DEFAULT_VCL_TEMPLATE).render(
        settings=settings, header=header
    )


_MAP_WORD = re.compile(r"[!-~]+", re.ASCII)  # one word of a map line: no space, no control
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}", re.ASCII)


# Words joined by newlines: a match is a character no word may hold, or an empty word.
_NOT_CONFIG_WORDS = re.compile(r"[^!-~\n]|[\"'\\#]|\n\n|\A\n|\n\Z|\A\Z")
_NOT_MAP_WORDS = re.compile(r"[^!-~\n]|\n\n|\A\n|\n\Z|\A\Z")


def _backend_words(backend: Backend) -> list[str]:
    options = backend.options
    words = [backend.name, options.balance, options.health_check_interval]
    words += [w for w in (options.health_check_path, options.timeout_connect) if w is not None]
    words += [options.timeout_server] if options.timeout_server is not None else []
    words += [server.endpoint for server in backend.servers]
    return words


def _backend_problem(backend: Backend) -> str | None:
    bad = next((word for word in _backend_words(backend) if not config_word(word)), None)
    return None if bad is None else f"{bad[:60]!r} is not one word of haproxy.cfg"


def _all_clean(catalog: Catalog) -> bool:
    """One pass over the whole catalog: the common case, where nothing is refused."""
    words = [word for backend in catalog.backends.values() for word in _backend_words(backend)]
    if words and _NOT_CONFIG_WORDS.search("\n".join(words)):
        return False
    entries = [text for route in catalog.routes for text in (map_key(route), map_value(route))]
    if entries and _NOT_MAP_WORDS.search("\n".join(entries)):
        return False
    return all(_FILE_NAME.fullmatch(name) for name in catalog.certificates)


def screen(catalog: Catalog) -> tuple[Catalog, tuple[Rejection, ...]]:
    """The catalog without anything the renderer cannot write safely, and what it left out.

    The catalog validates every value by Kubernetes' rules and HAProxy's; this is the
    second line, at the exit: every word written into ``haproxy.cfg`` is printable ASCII
    without whitespace, quotes, ``\\`` or ``#``, every map entry is two words, every
    file name stays inside the generation directory.  What fails is left out with its
    route's object named, never written -- and never expected to happen.
    """
    if _all_clean(catalog):
        return catalog, ()
    refused: list[Rejection] = []
    bad_backends = {}
    for name, backend in catalog.backends.items():
        problem = _backend_problem(backend)
        if problem is not None:
            bad_backends[name] = problem
    routes = []
    for route in catalog.routes:
        problem = bad_backends.get(route.backend)
        if problem is None and not (
            _MAP_WORD.fullmatch(map_key(route)) and _MAP_WORD.fullmatch(map_value(route))
        ):
            problem = f"route {map_key(route)[:60]!r} is not one word of a map file"
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
    used = {route.backend for route in routes}
    default = catalog.default_backend if catalog.default_backend not in bad_backends else None
    backends = {
        name: backend
        for name, backend in catalog.backends.items()
        if name not in bad_backends and (name in used or name == default)
    }
    routed = {route.backend for route in catalog.routes}
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


def render_haproxy(
    catalog: Catalog,
    layout: SlotLayout,
    settings: HAProxySettings,
    header: str = "Rendered by Breakwater; edits are overwritten.",
    varnish: VarnishSettings | None = None,
) -> RenderedConfig:
    """Render ``haproxy.cfg`` and its generation directory (of a :func:`screen`-ed catalog)."""
    catalog, refused = screen(catalog)
    exact_map, prefix_map = route_maps(catalog.routes)
    generation: dict[str, str] = {"routes-exact.map": exact_map, "routes-prefix.map": prefix_map}
    secrets = set()
    for name, certificate in sorted(catalog.certificates.items()):
        generation[f"certs/{name}.pem"] = certificate.pem
        secrets.add(f"certs/{name}.pem")
    digest = hashlib.sha256()
    for name, text in sorted(generation.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    directory = os.path.join(settings.config_dir, f"gen-{digest.hexdigest()[:16]}")
    crt_list = "".join(
        os.path.join(directory, f"certs/{name}.pem") + "\n" for name in sorted(catalog.certificates)
    )
    generation["crt-list"] = crt_list
    files = GenerationFiles(
        directory=directory,
        exact_map=os.path.join(directory, "routes-exact.map"),
        prefix_map=os.path.join(directory, "routes-prefix.map"),
        crt_list=os.path.join(directory, "crt-list"),
    )
    config = _template(settings.template).render(
        catalog=catalog,
        lookup=route_lookup(catalog.routes, exact_map, prefix_map),
        layout=layout,
        settings=settings,
        files=files,
        free_slot=FREE_SLOT,
        server_lines=server_lines,
        header=header,
        varnish=varnish if varnish is not None and varnish.enabled else None,
    )
    return RenderedConfig(config, directory, generation, frozenset(secrets), refused)


def slot_count(servers: int, minimum: int) -> int:
    """Slots for a backend: the next power of two with room to spare."""
    count = max(minimum, 1)
    while count < servers:
        count *= 2
    return count


def assign_slots(
    catalog: Catalog, previous: SlotLayout, minimum: int
) -> dict[str, list[Server | None]]:
    """Place each backend's servers into slots, keeping every server in its old slot.

    A backend grows (to the next power of two) only when its servers no longer fit;
    it never shrinks while it exists, so scaling down needs no reload.
    """
    layout: dict[str, list[Server | None]] = {}
    for name, backend in catalog.backends.items():
        wanted = {(s.address, s.port): s for s in backend.servers}
        old = list(previous.get(name) or [None] * slot_count(len(wanted), minimum))
        slots: list[Server | None] = []
        for slot in old:
            kept = wanted.pop((slot.address, slot.port), None) if slot else None
            slots.append(kept)
        pending = sorted(wanted.values(), key=lambda s: (s.address, s.port))
        for index, slot in enumerate(slots):
            if slot is None and pending:
                slots[index] = pending.pop(0)
        if pending:
            slots.extend(pending)
            slots.extend([None] * (slot_count(len(slots), minimum) - len(slots)))
        layout[name] = slots
    return layout


_BACKEND_LINE = re.compile(r"^backend\s+(\S+)")
_SLOT_LINE = re.compile(r"^\s+server\s+s(\d+)\s+(\S+)(.*)$")


def layout_from_config(config: str) -> dict[str, list[Server | None]]:
    """The server slots a rendered ``haproxy.cfg`` holds (what HAProxy runs now).

    Used at start by the watcher and by the lookup plugin, so a render from the same
    objects gives the same bytes instead of reshuffling the slots.
    """
    layout: dict[str, list[Server | None]] = {}
    backend: str | None = None
    for line in config.splitlines():
        if match := _BACKEND_LINE.match(line):
            backend = match[1] if match[1].startswith("be_") else None
            continue
        match = _SLOT_LINE.match(line)
        if backend is None or match is None:
            continue
        slots = layout.setdefault(backend, [])
        if int(match[1]) != len(slots) + 1:
            return {}  # not a layout we rendered: start afresh
        options = match[3].split()
        if "disabled" in options:
            slots.append(None)
            continue
        host, _colon, port = match[2].rpartition(":")
        try:
            server = Server(
                host.strip("[]"), int(port), "drain" if "0" in options[1:2] else "ready"
            )
        except ValueError:
            return {}
        slots.append(server)
    return layout
