"""The Gateway API conformance suite's HTTPRoute cases, as data for our integration tests.

The files beside this module are transcribed from kubernetes-sigs/gateway-api (conformance/,
Apache-2.0; the commit is in each file's header): the Go tests' manifests and expectations,
none of their code.

``base.yaml``
    The objects every case needs (upstream conformance/base/manifests.yaml): the GatewayClass
    ``breakwater`` (controllerName ``breakwater.io/edge``), the Namespaces with their labels
    (plus ``kubernetes.io/metadata.name``, which the API server adds), the Gateways and the
    echo backends' Services (infra-backend-v1/v2/v3, app-backend-v1/v2, web-backend; ClusterIP,
    port 8080 -> targetPort 3000). No Deployment: a test starts ``echo.EchoServer`` instances
    (namespace = the Service's, pod name ``<service>-<hash>-<hash>``) as their endpoints.
``secrets.yaml``
    The TLS Secrets to generate (namespace, name, the hosts the certificate must cover).
``cases/<kebab-name>.yaml``
    One case per conformance test (see :class:`Case`): its manifests (placeholders already
    replaced: ``{GATEWAY_CLASS_NAME}`` is ``breakwater``), the requests with what they expect,
    the status the test asserts, and notes for what the format cannot say.

Semantics of a request entry (:class:`CaseRequest`), as the suite's CompareRoundTrip has them:

- ``request``: ``path`` is the request target, query included. ``host`` omitted: the Host is
  the Gateway's address (``ip``, or ``ip:port`` off the scheme's default port). ``method``
  defaults to GET. ``scheme`` http or https (then ``sni`` is the TLS server name; the client
  trusts the certificate of the Gateway's Secret and verifies it against the SNI).
  ``protocol``: omitted HTTP/1.1 (also over TLS), ``h2`` HTTP/2 over TLS (ALPN), ``h2c``
  HTTP/2 cleartext with prior knowledge, ``websocket``. ``port`` and ``gateway`` override
  the case's ``listener_port`` and ``gateway`` for this request. Redirects are never
  followed. The client always sends ``X-Echo-Set-Header`` (:meth:`CaseRequest.echo_set_header`,
  empty unless ``backend_set_response_headers``).
- ``status``: one code or a list, any of which passes (default 200). An expected 504 or 408
  accepts either of the two (the suite treats them as the same timeout).
- Only for a 200 or 204 answer, the echoed request is checked: ``namespace`` must equal the
  echo's namespace (a missing ``namespace`` expects none: the answer must not be the echo's
  JSON), the pod name must start with ``backend`` (when given), and the request that reached
  the backend must match :meth:`CaseRequest.expected`: without ``expected_request`` that is
  the request itself (path, method, host if given, every header); with it, its ``path``
  (omitted: the request's; ``''``: no echo JSON at all, i.e. the Gateway itself answered),
  ``method`` (default GET), ``host`` (only if given), ``headers`` (only if given; each name
  case-insensitive, its values joined with ``,``) and ``absent_headers``.
- ``response_headers``: name (case-insensitive) -> expected value, or a list of acceptable
  values, compared with the header's values joined by ``,`` (spaces removed from both sides
  when ``ignore_whitespace``); ``absent_response_headers`` must not be there. Checked on 200
  and 204 answers only.
- ``redirect`` (3xx answers): the Location's ``scheme``, ``path``, ``host`` (unchecked when
  omitted) and ``port``. Without ``port`` the Location must have none or the scheme's
  default (80 for http, 443 for https).
- ``weights``: the share (percent) of requests each backend must get.
- ``mirrored_to``: backends (namespace, Service) that must also receive the request, each
  about ``percent`` of the time when given (else every time).
- ``unique_query_param``: before each attempt append ``&name=<fresh uuid4>`` (``?`` if the
  path has no query) to the request's path and to the expected path.
- ``delete_before``: objects to delete before sending this request (a mutation mid-test).
- ``repeat`` / ``backend_from_header``: send the request that many more times after the
  first success; each echo must list exactly one value of that request header, and the pod
  name must start with it.
- ``websocket_messages``: text (str) or binary (bytes) frames to send, each echoed back.

A status check (:class:`StatusCheck`) is, by ``check``:

- ``condition`` (the default): an HTTPRoute's condition for its ``parent`` Gateway (its
  parent status for that Gateway, controllerName ``breakwater.io/edge``; for Accepted True
  the status's parentRef must spell out group ``gateway.networking.k8s.io`` and kind
  ``Gateway``, and the namespace when the route is in another one); a Gateway's
  condition, for one ``listener`` (``*``: every listener) or the Gateway's own when there is
  no listener; ``name`` ``*`` means every Gateway of the namespace except those annotated
  ``gateway-api/skip-this-for-readiness: "true"``. ``reason`` omitted: any. Every condition
  must carry observedGeneration = the object's metadata.generation.
- ``address``: the Gateway has an address in its status.
- ``listener``: that listener's ``attached_routes``, and ``supported_kinds`` (each must be
  listed; an empty list: none may be).
- ``listener_count``: the Gateway's status lists exactly ``count`` listeners.
- ``no_accepted_parents``: the HTTPRoute has no parent status, or one with Accepted False.
- ``zero_routes``: the Gateway lists no listener, or one with no attached route.

The checks run in the order given, each waited for until it holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent
CASES_DIR = DATA / "cases"
CONTROLLER_NAME = "breakwater.io/edge"
GATEWAY_CLASS = "breakwater"
CORE_FEATURES = frozenset({"Gateway", "HTTPRoute", "ReferenceGrant"})
LEVELS = ("core", "extended")
PROTOCOLS = ("h2", "h2c", "websocket")
CHECKS = (
    "condition",
    "address",
    "listener",
    "listener_count",
    "no_accepted_parents",
    "zero_routes",
)
TIMEOUT_STATUSES = frozenset({408, 504})

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY


class CaseError(ValueError):
    """A data file that does not follow the format."""


def kebab_name(name: str) -> str:
    """The file name (without .yaml) of the case with this ShortName."""
    tokens = re.findall(r"HTTPRoute|HTTPS|HTTP|H2C|CORS|URL|WebSocket|[A-Z][a-z]*|[0-9]+", name)
    if "".join(tokens) != name:
        raise CaseError(f"{name!r}: not a ShortName made of capitalised words")
    return "-".join(token.lower() for token in tokens)


# --- reading helpers ------------------------------------------------------------------------


class _Fields:
    """One mapping of a file, read key by key; unknown keys are errors."""

    def __init__(self, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise CaseError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.where = where
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def fail(self, key: str, message: str) -> CaseError:
        return CaseError(f"{self.where}: {key}: {message}")

    def req_str(self, key: str) -> str:
        value = self.opt_str(key)
        if value is None:
            raise self.fail(key, "missing")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {value!r}")
        return value

    def opt_int(self, key: str) -> int | None:
        value = self._get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self.fail(key, f"expected an integer, got {value!r}")
        return value

    def req_int(self, key: str) -> int:
        value = self.opt_int(key)
        if value is None:
            raise self.fail(key, "missing")
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def strs(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def str_map(self, key: str) -> Mapping[str, str] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(key, f"expected a mapping of strings, got {value!r}")
        return MappingProxyType(dict(value))

    def raw(self, key: str) -> Any:
        return self._get(key)

    def done(self) -> None:
        unknown = set(self.data) - self.seen
        if unknown:
            raise CaseError(f"{self.where}: unknown keys {sorted(unknown)}")


def _ref(where: str, value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise CaseError(f"{where}: expected namespace/name, got {value!r}")
    return namespace, name


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """The request to make."""

    path: str
    host: str | None = None
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=_empty)
    scheme: str = "http"
    sni: str | None = None
    protocol: str | None = None  # None: HTTP/1.1; else one of PROTOCOLS
    port: int | None = None  # None: the case's listener_port
    gateway: str | None = None  # None: the case's gateway
    body: str | None = None

    @classmethod
    def parse(cls, where: str, data: object) -> HttpRequest:
        f = _Fields(where, data)
        request = cls(
            path=f.req_str("path"),
            host=f.opt_str("host"),
            method=f.opt_str("method") or "GET",
            headers=f.str_map("headers") or EMPTY,
            scheme=f.opt_str("scheme") or "http",
            sni=f.opt_str("sni"),
            protocol=f.opt_str("protocol"),
            port=f.opt_int("port"),
            gateway=f.opt_str("gateway"),
            body=f.opt_str("body"),
        )
        f.done()
        if not request.path.startswith("/"):
            raise f.fail("path", f"must start with '/': {request.path!r}")
        if request.scheme not in ("http", "https"):
            raise f.fail("scheme", f"http or https, not {request.scheme!r}")
        if request.scheme == "https" and request.sni is None:
            raise f.fail("sni", "an https request needs its TLS server name")
        if request.protocol is not None and request.protocol not in PROTOCOLS:
            raise f.fail("protocol", f"one of {PROTOCOLS}, not {request.protocol!r}")
        if request.gateway is not None:
            _ref(f"{where}: gateway", request.gateway)
        return request


@dataclass(frozen=True)
class ExpectedRequest:
    """What the backend must have received (see the module's docstring)."""

    path: str
    method: str = "GET"
    host: str | None = None  # None: not checked
    headers: Mapping[str, str] | None = None  # None: not checked
    absent_headers: tuple[str, ...] = ()

    @property
    def answered_by_gateway(self) -> bool:
        """An empty path: the answer must not come from the echo backend."""
        return self.path == ""


@dataclass(frozen=True)
class Redirect:
    """The parts of a redirect's Location that are checked."""

    scheme: str
    path: str
    host: str | None = None  # None: not checked
    port: int | None = None  # None: absent or the scheme's default port

    def port_matches(self, port: int | None) -> bool:
        """Whether a Location with this port (None: none) passes."""
        if self.port is not None:
            return port == self.port
        return port is None or port == {"http": 80, "https": 443}.get(self.scheme)


@dataclass(frozen=True)
class Mirror:
    """A backend that also receives the request (``percent`` of the time, if given)."""

    namespace: str
    backend: str
    percent: int | None = None


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class CaseRequest:
    """One request of a case and what it must produce."""

    request: HttpRequest
    statuses: tuple[int, ...] = (200,)
    namespace: str | None = None
    backend: str | None = None
    expected_request: ExpectedRequest | None = None  # as written; see expected()
    # name -> the acceptable values
    response_headers: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    absent_response_headers: tuple[str, ...] = ()
    ignore_whitespace: bool = False
    redirect: Redirect | None = None
    weights: Mapping[str, int] = field(default_factory=_empty)
    mirrored_to: tuple[Mirror, ...] = ()
    backend_set_response_headers: Mapping[str, str] = field(default_factory=_empty)
    unique_query_param: str | None = None
    delete_before: tuple[ObjectRef, ...] = ()
    repeat: int = 0
    backend_from_header: str | None = None
    websocket_messages: tuple[str | bytes, ...] = ()

    @property
    def status(self) -> int:
        """The (first) expected status."""
        return self.statuses[0]

    def status_matches(self, status: int) -> bool:
        if status in TIMEOUT_STATUSES and TIMEOUT_STATUSES & set(self.statuses):
            return True
        return status in self.statuses

    def expected(self) -> ExpectedRequest:
        """What the backend must receive, with the suite's defaults applied."""
        written = self.expected_request
        if written is None:
            return ExpectedRequest(
                path=self.request.path,
                method=self.request.method,
                host=self.request.host,
                headers=self.request.headers,
            )
        return written

    def echo_set_header(self) -> str:
        """The value of the X-Echo-Set-Header request header (sent even when empty)."""
        return ",".join(f"{k}:{v}" for k, v in self.backend_set_response_headers.items())

    @classmethod
    def parse(cls, where: str, data: object) -> CaseRequest:
        f = _Fields(where, data)
        request = HttpRequest.parse(f"{where}: request", f.raw("request"))
        statuses = _statuses(f)
        expected = _expected(f"{where}: expected_request", f.raw("expected_request"), request)
        redirect = _redirect(f"{where}: redirect", f.raw("redirect"))
        out = cls(
            request=request,
            statuses=statuses,
            namespace=f.opt_str("namespace"),
            backend=f.opt_str("backend"),
            expected_request=expected,
            response_headers=_response_headers(f),
            absent_response_headers=f.strs("absent_response_headers") or (),
            ignore_whitespace=f.flag("ignore_whitespace"),
            redirect=redirect,
            weights=_weights(f),
            mirrored_to=tuple(
                _mirror(f"{where}: mirrored_to[{i}]", m)
                for i, m in enumerate(_list(f, "mirrored_to"))
            ),
            backend_set_response_headers=f.str_map("backend_set_response_headers") or EMPTY,
            unique_query_param=f.opt_str("unique_query_param"),
            delete_before=tuple(
                _object_ref(f"{where}: delete_before[{i}]", o)
                for i, o in enumerate(_list(f, "delete_before"))
            ),
            repeat=f.opt_int("repeat") or 0,
            backend_from_header=f.opt_str("backend_from_header"),
            websocket_messages=_websocket_messages(f),
        )
        f.done()
        if out.backend is not None and out.namespace is None:
            raise f.fail("namespace", "a request expecting a backend needs its namespace")
        if out.redirect is not None and not all(300 <= s < 400 for s in out.statuses):
            raise f.fail("redirect", f"given for a non-redirect status {out.statuses}")
        if (out.repeat > 0) != (out.backend_from_header is not None):
            raise f.fail("repeat", "repeat and backend_from_header go together")
        return out


def _list(f: _Fields, key: str) -> list[Any]:
    value = f.raw(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise f.fail(key, f"expected a list, got {value!r}")
    return value


def _statuses(f: _Fields) -> tuple[int, ...]:
    value = f.raw("status")
    if value is None:
        return (200,)
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in values
    ):
        raise f.fail("status", f"expected a status code or a list of them, got {value!r}")
    return tuple(values)


def _expected(where: str, data: object, request: HttpRequest) -> ExpectedRequest | None:
    if data is None:
        return None
    f = _Fields(where, data)
    path = f.opt_str("path")
    out = ExpectedRequest(
        path=request.path if path is None else path,
        method=f.opt_str("method") or "GET",
        host=f.opt_str("host"),
        headers=f.str_map("headers"),
        absent_headers=f.strs("absent_headers") or (),
    )
    f.done()
    return out


def _redirect(where: str, data: object) -> Redirect | None:
    if data is None:
        return None
    f = _Fields(where, data)
    out = Redirect(
        scheme=f.req_str("scheme"),
        path=f.req_str("path"),
        host=f.opt_str("host"),
        port=f.opt_int("port"),
    )
    f.done()
    return out


def _response_headers(f: _Fields) -> Mapping[str, tuple[str, ...]]:
    value = f.raw("response_headers")
    if value is None:
        return EMPTY
    if not isinstance(value, dict):
        raise f.fail("response_headers", f"expected a mapping, got {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for name, expected in value.items():
        values = expected if isinstance(expected, list) else [expected]
        if not isinstance(name, str) or not values or not all(isinstance(v, str) for v in values):
            raise f.fail("response_headers", f"{name!r}: expected a string or strings")
        out[name] = tuple(values)
    return MappingProxyType(out)


def _weights(f: _Fields) -> Mapping[str, int]:
    value = f.raw("weights")
    if value is None:
        return EMPTY
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and 0 <= v <= 100 for k, v in value.items()
    ):
        raise f.fail("weights", f"expected backend: percent, got {value!r}")
    if sum(value.values()) != 100:
        raise f.fail("weights", f"the shares add up to {sum(value.values())}, not 100")
    return MappingProxyType(dict(value))


def _mirror(where: str, data: object) -> Mirror:
    f = _Fields(where, data)
    out = Mirror(
        namespace=f.req_str("namespace"), backend=f.req_str("backend"), percent=f.opt_int("percent")
    )
    f.done()
    return out


def _object_ref(where: str, data: object) -> ObjectRef:
    f = _Fields(where, data)
    out = ObjectRef(
        kind=f.req_str("kind"), namespace=f.req_str("namespace"), name=f.req_str("name")
    )
    f.done()
    return out


def _websocket_messages(f: _Fields) -> tuple[str | bytes, ...]:
    out: list[str | bytes] = []
    for message in _list(f, "websocket_messages"):
        if isinstance(message, str):
            out.append(message)
        elif isinstance(message, list) and all(
            isinstance(b, int) and 0 <= b <= 255 for b in message
        ):
            out.append(bytes(message))
        else:
            raise f.fail("websocket_messages", f"text or a list of bytes, not {message!r}")
    return tuple(out)


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCheck:
    """One assertion about status (see the module's docstring)."""

    kind: str
    namespace: str
    name: str
    check: str = "condition"
    parent: str | None = None  # HTTPRoute conditions: the Gateway, namespace/name
    listener: str | None = None  # Gateway: a listener's name, or "*" for every listener
    type: str | None = None
    status: str | None = None
    reason: str | None = None  # None: any reason
    attached_routes: int | None = None
    supported_kinds: tuple[str, ...] | None = None
    count: int | None = None

    @classmethod
    def parse(cls, where: str, data: object) -> StatusCheck:
        f = _Fields(where, data)
        out = cls(
            kind=f.req_str("kind"),
            namespace=f.req_str("namespace"),
            name=f.req_str("name"),
            check=f.opt_str("check") or "condition",
            parent=f.opt_str("parent"),
            listener=f.opt_str("listener"),
            type=f.opt_str("type"),
            status=f.opt_str("status"),
            reason=f.opt_str("reason"),
            attached_routes=f.opt_int("attached_routes"),
            supported_kinds=f.strs("supported_kinds"),
            count=f.opt_int("count"),
        )
        f.done()
        if out.kind not in ("Gateway", "HTTPRoute"):
            raise f.fail("kind", f"Gateway or HTTPRoute, not {out.kind!r}")
        if out.check not in CHECKS:
            raise f.fail("check", f"one of {CHECKS}, not {out.check!r}")
        if out.check == "condition":
            if out.type is None or out.status not in ("True", "False"):
                raise f.fail("type", "a condition check needs type and status True/False")
            if out.kind == "HTTPRoute":
                if out.parent is None:
                    raise f.fail("parent", "an HTTPRoute condition is about one parent")
                _ref(f"{where}: parent", out.parent)
        elif out.check == "listener" and (out.listener is None or out.attached_routes is None):
            raise f.fail("listener", "a listener check needs listener and attached_routes")
        elif out.check == "listener_count" and out.count is None:
            raise f.fail("count", "missing")
        return out


# --- cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One conformance test."""

    name: str  # the test's ShortName
    source: str  # the Go file upstream
    level: str  # core or extended
    features: tuple[str, ...]
    gateway: str  # namespace/name: where requests go unless a request says otherwise
    listener_port: int
    manifests: tuple[Mapping[str, Any], ...]
    requests: tuple[CaseRequest, ...]
    status_checks: tuple[StatusCheck, ...] = ()
    notes: str = ""
    provisional: bool = False
    path: Path = field(default=Path(), compare=False)

    def target(self, request: CaseRequest | HttpRequest) -> tuple[str, int]:
        """The Gateway (namespace/name) and port a request goes to."""
        http = request.request if isinstance(request, CaseRequest) else request
        return http.gateway or self.gateway, http.port or self.listener_port

    def objects(self, kind: str) -> list[Mapping[str, Any]]:
        return [m for m in self.manifests if m.get("kind") == kind]

    @classmethod
    def parse(cls, path: Path, data: object) -> Case:
        where = path.name
        f = _Fields(where, data)
        manifests = _list(f, "manifests")
        for i, manifest in enumerate(manifests):
            _manifest(f"{where}: manifests[{i}]", manifest)
        out = cls(
            name=f.req_str("name"),
            source=f.req_str("source"),
            level=f.req_str("level"),
            features=f.strs("features") or (),
            gateway=f.req_str("gateway"),
            listener_port=f.req_int("listener_port"),
            manifests=tuple(manifests),
            requests=tuple(
                CaseRequest.parse(f"{where}: requests[{i}]", r)
                for i, r in enumerate(_list(f, "requests"))
            ),
            status_checks=tuple(
                StatusCheck.parse(f"{where}: status_checks[{i}]", c)
                for i, c in enumerate(_list(f, "status_checks"))
            ),
            notes=f.opt_str("notes") or "",
            provisional=f.flag("provisional"),
            path=path,
        )
        f.done()
        _ref(f"{where}: gateway", out.gateway)
        if out.level not in LEVELS:
            raise f.fail("level", f"core or extended, not {out.level!r}")
        expected_level = "core" if set(out.features) <= CORE_FEATURES else "extended"
        if out.level != expected_level:
            raise f.fail("level", f"{out.level}, but the features make it {expected_level}")
        if not out.features:
            raise f.fail("features", "missing")
        return out


def _manifest(where: str, data: object) -> None:
    if not isinstance(data, dict):
        raise CaseError(f"{where}: expected an object")
    metadata = data.get("metadata")
    if not (
        isinstance(data.get("apiVersion"), str)
        and isinstance(data.get("kind"), str)
        and isinstance(metadata, dict)
        and isinstance(metadata.get("name"), str)
    ):
        raise CaseError(f"{where}: an object needs apiVersion, kind and metadata.name")
    placeholder = re.search(r"\{[A-Z_]+\}", yaml.safe_dump(data))
    if placeholder:
        raise CaseError(f"{where}: a placeholder is left: {placeholder.group()}")


@dataclass(frozen=True)
class TLSSecret:
    """A kubernetes.io/tls Secret for the harness to generate."""

    namespace: str
    name: str
    hosts: tuple[str, ...]


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def load_case(path: Path) -> Case:
    return Case.parse(path, _load_yaml(path))


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    """Every case, by file name."""
    return [load_case(path) for path in sorted(directory.glob("*.yaml"))]


def load_base(path: Path = DATA / "base.yaml") -> list[dict[str, Any]]:
    """The base objects, in order (the GatewayClass first)."""
    with path.open(encoding="utf-8") as stream:
        docs = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    for i, doc in enumerate(docs):
        _manifest(f"{path.name}[{i}]", doc)
    return docs


def load_secrets(path: Path = DATA / "secrets.yaml") -> list[TLSSecret]:
    data = _load_yaml(path)
    if not isinstance(data, list):
        raise CaseError(f"{path.name}: expected a list")
    out = []
    for i, entry in enumerate(data):
        f = _Fields(f"{path.name}[{i}]", entry)
        secret = TLSSecret(
            namespace=f.req_str("namespace"), name=f.req_str("name"), hosts=f.strs("hosts") or ()
        )
        f.done()
        if not secret.hosts:
            raise f.fail("hosts", "missing")
        out.append(secret)
    return out


def services(objects: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (namespace, name) of the Services among these objects."""
    return {
        (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for o in objects
        if o.get("kind") == "Service"
    }
