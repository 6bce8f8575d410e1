"""`loopline compile dvc|kfp|kserve` and `loopline submit kfp`: a spec for an orchestrator
(kserve: its served model as an InferenceService)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from loopline.cli.common import (
    EXIT_BAD_SPEC,
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
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
        from loopline.backends.kfp.rollout import compile_rollout

        name = f"{loaded.spec.name}-rollout" if args.rollout else loaded.spec.name
        output = output_file(args.output) if args.output else Path(f"build/{name}.yaml")
        with contextlib.redirect_stdout(sys.stderr):
            if args.rollout:
                if loaded.spec.rollout is None:
                    raise CommandError(f"{loaded.display} has no `rollout:` block",
                                       EXIT_BAD_SPEC)
                compile_rollout(loaded, output, args.image, args.project_root)
            else:
                KfpCompiler().compile(loaded, output, args.image, args.project_root)
        print(f"wrote {output}", file=sys.stderr)
        return EXIT_OK
    if args.target == "kserve":
        return _compile_kserve(args, loaded)
    from loopline.backends.dvc import DvcCompiler

    output = output_file(args.output or loaded.project_root / "dvc.yaml")
    DvcCompiler().compile(loaded, output)
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


def _compile_kserve(args: argparse.Namespace, loaded: Any) -> int:
    """Render, validate against KServe's CRD schema, then write: an invalid document is never
    written. Versions from the command line, else the registry and the rollout state."""
    import yaml

    from loopline.backends import kserve

    if (args.canary is None) != (args.weight is None):
        raise CommandError("--canary and --weight go together", EXIT_BAD_SPEC)
    if args.champion is not None or args.canary is not None:
        champion, canary, weight, mode = args.champion, args.canary, args.weight or 0, "canary"
    else:
        try:
            now = kserve.traffic_of(loaded)
        except (OSError, RuntimeError, ValueError) as exc:
            raise CommandError(f"cannot read the registry: {exc}; or name the versions with "
                               "--champion/--canary/--weight") from exc
        champion, canary, weight, mode = now.champion, now.canary, now.weight, now.mode
    try:
        document = kserve.render_inference_service(
            loaded, champion, canary, weight, namespace=args.namespace, image=args.image,
            mode=mode, name=args.name)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from exc
    output = output_file(args.output) if args.output else \
        loaded.project_root / "build" / f"{loaded.spec.name}-inferenceservice.yaml"
    if problems := kserve.validate(document):
        for problem in problems:
            print(f"{output}: {problem}", file=sys.stderr)
        return EXIT_BAD_SPEC
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(yaml.safe_dump(document, sort_keys=False, width=100))
    predictor = document["spec"]["predictor"]
    served = predictor["containers"][0]["args"][-1]
    split = (f"canary v{served} at {predictor['canaryTrafficPercent']}%, champion "
             f"v{champion} at {100 - predictor['canaryTrafficPercent']}%"
             if "canaryTrafficPercent" in predictor else f"v{served} at 100%")
    shadow = f" (shadow v{canary} not rendered: KServe cannot mirror)" \
        if mode == "shadow" and canary else ""
    print(f"wrote {output}: InferenceService {document['metadata']['name']} "
          f"({args.namespace}), {document['metadata']['annotations']['loopline.dev/model']} "
          f"{split}{shadow}",
          file=sys.stderr)
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
    if args.rollout and args.schedule:
        raise CommandError("--rollout is a recurring run every rollout.every: drop --schedule",
                           EXIT_BAD_SPEC)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            if args.rollout:
                from loopline.backends.kfp.rollout import recurring_run

                result = recurring_run(loaded, args.host, args.experiment, args.image,
                                       args.project_root, params)
            else:
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
    compile_cmd.add_argument("target", choices=["dvc", "kfp", "kserve"])
    compile_cmd.add_argument("file")
    compile_cmd.add_argument("-o", "--output",
                             help="default: dvc.yaml at the project root; build/<name>.yaml; "
                             "build/<name>-inferenceservice.yaml")
    compile_cmd.add_argument("--image", help="kfp, kserve: step image (default "
                             "$LOOPLINE_STEP_IMAGE, else loopline-step:<version>)")
    compile_cmd.add_argument("--namespace", default="default", help="kserve: its namespace")
    compile_cmd.add_argument("--name", help="kserve: the InferenceService's name (default: "
                             "from registry.model_name)")
    compile_cmd.add_argument("--champion", metavar="V", help="kserve: the champion's version "
                             "(default: the registry's champion alias)")
    compile_cmd.add_argument("--canary", metavar="V", help="kserve: the canary's version "
                             "(default: the rollout's; needs --weight)")
    compile_cmd.add_argument("--weight", type=int, metavar="N",
                             help="kserve: the canary's share of traffic, %%")
    compile_cmd.add_argument("--project-root", default="/app",
                             help="kfp: where the project lives in the step image")
    compile_cmd.add_argument("--rollout", action="store_true",
                             help="kfp: the rollout controller's one-look pipeline "
                                  "(build/<name>-rollout.yaml), for a recurring run")
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
    submit.add_argument("--rollout", action="store_true",
                        help="a recurring run of the rollout controller, every rollout.every")
    submit.add_argument("--params", help='JSON overrides, e.g. \'{"train": {"max_iter": 300}}\'')
    submit.add_argument("--set", action="append", help=argparse.SUPPRESS)
    submit.set_defaults(fn=cmd_submit)
