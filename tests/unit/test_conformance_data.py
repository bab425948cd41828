"""The Gateway API conformance data (tests/conformance/gateway_api) is whole and consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conformance.gateway_api import loader, support
from conformance.gateway_api.echo import canonical_header_key, parse_go_duration

CASES = loader.load_cases()
BASE = loader.load_base()
SECRETS = loader.load_secrets()


def _gateways(case: loader.Case) -> dict[str, dict[str, Any]]:
    objects = [*BASE, *case.manifests]
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": dict(o)
        for o in objects
        if o["kind"] == "Gateway"
    }


def test_every_case_file_loads() -> None:
    files = sorted(loader.CASES_DIR.glob("*.yaml"))
    assert len(CASES) == len(files) > 50
    assert all(isinstance(case, loader.Case) for case in CASES)


def test_names_are_unique_and_name_the_files() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    for case in CASES:
        assert case.path.stem == loader.kebab_name(case.name)
        assert case.name.startswith(("HTTPRoute", "Gateway"))
        assert case.source.startswith("conformance/tests/") and case.source.endswith(".go")


def test_levels_follow_the_features() -> None:
    for case in CASES:
        assert case.level in ("core", "extended")
        core = set(case.features) <= loader.CORE_FEATURES
        assert case.level == ("core" if core else "extended"), case.name


def test_expected_backends_are_services_of_base_or_the_case() -> None:
    for case in CASES:
        known = loader.services([*BASE, *case.manifests])
        for i, entry in enumerate(case.requests):
            where = f"{case.name} request {i}"
            if entry.backend is not None:
                assert (entry.namespace, entry.backend) in known, where
            for mirror in entry.mirrored_to:
                assert (mirror.namespace, mirror.backend) in known, where
            for backend in entry.weights:
                assert (entry.namespace, backend) in known, where


def test_requests_go_to_a_listener_of_a_known_gateway() -> None:
    for case in CASES:
        gateways = _gateways(case)
        targets = [case.target(entry) for entry in case.requests] or [
            (case.gateway, case.listener_port)
        ]
        for gateway, port in targets:
            assert gateway in gateways, f"{case.name}: {gateway}"
            ports = {listener["port"] for listener in gateways[gateway]["spec"]["listeners"]}
            assert port in ports, f"{case.name}: {gateway} has no listener on {port}"


def test_https_requests_name_a_host_the_certificate_covers() -> None:
    hosts = {host for secret in SECRETS for host in secret.hosts}
    for case in CASES:
        for entry in case.requests:
            sni = entry.request.sni
            if entry.request.scheme == "https":
                assert sni is not None
                wildcard = "*." + sni.partition(".")[2]
                assert sni in hosts or wildcard in hosts, f"{case.name}: {sni}"


def test_gateways_use_the_breakwater_class_and_listed_secrets() -> None:
    (gateway_class,) = [o for o in BASE if o["kind"] == "GatewayClass"]
    assert gateway_class["metadata"]["name"] == loader.GATEWAY_CLASS
    assert gateway_class["spec"]["controllerName"] == loader.CONTROLLER_NAME
    secrets = {(s.namespace, s.name) for s in SECRETS}
    for case in CASES:
        for name, gateway in _gateways(case).items():
            assert gateway["spec"]["gatewayClassName"] == loader.GATEWAY_CLASS, name
            namespace = gateway["metadata"]["namespace"]
            for listener in gateway["spec"]["listeners"]:
                for ref in listener.get("tls", {}).get("certificateRefs", []):
                    key = (ref.get("namespace", namespace), ref["name"])
                    # GatewayWithAttachedRoutes wants a Secret that does not exist.
                    assert key in secrets or ref["name"] == "does-not-exist", (name, key)


def test_base_has_the_namespaces_gateways_and_backend_services() -> None:
    kinds = [o["kind"] for o in BASE]
    assert kinds[0] == "GatewayClass"
    assert set(kinds) == {"GatewayClass", "Namespace", "Gateway", "Service"}
    for namespace in (o for o in BASE if o["kind"] == "Namespace"):
        labels = namespace["metadata"]["labels"]
        assert labels["kubernetes.io/metadata.name"] == namespace["metadata"]["name"]
        assert "gateway-conformance" in labels
    for service in (o for o in BASE if o["kind"] == "Service"):
        assert service["spec"]["type"] == "ClusterIP"
        assert {"port": 8080, "targetPort": 3000}.items() <= service["spec"]["ports"][0].items()


def test_expected_request_defaults_to_the_request() -> None:
    (case,) = [c for c in CASES if c.name == "HTTPRouteMatching"]
    entry = case.requests[2]
    assert entry.expected() == loader.ExpectedRequest(
        path="/", method="GET", host=None, headers={"Version": "one"}
    )
    (cors,) = [c for c in CASES if c.name == "HTTPRouteCORS"]
    assert cors.requests[0].expected().answered_by_gateway
    assert cors.requests[0].namespace is None


def test_timeouts_and_redirect_ports_follow_the_suite() -> None:
    (timeout,) = [c for c in CASES if c.name == "HTTPRouteTimeoutRequest"]
    assert timeout.requests[1].status_matches(408) and timeout.requests[1].status_matches(504)
    assert not timeout.requests[0].status_matches(504)
    redirect = loader.Redirect(scheme="https", path="/")
    assert redirect.port_matches(None) and redirect.port_matches(443)
    assert not redirect.port_matches(80)


def test_loader_refuses_unknown_keys(tmp_path: Path) -> None:
    (case,) = [c for c in CASES if c.name == "HTTPRouteSimpleSameNamespace"]
    text = case.path.read_text().replace("    backend: infra-backend-v1", "    backnd: x")
    path = tmp_path / case.path.name
    path.write_text(text)
    with pytest.raises(loader.CaseError, match="backnd"):
        loader.load_case(path)


def test_echo_helpers_follow_go() -> None:
    assert canonical_header_key("x-header-ADD") == "X-Header-Add"
    assert canonical_header_key("bad header") == "bad header"
    assert parse_go_duration("1m30s") == 90.0
    assert parse_go_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_go_duration("1")


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> list[str]:
    """The table under the README's conformance heading, row by row."""
    text = README.read_text()
    start = text.index(support.README_HEADING)
    lines = text[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_readme_lists_every_case_and_what_is_not_supported_with_why() -> None:
    assert readme_table() == support.table(CASES)


def test_every_unsupported_case_is_a_case() -> None:
    assert set(support.UNSUPPORTED) <= {case.name for case in CASES}
