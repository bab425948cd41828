"""breakwater migrate-report: what serving ingress-nginx's Ingresses would change."""

from __future__ import annotations

from typing import Any

from builders import READY, endpoint_slice, ingress, service

from breakwater.catalog import CatalogSettings
from breakwater.catalog.build import index_objects
from breakwater.catalog.migrate import migration_report, report_lines

N = "nginx.ingress.kubernetes.io/"


def nginx_ingress(name: str, path: str, svc: str, **annotations: str) -> dict[str, Any]:
    obj = ingress(
        "shop",
        name,
        [("www.example.com", path, "ImplementationSpecific", svc)],
        annotations={N + key: value for key, value in annotations.items()},
    )
    obj["spec"]["ingressClassName"] = "nginx"
    return obj


def cluster() -> list[dict[str, Any]]:
    return [
        service("shop", "web"),
        endpoint_slice("shop", "web", [("10.0.0.1", READY)]),
        service("shop", "canary"),
        endpoint_slice("shop", "canary", [("10.0.0.2", READY)]),
    ]


def test_the_report_says_what_each_ingress_would_become() -> None:
    objects = [
        *cluster(),
        nginx_ingress(
            "web",
            "/something(/|$)(.*)",
            "web",
            **{"rewrite-target": "/$2", "configuration-snippet": "return 200;"},
        ),
        nginx_ingress("web-canary", "/something(/|$)(.*)", "canary", canary="true"),
        nginx_ingress("bad", "/x", "web", **{"limit-rps": "-1"}),
    ]
    objects[-2]["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    # The report turns compat on itself: it is read before the setting is.
    report = migration_report(index_objects(objects), CatalogSettings())
    entries = {entry["ingress"]: entry for entry in report["ingresses"]}
    web = entries["Ingress shop/web"]
    assert [(r["host"], r["path"], r["canary"]) for r in web["routes"]] == [
        ("www.example.com", "/something", "be_shop_canary_http")
    ]
    assert list(web["rewrites"].values()) == [[["(?i)^/something(/|$)(.*)", "/\\2"]]]
    outcomes = {row["annotation"]: row["outcome"] for row in web["annotations"]}
    assert outcomes == {N + "rewrite-target": "yes", N + "configuration-snippet": "ignored"}
    assert entries["Ingress shop/web-canary"]["canary_of"] == ["www.example.com/something"]
    assert "limit-rps" in entries["Ingress shop/bad"]["rejected"][0]
    assert report["totals"] == {
        "ingresses": 3,
        "as_they_are": 1,
        "with_ignored": 1,
        "rejected": 1,
    }
    text = "\n".join(report_lines(report))
    assert "Ingress shop/bad: REJECTED: annotation nginx.ingress.kubernetes.io/limit-rps" in text
    assert "configuration-snippet: IGNORED: raw NGINX configuration" in text


def test_ingresses_of_breakwater_class_are_not_in_the_report() -> None:
    objects = [*cluster(), ingress("shop", "own", [("a.example.com", "/", "Prefix", "web")])]
    report = migration_report(index_objects(objects), CatalogSettings())
    assert report["ingresses"] == []
