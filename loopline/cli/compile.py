"""`loopline compile dvc|kfp` and `loopline submit kfp`: a spec for an orchestrator."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from loopline.cli.common import (
    EXIT_BAD_SPEC,
    EXIT_FAILED,
    EXIT_OK,
    Subcommands,
    load,
    output_file,
    spec_errors,
)


@spec_errors
def cmd_compile(args: argparse.Namespace) -> int:
    loaded = load(args)
    if args.target == "kfp":
        from loopline.backends.kfp.compile import KfpCompiler

        output = output_file(args.output) if args.output else \
            Path(f"build/{loaded.spec.name}.yaml")
        with contextlib.redirect_stdout(sys.stderr):
            KfpCompiler().compile(loaded, output, args.image, args.project_root)
        print(f"wrote {output}", file=sys.stderr)
        return EXIT_OK
    from loopline.backends.dvc import DvcCompiler

    output = output_file(args.output or loaded.project_root / "dvc.yaml")
    DvcCompiler().compile(loaded, output)
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


@spec_errors
def cmd_submit(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.backends.kfp.submit import submit
    from loopline.pipeline.load import run_time_overrides
    from loopline.spec.params import values_from_json

    params = values_from_json(args.params, "--params") if args.params else None
    if params is not None:
        run_time_overrides(loaded, params, "--params")  # refuse unknown and env: keys
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = submit(loaded, args.host, args.experiment, args.schedule, args.image,
                            args.project_root, params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except Exception as exc:  # noqa: BLE001 - the cluster's answer, shown as one line
        print(f"error: submission to {args.host} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result))
    return EXIT_OK


def register_compile(sub: Subcommands) -> None:
    compile_cmd = sub.add_parser("compile", help="compile a spec for an orchestrator")
    compile_cmd.add_argument("target", choices=["dvc", "kfp"])
    compile_cmd.add_argument("file")
    compile_cmd.add_argument("-o", "--output",
                             help="default: dvc.yaml at the project root; build/<name>.yaml")
    compile_cmd.add_argument("--image", help="kfp: step image (default $LOOPLINE_STEP_IMAGE, "
                             "else loopline-step:<version>)")
    compile_cmd.add_argument("--project-root", default="/app",
                             help="kfp: where the project lives in the step image")
    compile_cmd.add_argument("--set", action="append", help=argparse.SUPPRESS)
    compile_cmd.set_defaults(fn=cmd_compile)


def register_submit(sub: Subcommands) -> None:
    submit = sub.add_parser("submit", help="submit a run to an orchestrator (kfp)")
    submit.add_argument("target", choices=["kfp"])
    submit.add_argument("file")
    submit.add_argument("--host", required=True, help="KFP API endpoint")
    submit.add_argument("--experiment", help="default: the pipeline's name")
    submit.add_argument("--schedule", action="store_true",
                        help="a recurring run on the spec's schedule instead of one run")
    submit.add_argument("--image", help="step image (default $LOOPLINE_STEP_IMAGE, else "
                        "loopline-step:<version>)")
    submit.add_argument("--project-root", default="/app",
                        help="where the project lives in the step image")
    submit.add_argument("--params", help='JSON overrides, e.g. \'{"train": {"max_iter": 300}}\'')
    submit.add_argument("--set", action="append", help=argparse.SUPPRESS)
    submit.set_defaults(fn=cmd_submit)
