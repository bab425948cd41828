"""Which conformance cases the edge supports, and why not the others: the integration
test skips these (tests/integration/test_gateway_conformance.py runs every other case),
and the README's table lists them (tests/unit/test_conformance_data.py checks it)."""

from __future__ import annotations

from conformance.gateway_api.loader import Case

# Why a case is not run: what the edge does not do.  Everything else is run, and the
# README lists both.
ONE_ADDRESS = "every Gateway is served on the edge's one address (no address per Gateway)"
UNSUPPORTED: dict[str, str] = {
    "HTTPRouteBackendProtocolH2C": "h2c to backends by appProtocol is not read from Services",
    "HTTPRouteCORS": "the HTTPRoute CORS filter is not supported",
    "HTTPRouteHTTPSListenerDetectMisdirectedRequests": "no 421 for a Host another listener's "
    "certificate serves",
    "HTTPRouteListenerPortMatching": ONE_ADDRESS + "; listener ports are not told apart",
    "HTTPRouteRequestMirror": "request mirroring is not supported",
    "HTTPRouteRequestMultipleMirrors": "request mirroring is not supported",
    "HTTPRouteRequestPercentageMirror": "request mirroring is not supported",
    "HTTPRouteMultipleGateways": ONE_ADDRESS,
    "GatewayHTTPListenerIsolation": ONE_ADDRESS + ": two Gateways answer the same requests "
    "differently (listener isolation within a Gateway is done: a unit test shows it)",
    "HTTPRouteDisallowedKind": "TLS listeners (TLSRoute) are not served: not Programmed",
    "HTTPRouteRedirectPortAndScheme": ONE_ADDRESS + ": the same path on Gateways on ports 80 and "
    "8080 (the edge does not tell listener ports apart)",
    "HTTPRouteRetryConnectionError": "when retries on connection errors run out HAProxy "
    "answers 502; the suite expects 500 or 503",
    "HTTPRouteRetryWithTimeouts": "timeouts.request bounds each try (HAProxy's timeout server), "
    "not the retries together",
}


README_HEADING = "### Gateway API conformance"


def table(cases: list[Case]) -> list[str]:
    """The README's table: every case, its level, whether it runs, and why not."""
    rows = ["| case | level | supported | passing |", "|---|---|---|---|"]
    for case in sorted(cases, key=lambda c: c.name):
        why = UNSUPPORTED.get(case.name)
        supported = "yes" if why is None else f"no: {why}"
        rows.append(
            f"| {case.name} | {case.level} | {supported} | {'yes' if why is None else '-'} |"
        )
    return rows
