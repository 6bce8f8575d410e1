"""What every command shares: exit codes, the one-line-per-problem rule, loading a spec."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]
# `sub` in every register(): the parent's sub-command table.
Subcommands = Any


class CommandError(Exception):
    """Bad command-line input or a refused operation: one `error:` line and an exit code,
    never a traceback (`loopline.cli.main` prints it)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def output_file(path: str | Path) -> Path:
    """A file the user asked us to write: its folder must exist (a typo must not create
    folders) and it must not itself be a folder."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{path} is a folder; name a file to write", EXIT_BAD_SPEC)
    if not target.parent.is_dir():
        raise CommandError(f"cannot write {path}: no folder {target.parent}", EXIT_BAD_SPEC)
    return target


def output_folder(path: str | Path) -> Path:
    """A folder the user asked us to fill: it may be created, but not over a file."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CommandError(f"{path} is a file; name a folder", EXIT_BAD_SPEC)
    if not target.parent.is_dir():
        raise CommandError(f"cannot write into {path}: no folder {target.parent}",
                           EXIT_BAD_SPEC)
    return target


def spec_errors(fn: Handler) -> Handler:
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


def load(args: argparse.Namespace) -> Any:
    """The spec named on the command line, checked against its components, with `--set`."""
    from loopline.pipeline.load import load_pipeline

    return load_pipeline(args.file, getattr(args, "set", None) or [])


def spec_command(sub: Subcommands, name: str, fn: Handler,
                 help_text: str) -> argparse.ArgumentParser:
    """A sub-command that takes a spec FILE and `--set` overrides."""
    command = sub.add_parser(name, help=help_text, description=help_text)
    command.add_argument("file", help="pipeline spec (YAML)")
    command.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                         help="override a params.yaml value (repeatable)")
    command.set_defaults(fn=fn)
    return command
