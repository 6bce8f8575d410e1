"""`loopline models list|promote|rollback NAME`: the registry's aliases and their history."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loopline.cli.common import Subcommands


def tracking_uri(explicit: str | None) -> str:
    """--tracking-uri, else the rule every step uses, for the project we stand in."""
    from loopline.runtime.tracking import tracking_uri as project_tracking_uri
    from loopline.spec.paths import find_project_root

    return explicit or project_tracking_uri(None, find_project_root(Path.cwd()))


def models_command(args: argparse.Namespace) -> int:
    from loopline.runtime.tracking import sqlite_file, unreachable

    uri = tracking_uri(args.tracking_uri)
    if problem := unreachable(uri):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    database = sqlite_file(uri)
    if database is not None and not database.is_file():
        # Opening a SQLite URI creates the store: a look at the registry must not.
        print(f"error: no registry at {database}: nothing has been registered there (run a "
              "training pipeline from the project, or pass --tracking-uri)", file=sys.stderr)
        return 1
    from mlflow.exceptions import MlflowException

    from loopline.integrations import mlflow_registry as reg

    client = reg.client(uri)
    try:
        if args.action == "list":
            return _list(client, args)
        if args.action == "promote":
            return _promote(client, args)
        moved_from, moved_to = reg.rollback(client, args.name, args.to, force=args.force)
        print(f"{args.name}: champion v{moved_from} -> v{moved_to}")
        return 0
    except reg.RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def _list(client: object, args: argparse.Namespace) -> int:
    from loopline.integrations import mlflow_registry as reg

    rows = reg.versions(client, args.name)
    events = reg.history(client, args.name)
    if args.json:
        print(json.dumps({"name": args.name, "versions": [r.__dict__ for r in rows],
                          "history": events}, indent=2))
        return 0
    print(f"{args.name}")
    print(f"  {'version':>7}  {'aliases':28} {'verdict':10} {'metric':22} {'created':16}  "
          "judged on")
    for row in rows:
        print(f"  {row.version:>7}  {','.join(row.aliases) or '-':28} {row.verdict:10} "
              f"{row.metrics:22} {row.created:16}  {row.judged_on or '-'}")
    print("history (newest last):")
    for event in events:
        print(f"  {event['time']}  {_describe(event)}")
    return 0


def _describe(event: dict[str, object]) -> str:
    if event.get("kind") == "monitor":
        return (f"{'monitor':>10} {event.get('check')} -> {event.get('state')} "
                f"(v{event.get('version')})  {event.get('reason')}")
    if event.get("kind") == "rollout":
        figures = event.get("figures") or {}
        rate = figures.get("error_rate")
        seen = ", ".join(part for part in (
            f"{figures['requests']} req" if "requests" in figures else "",
            f"err {rate:.1%}" if rate is not None else "",
            f"p99 {figures['p99_ms']:.0f} ms" if figures.get("p99_ms") is not None else "",
            f"{figures.get('metric')} {figures['difference']:+.4f} p={figures['p_value']:.3f}"
            if figures.get("p_value") is not None else "") if part)
        where = "to" if event.get("action") == "advanced" else "at"
        return (f"{'rollout':>10} {event.get('action')} v{event.get('version')} {where} "
                f"{event.get('weight')}% (champion v{event.get('champion')})"
                f"{' [manual]' if event.get('manual') else ''}  {event.get('reason')}"
                + (f"  [{seen}]" if seen else ""))
    if event.get("kind") == "retrain_failed":
        return f"{'retrain':>10} failed: run {event.get('run')}  {event.get('reason')}"
    if event.get("kind") == "retrain":
        return (f"{'retrain':>10} -> {event.get('pipeline')} on {event.get('orchestrator')} "
                f"(champion v{event.get('champion')})  {event.get('reason')}")
    target = f"v{event['version']}" if event.get("version") else \
        f"kept (candidate v{event.get('candidate')})" if event.get("candidate") else "removed"
    before = f" (was v{event['previous']})" if event.get("previous") else ""
    return f"{event['alias']:>10} -> {target}{before}  {event['reason']}"


def _promote(client: object, args: argparse.Namespace) -> int:
    from loopline.integrations import mlflow_registry as reg
    from loopline.integrations.model_card import ModelCard

    if not args.version:
        print("error: promote needs a version", file=sys.stderr)
        return 2
    version = client.get_model_version(args.name, args.version)  # type: ignore[attr-defined]
    card = ModelCard.from_tags(version.tags or {})
    refusal = ("never verified: its registration stopped before the registered copy was "
               "loaded back and checked" if not card.verified else
               "failed its gate" if card.passed is False else "")
    if refusal and not args.force:
        print(f"error: v{args.version} {refusal}; use --force to promote anyway",
              file=sys.stderr)
        return 1
    reason = "manual promote" + (f" (forced: {refusal})" if refusal else "")
    if args.alias == reg.CHAMPION:
        previous = reg.crown(client, args.name, args.version, reason)
    else:
        previous = reg.move_alias(client, args.name, args.alias, args.version, reason)
    print(f"{args.name}: {args.alias} v{previous or '-'} -> v{args.version}")
    return 0


def register(sub: Subcommands) -> None:
    models = sub.add_parser("models", help="registry aliases and their history")
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("name", help="registered model name")
    models.add_argument("version", nargs="?", help="version (promote)")
    models.add_argument("--to", help="rollback target version (default: previous champion)")
    models.add_argument("--alias", default="champion")
    models.add_argument("--force", action="store_true",
                        help="promote or roll back to a version that failed its gate or was "
                        "never verified (recorded in the history)")
    models.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or the project's "
                        "mlflow.db")
    models.add_argument("--json", action="store_true")
    models.set_defaults(fn=models_command)
