"""`loopline validate-spec` and `loopline schema`: is a spec right, and what may it say."""

from __future__ import annotations

import argparse
import json
import sys

from loopline.cli.common import (
    EXIT_OK,
    Subcommands,
    load,
    output_file,
    spec_command,
    spec_errors,
)


@spec_errors
def cmd_validate_spec(args: argparse.Namespace) -> int:
    loaded = load(args)
    print(f"{loaded.display}: valid ({len(loaded.spec.steps)} steps)")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from loopline.pipeline.schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        output_file(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register_validate(sub: Subcommands) -> None:
    spec_command(sub, "validate-spec", cmd_validate_spec,
                 "check a spec; exit 2 with FILE:LINE errors")


def register_schema(sub: Subcommands) -> None:
    schema = sub.add_parser("schema", help="print the spec's JSON Schema")
    schema.add_argument("-o", "--output")
    schema.set_defaults(fn=cmd_schema)
