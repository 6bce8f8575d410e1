"""The `loopline` command: one module per command group, each registering its own sub-commands.

Every import of substance happens inside the command that needs it, so `loopline --help` and
`loopline validate-spec` stay well under half a second.
"""

from __future__ import annotations

import argparse
import os
import sys

from loopline.cli import (
    alerts,
    ci,
    components,
    dashboard,
    drift,
    features,
    feedback,
    init,
    models,
    monitor,
    rollout,
    run,
    serve,
    spec,
    suggest,
)
from loopline.cli import compile as compile_cmd
from loopline.cli.common import EXIT_FAILED, CommandError, Subcommands

# In the order `loopline --help` lists them.
REGISTER = (spec.register_validate, run.register_run, drift.register, run.register_step,
            compile_cmd.register_compile, compile_cmd.register_submit, spec.register_schema,
            suggest.register, components.register, init.register, features.register,
            models.register, serve.register, serve.register_replay, monitor.register,
            rollout.register, ci.register, feedback.register, dashboard.register,
            alerts.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopline", description="One YAML spec for a model's life, run anywhere.")
    parser.add_argument("--version", action="version", version=_version())
    sub: Subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTER:
        register(sub)
    return parser


def _version() -> str:
    from loopline import __version__

    return f"loopline {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        # Imported only now: the environment module loads the spec layer (pydantic), which
        # `loopline --help` must not pay for.
        from loopline.runtime.environment import MissingSecret

        if not isinstance(exc, MissingSecret):
            raise
        print(f"error: {exc}", file=sys.stderr)  # a deployment without its secrets
        return EXIT_FAILED


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
