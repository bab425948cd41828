"""What moving a cluster's ingress-nginx Ingresses to Breakwater would change
(``breakwater migrate-report``): for each Ingress of an ingress-nginx class, what it
would serve, which annotations are translated (and how), which are ignored and why,
and whether it is rejected.

The report builds the catalog with ``catalog.ingress_nginx_compat`` on, whatever the
configuration says, so that it can be read before the setting is turned on; the
catalog, the translation and the reasons are the ones the watcher uses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from breakwater.catalog.build import build_catalog
from breakwater.catalog.model import Catalog, CatalogSettings, Rejected, describe
from breakwater.catalog.nginx import ANNOTATIONS, NGINX_PREFIX, translate
from breakwater.catalog.sources import ingress_is_ours
from breakwater.cluster.index import ClusterIndex, Object

_SUPPORT = {annotation.name: annotation for annotation in ANNOTATIONS}


def _nginx_ingresses(
    index: ClusterIndex, settings: CatalogSettings
) -> list[tuple[tuple[str, str], Object]]:
    """The Ingresses of an ingress-nginx class (not those of Breakwater's own)."""
    only_ours = replace(settings, ingress_nginx_compat=False)
    found = []
    for ident, ingress in index.all("Ingress"):
        try:
            if ingress_is_ours(ingress, settings, False) and not ingress_is_ours(
                ingress, only_ours, False
            ):
                found.append((ident, ingress))
        except Rejected:
            continue  # malformed: the catalog names it
    return sorted(found, key=lambda item: item[0])


def _annotations(ingress: Object, namespace: str) -> list[dict[str, str]]:
    """Each ingress-nginx annotation of ``ingress``: its support, and what it became."""
    metadata = ingress.get("metadata") or {}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if isinstance(key, str) and key.startswith(NGINX_PREFIX)
    }
    try:
        translation = translate(annotations, namespace=namespace)
        ignored = dict(translation.ignored)
        error = None
    except Rejected as exc:
        ignored, error = {}, str(exc)
    rows = []
    for key in sorted(annotations):
        name = key[len(NGINX_PREFIX) :]
        known = _SUPPORT.get(name)
        if key in ignored:
            outcome, notes = "ignored", ignored[key]
        elif error is not None and key in error:
            outcome, notes = "rejected", error
        else:
            outcome = known.support if known is not None else "no"
            notes = known.notes if known is not None else "unknown ingress-nginx annotation"
        rows.append({"annotation": key, "outcome": outcome, "notes": notes})
    return rows


def migration_report(index: ClusterIndex, settings: CatalogSettings) -> dict[str, Any]:
    """The report as a JSON document: one entry per ingress-nginx Ingress, and totals."""
    settings = replace(settings, ingress_nginx_compat=True)
    catalog: Catalog = build_catalog(index, settings)
    entries = []
    totals = {"ingresses": 0, "as_they_are": 0, "with_ignored": 0, "rejected": 0}
    for ident, ingress in _nginx_ingresses(index, settings):
        owner = describe("Ingress", ident)
        rejected = [r.reason for r in catalog.rejected if r.object == owner]
        ignored = [r.reason for r in catalog.ignored if r.object == owner]
        own = [route for route in catalog.routes if route.source == owner]
        hosts = {
            rule.get("host") or "*"
            for rule in (ingress.get("spec") or {}).get("rules") or []
            if isinstance(rule, dict)
        }
        # A canary Ingress makes no route: it joins the routes of its main Ingress.
        canary_of = [
            f"{route.host}{route.path}"
            for route in catalog.routes
            if route.canary is not None and route.source != owner and route.host in hosts
        ]
        routes = [
            {
                "host": route.host,
                "path": route.path,
                "match": route.match,
                "backend": route.backend,
                "https_redirect": route.https_redirect,
                "canary": route.canary.backend if route.canary else None,
            }
            for route in own
        ]
        rewrites = {}
        for name in sorted({route.backend for route in own}):
            features = catalog.backends[name].options.features
            if features is not None and features.rewrite:
                rewrites[name] = [list(rewrite) for rewrite in features.rewrite]
        totals["ingresses"] += 1
        if rejected:
            totals["rejected"] += 1
        elif ignored:
            totals["with_ignored"] += 1
        else:
            totals["as_they_are"] += 1
        entries.append(
            {
                "ingress": owner,
                "routes": routes,
                "annotations": _annotations(ingress, ident[0]),
                "rejected": rejected,
                "ignored": ignored,
                "canary_of": canary_of,
                "rewrites": rewrites,
            }
        )
    return {"ingresses": entries, "totals": totals}


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as text, one Ingress after the other, totals last."""
    lines = []
    for entry in report["ingresses"]:
        if entry["rejected"]:
            lines.append(f"{entry['ingress']}: REJECTED: {'; '.join(entry['rejected'])}")
        elif entry["canary_of"]:
            lines.append(f"{entry['ingress']}: canary of {', '.join(entry['canary_of'])}")
        else:
            served = len(entry["routes"])
            lines.append(f"{entry['ingress']}: serves {served} route{'s' * (served != 1)}")
        for route in entry["routes"]:
            extra = " (redirects to HTTPS)" if route["https_redirect"] else ""
            extra += f" (canary {route['canary']})" if route["canary"] else ""
            lines.append(
                f"  {route['host']}{route['path']} ({route['match']}) -> {route['backend']}{extra}"
            )
        for backend, rewrites in entry["rewrites"].items():
            for regex, target in rewrites:
                lines.append(f"  {backend} rewrites paths matching {regex} to {target}")
        for row in entry["annotations"]:
            lines.append(f"  {row['annotation']}: {row['outcome'].upper()}: {row['notes']}")
    totals = report["totals"]
    lines.append(
        f"{totals['ingresses']} ingress-nginx Ingresses: {totals['as_they_are']} served as they"
        f" are, {totals['with_ignored']} served with annotations ignored,"
        f" {totals['rejected']} rejected"
    )
    return lines
