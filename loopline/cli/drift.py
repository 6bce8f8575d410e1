"""`loopline drift SPEC`: run a drift spec here and, on drift, its training pipeline; then the
per-column table, the decision and what happened."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from loopline.cli.common import (
    EXIT_BAD_SPEC,
    EXIT_FAILED,
    EXIT_OK,
    Subcommands,
    load,
    spec_command,
    spec_errors,
)

MARKS = {"none": " ", "warn": "!", "retrain": "✗"}


def print_drift(result: dict[str, Any]) -> None:
    out = sys.stderr
    if result["status"] != "succeeded" and "run" in result:
        for name, step in result["run"]["steps"].items():
            if step["status"] == "failed":
                print(f"step {name} failed: {step.get('error')}", file=out)
        return
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=out)
    columns = result.get("columns", {})
    if columns:
        width = max(len(c) for c in [*columns, "prediction"])
        print(f"\n  {'column':<{width}}  method          score  threshold", file=out)
        rows = list(columns.items())
        if prediction := result.get("prediction"):
            rows.append(("prediction", prediction))
        for column, c in rows:
            print(f"{MARKS[c['severity']]} {column:<{width}}  {c['method']:<13} "
                  f"{c['score']:>7.4f}  {c['threshold']:>9g}", file=out)
    if perf := result.get("performance"):
        print(f"\n{perf['metric']} on {perf['labelled_rows']:,} labelled rows: "
              f"{perf['current']:.4f} (evaluation {perf['evaluation']:.4f}, "
              f"max drop {perf['max_drop']:g})", file=out)
    print(f"\ndrift: {result.get('drift')}  share drifted: {result.get('share_drifted', 0):.0%}"
          f"  action: {result.get('action')}", file=out)
    for reason in result.get("reasons", []):
        print(f"  - {reason}", file=out)
    if report := result.get("report"):
        print(f"report: {report}", file=out)
    trigger = result.get("trigger", {})
    if trigger.get("suppressed"):
        print(f"retraining not started: {trigger['suppressed']}", file=out)
    elif trigger.get("retrain") and trigger.get("dry_run"):
        print(f"would retrain (dry run): {trigger['command']}", file=out)
    elif (training := result.get("retraining")) and training.get("error"):
        print(f"retraining run {training['run_id']}: failed: {training['error']} (the next "
              "drift run may try again)", file=out)
    elif training:
        model = training.get("model") or {}
        print(f"retraining run {training['run_id']}: {training['status']}; "
              f"{model.get('name')} v{model.get('version')} "
              f"aliases={','.join(model.get('aliases') or []) or '-'}", file=out)


@spec_errors
def cmd_drift(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.backends.local.drift import run_drift

    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = run_drift(loaded, args.set or [], dry_run=args.dry_run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_drift(result)
    return EXIT_OK if result["status"] == "succeeded" else EXIT_FAILED


def register(sub: Subcommands) -> None:
    drift = spec_command(sub, "drift", cmd_drift, "run a drift spec; on drift, run its training "
                         "pipeline (exit 0 whether or not it drifted)")
    drift.add_argument("--json", action="store_true", help="print the drift summary as JSON")
    drift.add_argument("--dry-run", action="store_true",
                       help="decide, but print the retraining command instead of running it")
