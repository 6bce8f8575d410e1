"""`loopline dashboard SPEC`: the serving dashboard as one self-contained HTML page, from the
prediction log, the drift step's last summary and (optionally) a running server's /metrics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loopline.cli.common import (
    EXIT_BAD_SPEC,
    EXIT_OK,
    CommandError,
    Subcommands,
    load,
    output_file,
    spec_command,
    spec_errors,
)


@spec_errors
def cmd_dashboard(args: argparse.Namespace) -> int:
    target = output_file(args.output)
    drift_spec = Path(args.drift_spec) if args.drift_spec else None
    if drift_spec is not None and not drift_spec.is_file():
        raise CommandError(f"--drift-spec {args.drift_spec}: no such file", EXIT_BAD_SPEC)
    loaded = load(args)
    from datetime import UTC, datetime

    from loopline.serving import dashboard

    now = datetime.now(UTC)
    try:
        sources = dashboard.Sources(
            since=dashboard.moment(args.since, now, dashboard.DEFAULT_SINCE),
            until=dashboard.moment(args.until, now), drift_spec=drift_spec,
            metrics_url=args.metrics_url)
        data = dashboard.build(loaded, target, sources, now)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from None
    print(f"{len(data.log):,} predictions of {data.model} from {sources.since:%Y-%m-%d %H:%M} "
          f"to {sources.until:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    for line in (data.drift_note, data.live_note, data.server_note):
        if line:
            print(f"  {line}", file=sys.stderr)
    print(target.resolve())
    return EXIT_OK


def register(sub: Subcommands) -> None:
    command = spec_command(sub, "dashboard", cmd_dashboard,
                           "the serving dashboard (traffic, model health, infrastructure, cost) "
                           "as a self-contained HTML page")
    command.add_argument("-o", "--output", default="dashboard.html",
                         help="the page to write (default: dashboard.html)")
    command.add_argument("--since", help="window start: a duration back (24h, 30m) or a UTC "
                                         "time (2026-11-26T07:00); default: 24h")
    command.add_argument("--until", help="window end, the same forms; default: now")
    command.add_argument("--drift-spec", metavar="FILE",
                         help="the drift spec whose last summary to show (default: the spec "
                              "beside SPEC whose retrain.pipeline is SPEC)")
    command.add_argument("--metrics-url", metavar="URL",
                         help="a running server's /metrics, for cache hit rate, CPU, memory, "
                              "workers and cost (not in the log)")
