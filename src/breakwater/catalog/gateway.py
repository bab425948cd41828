"""The Gateway API (``gateway.networking.k8s.io/v1``): GatewayClasses of our controller,
their Gateways' listeners, the HTTPRoutes attached to them and the ReferenceGrants that
let them reach across namespaces -- into the catalog's routes, and the status the spec
defines for each, reported (never written to etcd).  docs/gateway-api.md says what is
supported and how it is rendered.

An HTTPRoute's matches become *candidates*: a host, a path (exact, or a prefix -- a
regular expression's literal prefix) and the conditions the rest of the match asks
(method, headers, query parameters, the regular expression, the listener's scheme).
:func:`breakwater.catalog.precedence.merge` turns them, and every other route, into the
catalog's routes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from breakwater import validate
from breakwater.catalog.builder import Builder, as_list, as_mapping
from breakwater.catalog.model import (
    Backend,
    BackendOptions,
    Conditions,
    MatchType,
    Redirect,
    Rejected,
    Route,
    RouteFeatures,
    Split,
    describe,
)
from breakwater.catalog.options import normalise_prefix
from breakwater.catalog.precedence import NO_ROUTE, Candidate
from breakwater.catalog.sources import literal_prefix
from breakwater.catalog.tls import secret_certificate
from breakwater.cluster.index import ClusterIndex, Object
from breakwater.validate import InvalidValue, reason_of

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")

# Answers the edge gives itself for a rule with nothing to send its requests to.
STATUS_500 = "bw_status_500"

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
# Bounds on what one HTTPRoute can make the edge do, besides catalog.max_*_per_object.
MAX_RULES = 64  # as the CRD's own validation
MAX_MATCHES = 64
MAX_CONDITIONS = 16  # header or query matches of one match
MAX_LISTENERS = 64


def condition(kind: str, status: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def _address(value: str) -> dict[str, str]:
    """A GatewayStatusAddress: an IP address, or a hostname."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return {"type": "Hostname", "value": value}
    return {"type": "IPAddress", "value": value}


def _generation(obj: Object, conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``conditions`` of ``obj``'s generation (observedGeneration, as the spec asks)."""
    metadata = obj.get("metadata")
    generation = metadata.get("generation") if isinstance(metadata, Mapping) else None
    if isinstance(generation, int) and not isinstance(generation, bool):
        for item in conditions:
            item["observedGeneration"] = generation
    return conditions


@dataclass
class Listener:
    gateway: tuple[str, str]
    name: str
    port: int
    protocol: str
    hostname: str | None
    allowed_from: str = "Same"
    selector: Mapping[str, Any] | None = None
    accepted: bool = True
    programmed: bool = True  # served: routes attached to an unprogrammed one serve nothing
    conditions: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[dict[str, str]] = field(default_factory=list)  # supportedKinds
    attached: int = 0

    def allows(self, namespace: str, index: ClusterIndex) -> bool:
        if self.allowed_from == "All":
            return True
        if self.allowed_from == "Same":
            return namespace == self.gateway[0]
        namespace_object = index.get("Namespace", "", namespace)
        labels: Mapping[str, Any] = {}
        if namespace_object is not None:
            metadata = namespace_object.get("metadata")
            found = metadata.get("labels") if isinstance(metadata, Mapping) else None
            labels = found if isinstance(found, Mapping) else {}
        return _selected(self.selector or {}, {"kubernetes.io/metadata.name": namespace, **labels})


def _selected(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A metav1.LabelSelector's verdict on ``labels``."""
    for key, value in as_mapping(selector.get("matchLabels"), "matchLabels").items():
        if labels.get(key) != value:
            return False
    for expression in as_list(selector.get("matchExpressions"), "matchExpressions"):
        expression = as_mapping(expression, "a matchExpression")
        label, operator = str(expression.get("key")), expression.get("operator")
        values = as_list(expression.get("values"), "values")
        if operator == "In" and labels.get(label) not in values:
            return False
        if operator == "NotIn" and labels.get(label) in values:
            return False
        if operator == "Exists" and label not in labels:
            return False
        if operator == "DoesNotExist" and label in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise InvalidValue(f"label selector operator {validate.show(operator)} is unknown")
    return True


def gateway_host(host: str) -> str:
    """The catalog's host of a Gateway API hostname: ``*.d`` (any name under ``d``, to
    the Gateway API) is ``**.d``; an Ingress's ``*.d`` is one label only."""
    return "*" + host if host.startswith("*.") else host


def intersect(listener: str | None, route: str) -> str | None:
    """The hostname a request must have to match both, or None (the spec's rules)."""
    if listener is None or listener == route:
        return route
    if listener.startswith("*."):
        suffix = listener[1:]
        if route.startswith("*."):
            if route[1:].endswith(suffix):
                return route
            return listener if suffix.endswith(route[1:]) else None
        return route if route.endswith(suffix) else None
    if route.startswith("*."):
        return listener if listener.endswith(route[1:]) else None
    return None


@dataclass
class GatewayState:
    """What the build found: listeners of our Gateways, and the status of everything."""

    classes: set[str] = field(default_factory=set)
    listeners: dict[tuple[str, str], list[Listener]] = field(default_factory=dict)
    status: dict[str, Any] = field(
        default_factory=lambda: {"gatewayclasses": {}, "gateways": {}, "httproutes": {}}
    )


def _ident(obj: Object) -> tuple[str, str]:
    metadata = as_mapping(obj.get("metadata"), "metadata")
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _created(obj: Object) -> str:
    metadata = obj.get("metadata")
    created = metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None
    return created if isinstance(created, str) else ""


def granted(
    index: ClusterIndex,
    from_kind: str,
    from_ns: str,
    to_group: str,
    to_kind: str,
    to: tuple[str, str],
) -> bool:
    """Whether a ReferenceGrant in the namespace of ``to`` lets ``from_kind`` objects of
    ``from_ns`` refer to it."""
    namespace, name = to
    # Unsorted: any grant will do.  Called only for the references of an object built
    # afresh (an unchanged HTTPRoute is replayed while no grant changed).
    for (grant_ns, _grant), grant in index.by_kind.get("ReferenceGrant", {}).items():
        if grant_ns != namespace:
            continue
        try:
            spec = as_mapping(grant.get("spec"), "spec")
            froms = [as_mapping(f, "from") for f in as_list(spec.get("from"), "spec.from")]
            tos = [as_mapping(t, "to") for t in as_list(spec.get("to"), "spec.to")]
        except InvalidValue:
            continue
        if not any(
            f.get("group") == GROUP and f.get("kind") == from_kind and f.get("namespace") == from_ns
            for f in froms
        ):
            continue
        if any(
            (t.get("group") or "") == to_group
            and t.get("kind") == to_kind
            and (not t.get("name") or t.get("name") == name)
            for t in tos
        ):
            return True
    return False


def _classes(index: ClusterIndex, builder: Builder, state: GatewayState) -> None:
    for (_ns, name), gateway_class in index.all("GatewayClass"):
        try:
            spec = as_mapping(gateway_class.get("spec"), "spec")
        except InvalidValue as exc:
            builder.reject(describe("GatewayClass", ("", name)), reason_of(exc))
            continue
        if spec.get("controllerName") != builder.settings.gateway_controller_name:
            continue
        state.classes.add(name)
        state.status["gatewayclasses"][name] = {
            "conditions": _generation(gateway_class, [condition("Accepted", True, "Accepted")])
        }


def _listener(
    builder: Builder, ident: tuple[str, str], raw: object, index: ClusterIndex
) -> Listener:
    entry = as_mapping(raw, "a listener")
    name = validate.dns_label(entry.get("name"), "listener name")
    port = validate.port_number(entry.get("port"), "listener port")
    protocol = entry.get("protocol")
    hostname = entry.get("hostname")
    if hostname is not None:
        hostname = validate.hostname(hostname, fold_case=False)
    listener = Listener(ident, name, port, str(protocol), hostname)
    allowed = as_mapping(entry.get("allowedRoutes"), "allowedRoutes")
    namespaces = as_mapping(allowed.get("namespaces"), "allowedRoutes.namespaces")
    listener.allowed_from = str(namespaces.get("from") or "Same")
    if listener.allowed_from not in ("Same", "All", "Selector"):
        raise Rejected(f"allowedRoutes.namespaces.from {validate.show(listener.allowed_from)}")
    if listener.allowed_from == "Selector":
        listener.selector = as_mapping(namespaces.get("selector"), "namespaces.selector")
    resolved = condition("ResolvedRefs", True, "ResolvedRefs")
    kinds = as_list(allowed.get("kinds"), "allowedRoutes.kinds")
    wrong = [
        k
        for k in kinds
        if (as_mapping(k, "a kind").get("group") or GROUP) != GROUP or k.get("kind") != "HTTPRoute"
    ]
    if not kinds or len(wrong) < len(kinds):
        listener.kinds = [{"group": GROUP, "kind": "HTTPRoute"}]
    if wrong:  # the listener takes the kinds it can, and says which it cannot
        resolved = condition("ResolvedRefs", False, "InvalidRouteKinds", "only HTTPRoute")
        listener.accepted = len(wrong) < len(kinds)
    if protocol not in ("HTTP", "HTTPS"):
        listener.accepted = False
        listener.conditions = [
            condition("Accepted", False, "UnsupportedProtocol", f"{protocol} is not served"),
            resolved,
            condition("Programmed", False, "Invalid"),
        ]
        return listener
    if protocol == "HTTPS":
        tls = as_mapping(entry.get("tls"), "tls")
        if (tls.get("mode") or "Terminate") != "Terminate":
            raise Rejected(f"listener {name}: tls.mode Passthrough is not an HTTP listener")
        refs = as_list(tls.get("certificateRefs"), "tls.certificateRefs")
        problem = None if refs else "no certificateRefs"
        for ref in refs:
            ref = as_mapping(ref, "a certificateRef")
            namespace = str(ref.get("namespace") or ident[0])
            secret = str(ref.get("name"))
            if (ref.get("group") or "") != "" or (ref.get("kind") or "Secret") != "Secret":
                problem = problem or f"certificateRef {secret} is not a Secret"
                continue
            if namespace != ident[0] and not granted(
                index, "Gateway", ident[0], "", "Secret", (namespace, secret)
            ):
                resolved = condition(
                    "ResolvedRefs",
                    False,
                    "RefNotPermitted",
                    f"no ReferenceGrant for {namespace}/{secret}",
                )
                continue
            try:
                builder.add_certificate(secret_certificate(builder, namespace, secret))
            except (Rejected, InvalidValue) as exc:
                problem = problem or str(exc)
        if problem is not None:
            resolved = condition("ResolvedRefs", False, "InvalidCertificateRef", problem)
    # A listener without its certificate is not served (no route attaches to it).
    programmed = listener.accepted and resolved["reason"] not in (
        "InvalidCertificateRef",
        "RefNotPermitted",
    )
    listener.conditions = [
        condition("Accepted", listener.accepted, "Accepted" if listener.accepted else "Invalid"),
        resolved,
        condition("Programmed", programmed, "Programmed" if programmed else "Invalid"),
    ]
    listener.programmed = programmed
    return listener


def _gateways(index: ClusterIndex, builder: Builder, state: GatewayState) -> None:
    for ident, gateway in index.all("Gateway"):
        owner = describe("Gateway", ident)
        try:
            spec = as_mapping(gateway.get("spec"), "spec")
            if spec.get("gatewayClassName") not in state.classes:
                continue
            raw = as_list(spec.get("listeners"), "spec.listeners")
            if not raw or len(raw) > MAX_LISTENERS:
                raise Rejected(f"1 to {MAX_LISTENERS} listeners")
            listeners = [_listener(builder, ident, entry, index) for entry in raw]
            names = [listener.name for listener in listeners]
            if len(set(names)) != len(names):
                raise Rejected("two listeners have the same name")
        except Exception as exc:
            builder.reject(owner, reason_of(exc))
            state.status["gateways"][f"{ident[0]}/{ident[1]}"] = {
                "conditions": [
                    condition("Accepted", False, "Invalid", reason_of(exc)),
                    condition("Programmed", False, "Invalid"),
                ],
                "listeners": {},
            }
            continue
        state.listeners[ident] = listeners
        for listener in listeners:
            _generation(gateway, listener.conditions)
        programmed = any(listener.programmed for listener in listeners)
        addresses = builder.settings.gateway_addresses
        state.status["gateways"][f"{ident[0]}/{ident[1]}"] = {
            "conditions": _generation(
                gateway,
                [
                    condition("Accepted", True, "Accepted"),
                    condition("Programmed", programmed, "Programmed" if programmed else "Invalid"),
                ],
            ),
            "addresses": [_address(address) for address in addresses],
            "listeners": {},
        }


# --- HTTPRoute rules ---------------------------------------------------------------


def _match_path(raw: Mapping[str, Any]) -> tuple[str, MatchType, str | None]:
    """(route path, match, regex) of an HTTPPathMatch."""
    kind = raw.get("type") or "PathPrefix"
    value = raw.get("value", "/")
    if kind == "Exact":
        return validate.matched_path(value, "path"), "exact", None
    if kind == "PathPrefix":
        return normalise_prefix(validate.matched_path(value, "path")), "prefix", None
    if kind == "RegularExpression":
        pattern = validate.regex(value, "path")
        return validate.matched_path(literal_prefix(pattern), "path"), "prefix", pattern
    raise Rejected(f"path match type {validate.show(kind)} is unknown")


def _pairs(raw: object, what: str, header: bool) -> tuple[tuple[str, str, str], ...]:
    """Header or query parameter matches: (name, exact | regex, value); of two with
    the same name, the first counts (the spec's rule)."""
    entries = as_list(raw, what)
    if len(entries) > MAX_CONDITIONS:
        raise Rejected(f"more than {MAX_CONDITIONS} {what}")
    found: dict[str, tuple[str, str, str]] = {}
    for entry in entries:
        entry = as_mapping(entry, f"a {what} entry")
        name = (
            validate.header_name(entry.get("name"), f"{what} name")
            if header
            else validate.safe_token(entry.get("name"), f"{what} name")
        )
        kind = entry.get("type") or "Exact"
        if kind == "Exact":
            value = validate.header_value(entry.get("value"), f"{what} {name} value")
            pair = (name, "exact", value)
        elif kind == "RegularExpression":
            pair = (name, "regex", validate.regex(entry.get("value"), f"{what} {name} value"))
        else:
            raise Rejected(f"{what} match type {validate.show(kind)} is unknown")
        found.setdefault(name, pair)
    return tuple(found.values())


def _header_ops(raw: object, what: str) -> tuple[tuple[str, str, str], ...]:
    modifier = as_mapping(raw, what)
    ops: list[tuple[str, str, str]] = []
    for op in ("set", "add"):
        for entry in as_list(modifier.get(op), f"{what}.{op}"):
            entry = as_mapping(entry, f"a {what}.{op} entry")
            name = validate.header_name(entry.get("name"), f"{what}.{op} name")
            ops.append((op, name, validate.header_value(entry.get("value"), f"{what} {name}")))
    for name in as_list(modifier.get("remove"), f"{what}.remove"):
        ops.append(("remove", validate.header_name(name, f"{what}.remove name"), ""))
    if len(ops) > MAX_CONDITIONS * 2:
        raise Rejected(f"more than {MAX_CONDITIONS * 2} header changes in {what}")
    return tuple(ops)


def _path_modifier(raw: object, what: str, prefixes: list[str]) -> tuple[str | None, str | None]:
    """(full path, new prefix) of an HTTPPathModifier."""
    modifier = as_mapping(raw, what)
    kind = modifier.get("type")
    if kind == "ReplaceFullPath":
        return validate.path(modifier.get("replaceFullPath")), None
    if kind == "ReplacePrefixMatch":
        if not prefixes:
            raise Rejected(f"{what}: ReplacePrefixMatch needs a PathPrefix match")
        return None, validate.path(modifier.get("replacePrefixMatch"))
    raise Rejected(f"{what}.type {validate.show(kind)} is unknown")


def _escape(path: str) -> str:
    """A path as a regular expression matching itself (its characters are a URL path's:
    only ``.`` and ``+`` mean something else, and a class needs no backslash)."""
    return "".join(f"[{char}]" if char in ".+*?()$^|{}" else char for char in path)


def prefix_rewrites(prefixes: list[str], new: str) -> tuple[tuple[str, str], ...]:
    """ReplacePrefixMatch as replace-path rules: the matched prefix (as a whole segment)
    becomes ``new``; a ``new`` ending in ``/`` takes the matched prefix's own ``/``."""
    rules = []
    for prefix in sorted(set(prefixes), key=lambda p: (-len(p), p)):
        head = "" if prefix == "/" else _escape(prefix)
        if new.endswith("/"):
            rules.append((f"^{head}/?(.*)$", new + "\\1"))
        else:
            rules.append((f"^{head}(/.*)?$", new + "\\1"))
    return tuple(rules)


@dataclass
class _RouteContext:
    builder: Builder
    index: ClusterIndex
    ident: tuple[str, str]
    owner: str
    http_port: int | None
    https_port: int | None
    unresolved: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    # Hostnames of our HTTPS listeners (None: any): a route attached to HTTP listeners
    # only is kept off HTTPS only where one of these could take its host.
    https_hostnames: list[str | None] = field(default_factory=list)

    def scheme(self, host: str, schemes: set[str]) -> Literal["http", "https"] | None:
        if len(schemes) == 2:
            return None
        if "https" in schemes:
            return "https"
        name = "*" + host[2:] if host.startswith("**.") else host
        for hostname in self.https_hostnames:
            if hostname is None or name == "*" or intersect(hostname, name) is not None:
                return "http"
        return None


_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
}


def _filters(context: _RouteContext, raw: object, prefixes: list[str]) -> RouteFeatures | None:
    features = RouteFeatures()
    filters = as_list(raw, "filters")
    kinds = [as_mapping(f, "a filter").get("type") for f in filters]
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        raise Rejected("a rule may not have both RequestRedirect and URLRewrite")
    for entry in filters:
        kind = entry.get("type")
        body = _FILTER_FIELDS.get(str(kind))
        if body is not None and not isinstance(entry.get(body), Mapping):
            raise Rejected(f"filter {kind} without its {body}")
        if kind == "RequestHeaderModifier":
            ops = _header_ops(entry.get("requestHeaderModifier"), "requestHeaderModifier")
            features = replace(features, request_headers=features.request_headers + ops)
        elif kind == "ResponseHeaderModifier":
            ops = _header_ops(entry.get("responseHeaderModifier"), "responseHeaderModifier")
            features = replace(features, response_headers=features.response_headers + ops)
        elif kind == "RequestRedirect":
            features = replace(features, redirect=_redirect(context, entry, prefixes))
        elif kind == "URLRewrite":
            rewrite = as_mapping(entry.get("urlRewrite"), "urlRewrite")
            host = rewrite.get("hostname")
            if host is not None:
                features = replace(features, set_host=validate.hostname(host, fold_case=False))
            if rewrite.get("path") is not None:
                full, new = _path_modifier(rewrite["path"], "urlRewrite.path", prefixes)
                if full is not None:
                    features = replace(features, set_path=full)
                if new is not None:
                    features = replace(features, rewrite=prefix_rewrites(prefixes, new))
        else:
            raise Rejected(f"filter {validate.show(kind)} is not supported")
    return None if features == RouteFeatures() else features


def _redirect(context: _RouteContext, entry: Mapping[str, Any], prefixes: list[str]) -> Redirect:
    raw = as_mapping(entry.get("requestRedirect"), "requestRedirect")
    scheme = raw.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        raise Rejected(f"requestRedirect.scheme {validate.show(scheme)} is not http or https")
    code = raw.get("statusCode", 302)
    if code not in (301, 302, 303, 307, 308):
        raise Rejected(f"requestRedirect.statusCode {validate.show(code)} is not a redirect")
    hostname = raw.get("hostname")
    if hostname is not None:
        hostname = validate.hostname(hostname, fold_case=False)
        if hostname.startswith("*"):
            raise Rejected("requestRedirect.hostname may not be a wildcard")
    port = raw.get("port")
    if port is not None:
        port = validate.port_number(port, "requestRedirect.port")
    path, prefix = None, None
    if raw.get("path") is not None:
        path, new = _path_modifier(raw["path"], "requestRedirect.path", prefixes)
        if new is not None:
            if len(set(prefixes)) != 1:
                raise Rejected("requestRedirect ReplacePrefixMatch needs exactly one prefix")
            prefix = (prefixes[0], new)
    return Redirect(
        code=code,
        scheme=scheme,
        hostname=hostname,
        port=port,
        path=path,
        prefix=prefix,
        http_port=context.http_port,
        https_port=context.https_port,
    )


def _merged(rule: RouteFeatures | None, ref: RouteFeatures | None) -> RouteFeatures | None:
    """A rule's filters, then its backendRef's (which win where both set one thing)."""
    if rule is None or ref is None:
        return ref or rule
    return replace(
        rule,
        timeout=ref.timeout or rule.timeout,
        retries=rule.retries if ref.retries is None else ref.retries,
        retry_on=ref.retry_on or rule.retry_on,
        request_headers=rule.request_headers + ref.request_headers,
        response_headers=rule.response_headers + ref.response_headers,
        set_host=ref.set_host or rule.set_host,
        set_path=ref.set_path or rule.set_path,
        rewrite=ref.rewrite or rule.rewrite,
        redirect=ref.redirect or rule.redirect,
    )


def _redirect_backend(context: _RouteContext, features: RouteFeatures) -> str:
    """A section with no server: its only rule is the redirect."""
    name = f"bw_redirect_{features.digest()}"
    context.builder.add_backend(
        Backend(name, "", "redirect", "redirect", BackendOptions(features=features), ())
    )
    return name


def _backend_ref(
    context: _RouteContext, raw: object, rule: RouteFeatures | None, prefixes: list[str]
) -> tuple[str, int]:
    """(backend name, weight) of a backendRef; an unusable one answers 500 and says why
    in the route's ResolvedRefs."""
    ref = as_mapping(raw, "a backendRef")
    weight = ref.get("weight", 1)
    weight = validate.integer(weight, "backendRef weight", 0, 1_000_000)
    namespace = str(ref.get("namespace") or context.ident[0])
    name = ref.get("name")
    features = _merged(rule, _filters(context, ref.get("filters"), prefixes))
    if features is not None and features.redirect is not None:
        return _redirect_backend(context, features), weight
    if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service":
        context.unresolved.append(("InvalidKind", f"backendRef {name} is not a Service"))
        return STATUS_500, weight
    if namespace != context.ident[0] and not granted(
        context.index, "HTTPRoute", context.ident[0], "", "Service", (namespace, str(name))
    ):
        context.unresolved.append(
            ("RefNotPermitted", f"no ReferenceGrant for Service {namespace}/{name}")
        )
        return STATUS_500, weight
    service = validate.service_name(name, "backendRef name")
    if context.builder.read("Service", namespace, service) is None:
        context.unresolved.append(("BackendNotFound", f"Service {namespace}/{service} not found"))
        return STATUS_500, weight
    if ref.get("port") is None:
        raise Rejected(f"backendRef {service}: port is required for a Service")
    port = validate.port_number(ref.get("port"), "backendRef port")
    options = BackendOptions(features=features)
    try:
        backend = context.builder.checked_backend(namespace, service, port, options, context.owner)
    except Rejected as exc:
        context.unresolved.append(("BackendNotFound", f"Service {namespace}/{service}: {exc}"))
        return STATUS_500, weight
    return backend, weight


_GO_DURATION = re.compile(r"(?:(\d{1,5})h)?(?:(\d{1,5})m(?!s))?(?:(\d{1,5})s)?(?:(\d{1,5})ms)?")


def go_duration(value: object, what: str) -> int:
    """A Gateway API Duration (``1h``, ``30s``, ``500ms``, ``1m30s``) in milliseconds."""
    found = _GO_DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if found is None or not any(found.groups()):
        raise Rejected(f"{what} {validate.show(value)} is not a duration such as 500ms or 1m30s")
    hours, minutes, seconds, millis = (int(part or 0) for part in found.groups())
    total = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
    if total > 24 * 3600 * 1000:
        raise Rejected(f"{what} {validate.show(value)} is longer than a day")
    return total


# The statuses HAProxy's retry-on can retry (besides failures to connect or answer).
RETRY_CODES = frozenset({404, 408, 425, 500, 501, 502, 503, 504})


def _timing(context: _RouteContext, rule: Mapping[str, Any]) -> RouteFeatures | None:
    """A rule's timeouts and retry: the server's time to answer (the shorter of the
    request and backendRequest timeouts, 0s: none of the route's own) and retries."""
    features = RouteFeatures()
    timeouts = as_mapping(rule.get("timeouts"), "timeouts")
    limits = [
        go_duration(timeouts[key], f"timeouts.{key}")
        for key in ("request", "backendRequest")
        if timeouts.get(key) is not None
    ]
    if [limit for limit in limits if limit]:
        features = replace(features, timeout=f"{min(limit for limit in limits if limit)}ms")
    retry = as_mapping(rule.get("retry"), "retry")
    if retry:
        attempts = validate.integer(retry.get("attempts", 1), "retry.attempts", 0, 10)
        codes = [
            validate.integer(c, "retry code", 400, 599)
            for c in as_list(retry.get("codes"), "retry.codes")
        ]
        unable = sorted(set(codes) - RETRY_CODES)
        if unable:
            raise Rejected(f"retry code {unable[0]}: HAProxy retries only {sorted(RETRY_CODES)}")
        if retry.get("backoff") is not None:
            go_duration(retry["backoff"], "retry.backoff")
            context.builder.ignore(context.owner, "retry.backoff ignored: retries are at once")
        on = ("conn-failure", "empty-response", "response-timeout", *map(str, sorted(set(codes))))
        features = replace(features, retries=attempts, retry_on=on)
    return None if features == RouteFeatures() else features


def _rule_value(context: _RouteContext, rule: Mapping[str, Any], prefixes: list[str]) -> Route:
    """Where a rule sends what it matches: a backend, backends by weight, a redirect,
    or the edge's own 500."""
    features = _merged(_timing(context, rule), _filters(context, rule.get("filters"), prefixes))
    owner = context.owner
    if features is not None and features.redirect is not None:
        return Route("", "/", "prefix", _redirect_backend(context, features), owner)
    refs = as_list(rule.get("backendRefs"), "backendRefs")
    if len(refs) > 16:
        raise Rejected("more than 16 backendRefs in a rule")
    weighted = [_backend_ref(context, ref, features, prefixes) for ref in refs]
    weighted = [(name, weight) for name, weight in weighted if weight > 0]
    if not weighted:
        return Route("", "/", "prefix", STATUS_500, owner)
    shares: dict[str, int] = {}
    for name, weight in weighted:
        shares[name] = shares.get(name, 0) + weight
    if len(shares) == 1:
        return Route("", "/", "prefix", next(iter(shares)), owner)
    backends = tuple(shares.items())
    return Route("", "/", "prefix", backends[-1][0], owner, split=Split(backends))


def _parents(
    context: _RouteContext, route: Object, state: GatewayState
) -> tuple[list[dict[str, Any]], dict[str, set[str]], list[tuple[tuple[str, str], int]]]:
    """The route's parent statuses; the hosts it serves with the schemes of the
    listeners that take each (empty: attached nowhere); the listeners it is attached
    to, (Gateway, position), one entry per parentRef that attaches it."""
    spec = as_mapping(route.get("spec"), "spec")
    hostnames = [
        validate.hostname(h, fold_case=False) for h in as_list(spec.get("hostnames"), "hostnames")
    ]
    hosts: dict[str, set[str]] = {}
    parents = []
    joined: list[tuple[tuple[str, str], int]] = []
    for raw in as_list(spec.get("parentRefs"), "spec.parentRefs"):
        ref = as_mapping(raw, "a parentRef")
        if (ref.get("group") or GROUP) != GROUP or (ref.get("kind") or "Gateway") != "Gateway":
            continue
        gateway = (str(ref.get("namespace") or context.ident[0]), str(ref.get("name")))
        listeners = state.listeners.get(gateway)
        if listeners is None:
            continue  # not one of ours: another controller reports on it
        section, port = ref.get("sectionName"), ref.get("port")
        named = f"{gateway[0]}/{gateway[1]}" + (f"/{section}" if section else "")
        chosen = [
            (position, listener)
            for position, listener in enumerate(listeners)
            if (section is None or listener.name == section)
            and (port is None or listener.port == port)
        ]
        accepted = condition("Accepted", True, "Accepted")
        if not chosen:
            accepted = condition("Accepted", False, "NoMatchingParent", "no such listener")
        else:
            allowed = [
                (position, listener)
                for position, listener in chosen
                if listener.accepted and listener.allows(context.ident[0], context.index)
            ]
            if not allowed:
                accepted = condition("Accepted", False, "NotAllowedByListeners")
            else:
                matched = False
                for position, listener in allowed:
                    attached = False
                    for hostname in hostnames or ["*"]:
                        found = (
                            listener.hostname or "*"
                            if hostname == "*"
                            else intersect(listener.hostname, hostname)
                        )
                        if found is None:
                            continue
                        matched = attached = True
                        if not listener.programmed:
                            continue  # attached, but the listener serves nothing
                        scheme = "https" if listener.protocol == "HTTPS" else "http"
                        hosts.setdefault(gateway_host(found), set()).add(scheme)
                        if listener.protocol == "HTTP":
                            context.http_port = context.http_port or listener.port
                        else:
                            context.https_port = context.https_port or listener.port
                    if attached:  # a route no hostname joins is not attached
                        joined.append((gateway, position))
                if not matched:
                    accepted = condition("Accepted", False, "NoMatchingListenerHostname")
        parents.append({"parentRef": named, "conditions": [accepted]})
    return parents, hosts, joined


def _route_candidates(
    context: _RouteContext, route: Object, hosts: dict[str, set[str]]
) -> list[Candidate]:
    spec = as_mapping(route.get("spec"), "spec")
    rules = as_list(spec.get("rules"), "spec.rules") or [{}]
    if len(rules) > MAX_RULES:
        raise Rejected(f"more than {MAX_RULES} rules")
    settings = context.builder.settings
    created = _created(route)
    candidates = []
    matches_total = 0
    for rule_number, rule in enumerate(rules):
        rule = as_mapping(rule, "a rule")
        matches = as_list(rule.get("matches"), "matches") or [{}]
        if len(matches) > MAX_MATCHES:
            raise Rejected(f"more than {MAX_MATCHES} matches in a rule")
        matches_total += len(matches)
        parsed = []
        for raw in matches:
            raw = as_mapping(raw, "a match")
            path, match, pattern = _match_path(as_mapping(raw.get("path"), "path") or {})
            method = raw.get("method")
            if method is not None and method not in METHODS:
                raise Rejected(f"method {validate.show(method)} is not an HTTP method")
            conditions = Conditions(
                method=method,
                headers=_pairs(raw.get("headers"), "headers", header=True),
                query=_pairs(raw.get("queryParams"), "queryParams", header=False),
                path_regex=pattern,
            )
            parsed.append((path, match, conditions, pattern))
        prefixes = [
            path for path, match, _c, pattern in parsed if match == "prefix" and not pattern
        ]
        value = _rule_value(context, rule, prefixes)
        if rule.get("sessionPersistence") is not None:
            context.builder.ignore(context.owner, "sessionPersistence ignored: not supported")
        for match_number, (path, match, conditions, _pattern) in enumerate(parsed):
            for host, schemes in sorted(hosts.items()):
                candidates.append(
                    Candidate(
                        host,
                        path,
                        match,
                        replace(conditions, scheme=context.scheme(host, schemes)),
                        replace(value, host=host, path=path, match=match),
                        (created, *context.ident, rule_number, match_number),
                    )
                )
    context.builder.check_counts(len(hosts), matches_total, len(candidates))
    if len(candidates) > settings.max_routes_per_object:
        raise Rejected(f"{len(candidates)} routes, more than catalog.max_routes_per_object")
    return candidates


@dataclass(frozen=True, slots=True)
class _Attached:
    """The listeners (Gateway, position) an HTTPRoute attached to, one per parentRef."""

    listeners: tuple[tuple[tuple[str, str], int], ...]


@dataclass(frozen=True, slots=True)
class _Made:
    """What an HTTPRoute attached somewhere makes: its candidates, its parents' status."""

    candidates: tuple[Candidate, ...]
    parents: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _RouteBuild:
    """The build of one HTTPRoute (Builder.source's handler): what it adds to the catalog
    (backends) as steps; its attachments and candidates kept (Builder.keep)."""

    builder: Builder
    index: ClusterIndex
    state: GatewayState
    ident: tuple[str, str]
    route: Object
    owner: str
    https: list[str | None]

    def __call__(self) -> None:
        builder, ident, route = self.builder, self.ident, self.route
        context = _RouteContext(
            builder, self.index, ident, self.owner, None, None, https_hostnames=self.https
        )
        validate.dns_label(ident[0], "namespace")
        validate.dns_subdomain(ident[1], "HTTPRoute name")
        parents, hosts, joined = _parents(context, route, self.state)
        builder.keep(_Attached(tuple(joined)))
        if not parents:
            return  # attached to no Gateway of ours
        found = _route_candidates(context, route, hosts)
        resolved = (
            condition("ResolvedRefs", False, *context.unresolved[0])
            if context.unresolved
            else condition("ResolvedRefs", True, "ResolvedRefs")
        )
        for parent in parents:
            parent["conditions"].append(resolved)
            _generation(route, parent["conditions"])
        builder.keep(_Made(tuple(found), parents))


def _world(index: ClusterIndex, state: GatewayState) -> tuple[Any, ...]:
    """What every HTTPRoute's build reads besides itself and its Services: the objects
    of the kinds it may read (GatewayClasses, Gateways, ReferenceGrants, Namespaces),
    held to be compared by identity (the index replaces an object that changes), and
    what the listeners became (Secrets decide whether one is programmed)."""
    objects = tuple(
        (kind, ident, obj)
        for kind in ("GatewayClass", "Gateway", "ReferenceGrant", "Namespace")
        for ident, obj in index.by_kind.get(kind, {}).items()
    )
    listeners = tuple(
        (
            listener.gateway,
            listener.name,
            listener.port,
            listener.protocol,
            listener.hostname,
            listener.allowed_from,
            repr(listener.selector),
            listener.accepted,
            listener.programmed,
            repr(listener.kinds),
        )
        for listeners in state.listeners.values()
        for listener in listeners
    )
    return objects, listeners


def _same_world(before: tuple[Any, ...] | None, now: tuple[Any, ...]) -> bool:
    if before is None or before[1] != now[1] or len(before[0]) != len(now[0]):
        return False
    return all(
        a[0] == b[0] and a[1] == b[1] and a[2] is b[2]
        for a, b in zip(before[0], now[0], strict=True)
    )


def gateway_candidates(
    builder: Builder, index: ClusterIndex
) -> tuple[list[Candidate], dict[str, Any]]:
    """Every candidate of the HTTPRoutes attached to our Gateways, and the status."""
    state = GatewayState()
    _classes(index, builder, state)
    if not state.classes:
        return [], {}
    _gateways(index, builder, state)
    candidates: list[Candidate] = []
    routes = sorted(index.all("HTTPRoute"), key=lambda item: (_created(item[1]), item[0]))
    https = [
        listener.hostname
        for listeners in state.listeners.values()
        for listener in listeners
        if listener.accepted and listener.protocol == "HTTPS"
    ]
    # An HTTPRoute's build is replayed (Builder.source) while it, the Services it
    # read and what every route reads (world) are the same: a change to one route
    # costs that route, and the merge of all.
    world = _world(index, state)
    replay = _same_world(builder.reuse_world, world)
    builder.world = world
    for ident, route in routes:
        owner = describe("HTTPRoute", ident)
        handler = _RouteBuild(builder, index, state, ident, route, owner, https)
        try:
            reason = builder.source(("HTTPRoute", ident), route, handler, replay)
        except Exception as exc:  # a replayed claim met one made first this time
            reason = reason_of(exc)
        for kept in builder.kept:
            if isinstance(kept, _Attached):
                for gateway, position in kept.listeners:
                    state.listeners[gateway][position].attached += 1
        if reason is not None:
            builder.reject(owner, reason)
            state.status["httproutes"][f"{ident[0]}/{ident[1]}"] = {
                "parents": [],
                "conditions": [condition("Accepted", False, "UnsupportedValue", reason)],
            }
            continue
        for kept in builder.kept:
            if isinstance(kept, _Made):
                candidates += kept.candidates
                state.status["httproutes"][f"{ident[0]}/{ident[1]}"] = {"parents": kept.parents}
    candidates += _isolation(state)
    for gateway, listeners in state.listeners.items():
        status = state.status["gateways"][f"{gateway[0]}/{gateway[1]}"]
        for listener in listeners:
            status["listeners"][listener.name] = {
                "attachedRoutes": listener.attached,
                "supportedKinds": listener.kinds,
                "conditions": listener.conditions,
            }
    return candidates, state.status


def _isolation(state: GatewayState) -> list[Candidate]:
    """Listener isolation: a request whose host a listener's hostname matches is served
    by that listener's routes only, never by those of a less specific listener of the
    same Gateway.  For each such hostname, a last candidate on ``/`` that answers 404:
    what the listener's own routes do not take stops there, instead of falling back to
    the wildcard's (or any host's) routes."""
    sentinels = []
    for gateway, listeners in state.listeners.items():
        served = [listener for listener in listeners if listener.programmed]
        for listener in served:
            name = listener.hostname
            if name is None:
                continue
            wider = any(
                other is not listener
                and other.protocol == listener.protocol
                and (
                    other.hostname is None
                    or (
                        other.hostname != name
                        and other.hostname.startswith("*.")
                        and intersect(other.hostname, name) == name
                    )
                )
                for other in served
            )
            if wider:
                host = gateway_host(name)
                owner = describe("Gateway", gateway)
                value = Route(host, "/", "prefix", NO_ROUTE, owner)
                sentinels.append(Candidate(host, "/", "prefix", Conditions(), value, ("\uffff",)))
    return sentinels
