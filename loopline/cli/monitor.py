"""`loopline monitor SPEC`: one evaluation of the live checks over the prediction log, for
cron, an Airflow task or a Kubeflow step (`loopline serve` runs the same evaluation itself
every `serve.monitoring.every`). A breach of a `retrain_on` check retrains here, as
`loopline drift` does; exit 0 whether or not a check is breached."""

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
    CommandError,
    Subcommands,
    load,
    spec_command,
    spec_errors,
)


def retrain_here(overrides: list[str]) -> Any:
    """The local backend's action on a trigger: record it, run the training spec in this
    process, record a failure so the next evaluation may try again."""

    def start(target: Any, trigger: Any) -> dict[str, Any]:
        from loopline.backends.local.drift import retrain_locally

        return {"started": "here", "retraining": retrain_locally(target, trigger, overrides)}

    return start


def _value(check: str, value: float | None) -> str:
    if value is None:
        return "-"
    if check in ("error_rate", "feature_missing"):
        return f"{value:.2%}"
    if check == "latency":
        return f"{value:.1f} ms"
    return f"{value:.4f}"


def _duration(seconds: float) -> str:
    """300 -> 5m, 90 -> 90s: as a spec writes it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def print_monitor(result: dict[str, Any]) -> None:
    if result.get("skipped"):
        print(f"{result['model']}: skipped ({result['skipped']})")
        return
    if result.get("note"):
        print(f"{result['model']}: {result['note']}")
        return
    window = result["window"]
    print(f"{result['model']} v{result['version']} ({result['alias']}) at "
          f"{result['evaluated_at'][:19]}Z: {window['requests']:,} requests in the last "
          f"{_duration(window['seconds'])}, {window['labelled']:,} labelled")
    hold = result["hold"]
    print(f"  {'check':16} {'value':>10} {'threshold':>10}  {'verdict':10} state")
    for name, check in result["checks"].items():
        verdict = {True: "breached", False: "healthy", None: "-"}[check["breached"]]
        state = check["state"] + (f" ({check['streak']}/{hold} to flip)"
                                  if check["streak"] else "")
        label = f"metric {check['metric']}" if name == "metric" and check.get("metric") \
            else name
        print(f"  {label:16} {_value(name, check['value']):>10} "
              f"{_value(name, check['threshold']):>10}  {verdict:10} {state}")
        print(f"      {check['detail']}")
    for move in result["transitions"]:
        print(f"{move['check']}: {move['from']} -> {move['to']} after {move['after']} "
              f"evaluations (recorded in the registry history)")
        for line in move.get("alerts") or []:
            print(f"  alert: {line}")
    decision = result.get("retrain")
    if decision is None:
        return
    if decision.get("suppressed"):
        print(f"retraining not started: {decision['suppressed']}")
    elif decision.get("dry_run"):
        print(f"would retrain (dry run): {decision['command']}")
    elif (training := decision.get("retraining")) is not None:
        model = training.get("model") or {}
        print(f"retraining run {training['run_id']}: {training['status']}"
              + (f": {training['error']}" if training.get("error") else
                 f"; {model.get('name')} v{model.get('version')} "
                 f"aliases={','.join(model.get('aliases') or []) or '-'}"))
    elif decision.get("started"):
        print(f"retraining started ({decision['started']}): {decision.get('command')}")


@spec_errors
def cmd_monitor(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.runtime import monitoring
    from loopline.spec.durations import duration_seconds

    try:
        window_s = duration_seconds(args.window) if args.window else None
    except ValueError as exc:
        raise CommandError(f"--window: {exc}", EXIT_BAD_SPEC) from None
    start = monitoring.dry_run if args.dry_run else retrain_here(args.set or [])
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a retraining's run log
            result = monitoring.evaluate(loaded, window_s=window_s, start=start)
    except monitoring.MonitoringError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from None
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_monitor(result)
    training = (result.get("retrain") or {}).get("retraining") or {}
    return EXIT_FAILED if training.get("error") else EXIT_OK


def register(sub: Subcommands) -> None:
    command = spec_command(sub, "monitor", cmd_monitor,
                           "evaluate the live checks once over the prediction log (exit 0 "
                           "whether or not a check is breached)")
    command.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    command.add_argument("--window", help="the log to read (default: serve.monitoring.window)")
    command.add_argument("--dry-run", action="store_true",
                         help="on a retraining trigger, print the command instead of "
                              "running it (nothing recorded)")
