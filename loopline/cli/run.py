"""`loopline run` (a whole pipeline here) and `loopline step` (one step, as orchestrators call)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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


@spec_errors
def cmd_run(args: argparse.Namespace) -> int:
    loaded = load(args)
    if unknown := [s for s in args.only or [] if s not in loaded.spec.steps]:
        from loopline.spec.errors import SpecError, SpecProblem
        from loopline.spec.hints import did_you_mean

        raise SpecError([SpecProblem("--only", 1, step, f"no step {step!r} in {loaded.display}"
                                     + did_you_mean(step, loaded.spec.steps))
                         for step in unknown])
    if args.backend == "kfp-local":
        from loopline.backends.kfp.local import KfpLocalRunner as Backend
    else:
        from loopline.backends.local.runner import LocalRunner as Backend  # type: ignore[assignment]

    # Libraries print to stdout (MLflow's "View run at ..."); keep stdout for the JSON alone.
    with contextlib.redirect_stdout(sys.stderr):
        summary = Backend().run(loaded, force=args.force, only=args.only or None)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
    return EXIT_OK if summary["status"] == "succeeded" else EXIT_FAILED


def print_summary(summary: dict[str, Any]) -> None:
    out = sys.stderr
    print(f"\nrun {summary['run_id']}: {summary['status']} in {summary['duration_s']:.1f}s",
          file=out)
    gate = summary.get("gate")
    if gate:
        print(f"gate: {'passed' if gate['passed'] else 'FAILED'}", file=out)
        for check in gate["checks"]:
            print(f"  {'✓' if check['passed'] else '✗'} {check['detail']}", file=out)
    if model := summary.get("model"):
        print(f"model: {model['name']} v{model['version']} "
              f"aliases={','.join(model['aliases']) or '-'}", file=out)
    for name, step in summary["steps"].items():
        if step["status"] == "failed":
            print(f"step {name} failed: {step.get('error')}", file=out)


@spec_errors
def cmd_step(args: argparse.Namespace) -> int:
    if params_json := os.environ.get("LOOPLINE_PARAMS_JSON"):
        # An orchestrator's run-time params (Airflow pods, KFP): overrides like --set.
        from loopline.pipeline.load import load_pipeline, run_time_overrides
        from loopline.spec.params import values_from_json

        source = "LOOPLINE_PARAMS_JSON"
        values = values_from_json(params_json, source)
        args.set = [*(args.set or []),
                    *run_time_overrides(load_pipeline(args.file), values, source)]
    loaded = load(args)
    if args.step not in loaded.spec.steps:
        print(f"{loaded.display}: no step {args.step!r}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if args.fingerprint:
        from loopline.backends.base import step_fingerprint

        if step_fingerprint(loaded, args.step) != args.fingerprint:
            made, fix = ("dvc.yaml was generated",
                         f"run `loopline compile dvc {loaded.display} -o dvc.yaml`") \
                if args.orchestrator == "dvc" else \
                (f"the {args.orchestrator} task was built", "rebuild and push the step image")
            print(f"{loaded.display}: step {args.step!r} changed since {made}; {fix}",
                  file=sys.stderr)
            return EXIT_BAD_SPEC
    from loopline.runtime.context import Run
    from loopline.runtime.environment import applied, step_environment
    from loopline.runtime.executor import execute_single_step, own_retries

    with applied(step_environment(loaded)), contextlib.redirect_stdout(sys.stderr):
        run = Run.from_env(loaded, args.orchestrator)
        outcome = execute_single_step(run, args.step, force=args.force,
                                      retries=own_retries(args.orchestrator))
    if args.json:
        print(json.dumps({"run_id": run.run_id, "step": args.step, **outcome.to_json()},
                         indent=2, default=str))
    return EXIT_OK if outcome.status in ("succeeded", "cached") else EXIT_FAILED


def register_run(sub: Subcommands) -> None:
    run = spec_command(sub, "run", cmd_run, "run a pipeline locally, reusing unchanged steps")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("--force", action="store_true", help="ignore the cache")
    run.add_argument("--only", action="append", metavar="STEP", help="run only these steps")
    run.add_argument("--backend", default="local", choices=["local", "kfp-local"],
                     help="local (default), or kfp-local: the compiled KFP graph on this machine")


def register_step(sub: Subcommands) -> None:
    step = spec_command(sub, "step", cmd_step, "run one step (what DVC and Airflow tasks call)")
    step.add_argument("step")
    step.add_argument("--fingerprint", help="refuse if the step changed since compilation")
    step.add_argument("--orchestrator", default="dvc",
                      help="recorded in lineage; airflow and kfp retry failed tasks "
                           "themselves, so Loopline's own retries are off for them")
    step.add_argument("--force", action="store_true")
    step.add_argument("--json", action="store_true")
