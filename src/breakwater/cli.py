"""The ``breakwater`` command: watch, status, check-config, catalog, migrate-report, decode."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from breakwater import __version__
from breakwater.cluster.source import SourceError
from breakwater.config import Config, ConfigError, as_dict, load_config, read_resources
from breakwater.k8s.decode import DecodeError, decode
from breakwater.render.haproxy import render_haproxy
from breakwater.targets.varnish_cli import VarnishError
from breakwater.validate import InvalidValue

log = logging.getLogger("breakwater")

FLAG_KEYS = {
    "etcd_endpoints": "etcd.endpoints",
    "etcd_cacert": "etcd.ca_file",
    "etcd_cert": "etcd.cert_file",
    "etcd_key": "etcd.key_file",
    "prefix": "etcd.prefix",
    "ingress_class": "catalog.ingress_class",
    "mode": "catalog.mode",
    "haproxy_config": "haproxy.config_file",
}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML configuration file")
    parser.add_argument("--etcd-endpoints", help="comma-separated etcd endpoints")
    parser.add_argument("--etcd-cacert", help="CA bundle that signed etcd's certificate")
    parser.add_argument("--etcd-cert", help="client certificate for etcd")
    parser.add_argument("--etcd-key", help="client key for etcd")
    parser.add_argument("--prefix", help="Kubernetes' etcd key prefix (default /registry)")
    parser.add_argument("--ingress-class", help="ingress class served (default breakwater)")
    parser.add_argument("--mode", choices=["pods", "nodeport"], help="where servers point")
    parser.add_argument("--haproxy-config", help="haproxy.cfg written and reloaded")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="set any configuration key (repeatable)",
    )


def _config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {
        key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag)
    }
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key] = value
    return load_config(args.config, overrides=overrides)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("grpc").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


def cmd_watch(args: argparse.Namespace) -> int:
    from breakwater.daemon.watcher import Watcher

    config = _config(args)
    _setup_logging(config.watcher.log_level)
    watcher = Watcher(config, args.config, dry_run=args.dry_run)
    return asyncio.run(watcher.run(once=args.once or args.dry_run))


def cmd_edge_health(args: argparse.Namespace) -> int:
    from breakwater.ha.check import check
    from breakwater.ha.health import EdgeHealth

    config = _config(args)
    _setup_logging(config.watcher.log_level)
    try:
        health = EdgeHealth(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if args.once:
        verdict = asyncio.run(check(health.probes))
        print(
            json.dumps({"ok": verdict.ok, "planned": verdict.planned, "reasons": verdict.reasons})
        )
        return 0 if verdict.ok else 1
    return asyncio.run(health.run())


def cmd_status(args: argparse.Namespace) -> int:
    from breakwater.operations import edge_status, status_lines

    status = asyncio.run(edge_status(_config(args)))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(status)))
    return 1 if status["problems"] else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from breakwater.catalog import Catalog

    config = _config(args)
    render_haproxy(Catalog(), {}, config.haproxy)  # the template must render
    print(json.dumps(as_dict(config), indent=2))
    print("configuration is valid", file=sys.stderr)
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from breakwater.catalog.live import full_catalog
    from breakwater.cluster.state import read_cluster

    config = _config(args)
    _setup_logging("WARNING")
    state = asyncio.run(read_cluster(config.etcd, read_resources(config)))
    catalog = full_catalog(state, config.catalog)
    document = catalog.as_dict()
    document["revision"] = state.revision
    print(json.dumps(document, indent=2))
    return 0


def cmd_migrate_report(args: argparse.Namespace) -> int:
    from breakwater.catalog.migrate import migration_report, report_lines
    from breakwater.cluster.state import read_cluster

    config = _config(args)
    _setup_logging("WARNING")
    state = asyncio.run(read_cluster(config.etcd, read_resources(config)))
    report = migration_report(state.index, config.catalog)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(report_lines(report)))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    if args.file == "-":
        value, key = sys.stdin.buffer.read(), args.key or "<stdin>"
    else:
        with open(args.file, "rb") as handle:
            value, key = handle.read(), args.key or args.file
    print(json.dumps(decode(key, value), indent=2))
    return 0


def cmd_lab_seed(args: argparse.Namespace) -> int:
    from breakwater.lab import load_manifests, seed

    config = _config(args)
    objects = []
    for path in args.manifests:
        with open(path, encoding="utf-8") if path != "-" else sys.stdin as handle:
            objects.extend(load_manifests(handle.read()))
    for action, key in asyncio.run(seed(config.etcd, objects, args.encoding, args.delete)):
        print(f"{action} {key}")
    return 0


def cmd_invalidate(args: argparse.Namespace) -> int:
    from breakwater.targets.invalidate import invalidate, node_secret

    config = _config(args)
    nodes = args.node or list(config.varnish.nodes) or [config.varnish.admin]
    secret = node_secret(args.secret or config.varnish.secret_file)
    purge = args.command == "purge"
    results = asyncio.run(invalidate(nodes, secret, args.host, args.path, purge))
    for result in results:
        print(f"{result.node}\t{'ok' if result.ok else 'FAILED'}\t{result.detail}")
    failed = [r.node for r in results if not r.ok]
    if failed:
        print(f"breakwater: {len(failed)} of {len(results)} nodes failed", file=sys.stderr)
    return 1 if failed else 0


def _add_invalidation_commands(commands: Any) -> None:
    for name, text in (
        ("ban", "ban cached objects of a host whose URL matches a pattern, on every node"),
        ("purge", "remove cached objects of a host whose URL matches a pattern, on every node"),
    ):
        invalidation = commands.add_parser(name, help=text)
        _add_config_flags(invalidation)
        invalidation.add_argument(
            "--host", required=True, help="the Host the objects were cached for"
        )
        invalidation.add_argument(
            "--path", default="^/", help="regular expression on the URL (default: all)"
        )
        invalidation.add_argument(
            "--node",
            action="append",
            default=[],
            help="a Varnish admin address host:port (repeatable; default: varnish.nodes)",
        )
        invalidation.add_argument("--secret", help="the Varnish secret file (varnishd -S)")
        invalidation.set_defaults(func=cmd_invalidate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="breakwater", description="The Kubernetes edge, driven from the cluster's etcd."
    )
    parser.add_argument("--version", action="version", version=f"breakwater {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    watch = commands.add_parser("watch", help="follow etcd and keep HAProxy configured")
    _add_config_flags(watch)
    watch.add_argument("--once", action="store_true", help="sync once and exit")
    watch.add_argument(
        "--dry-run", action="store_true", help="print what would change, change nothing"
    )
    watch.set_defaults(func=cmd_watch)

    health = commands.add_parser(
        "edge-health",
        help="judge this node's health for keepalived and FRR (docs/ha.md): a daemon",
    )
    _add_config_flags(health)
    health.add_argument(
        "--once", action="store_true", help="check once, print why, exit 1 when unhealthy"
    )
    health.set_defaults(func=cmd_edge_health)

    status = commands.add_parser(
        "status",
        help="what this edge serves and what is wrong; exit 1 when it does not serve"
        " what etcd says",
    )
    _add_config_flags(status)
    status.add_argument("--json", action="store_true", help="print it as JSON")
    status.set_defaults(func=cmd_status)

    check = commands.add_parser("check-config", help="validate the configuration and template")
    _add_config_flags(check)
    check.set_defaults(func=cmd_check_config)

    catalog = commands.add_parser(
        "catalog", help="print the routing model as JSON, with rejected objects and reasons"
    )
    _add_config_flags(catalog)
    catalog.set_defaults(func=cmd_catalog)

    migrate = commands.add_parser(
        "migrate-report",
        help="what serving the cluster's ingress-nginx Ingresses would change",
    )
    _add_config_flags(migrate)
    migrate.add_argument("--json", action="store_true", help="print it as JSON")
    migrate.set_defaults(func=cmd_migrate_report)

    decode_cmd = commands.add_parser("decode", help="decode an etcd value (JSON or protobuf)")
    decode_cmd.add_argument("file", help="a file holding the raw value, or - for stdin")
    decode_cmd.add_argument("--key", help="the etcd key, named in errors")
    decode_cmd.set_defaults(func=cmd_decode)

    _add_invalidation_commands(commands)
    lab = commands.add_parser(
        "lab-seed",
        help="LAB ONLY: write manifests into etcd as the API server stores them",
    )
    _add_config_flags(lab)
    lab.add_argument("manifests", nargs="+", help="YAML manifest files, or - for stdin")
    lab.add_argument("--encoding", choices=["protobuf", "json"], default="protobuf")
    lab.add_argument("--delete", action="store_true", help="delete the objects instead")
    lab.set_defaults(func=cmd_lab_seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"breakwater: configuration error: {exc}", file=sys.stderr)
        return 2
    except DecodeError as exc:
        print(f"breakwater: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (SourceError, InvalidValue, VarnishError) as exc:
        print(f"breakwater: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
