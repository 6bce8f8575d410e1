"""`loopline alerts test SPEC`: send a test event through the spec's `alerts:` routes and say,
one line per route, what each destination answered (before a real incident has to)."""

from __future__ import annotations

import argparse

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


@spec_errors
def cmd_alerts_test(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.runtime import alerting
    from loopline.spec.alerts import EVENT_KINDS

    if args.kind not in EVENT_KINDS:
        raise CommandError(f"--kind {args.kind}: not an event kind; kinds: "
                           + ", ".join(EVENT_KINDS), EXIT_BAD_SPEC)
    if loaded.spec.alerts is None or not loaded.spec.alerts.routes:
        raise CommandError(f"{loaded.display} has no `alerts:` routes to test", EXIT_BAD_SPEC)
    ev = alerting.sample_event(loaded, args.kind)
    results = alerting.deliveries(loaded, ev, test=True)
    for delivery in results:
        print(delivery)
    routed = [d for d in results if d.status != "unrouted"]
    if ev.kind == "monitor.breached" and any(d.status == "sent" and d.route.startswith(
            "pagerduty ") for d in routed):
        print(f"(PagerDuty keeps {ev.dedup_key} open: `loopline alerts test {args.file} "
              "--kind monitor.recovered` resolves it)")
    if not routed:
        print(f"no route takes {ev.kind} ({ev.severity})")
    return EXIT_OK if routed and all(d.status == "sent" for d in routed) else EXIT_FAILED


def register(sub: Subcommands) -> None:
    alerts = sub.add_parser("alerts", help="check a spec's alert routes (Slack, PagerDuty, "
                            "webhooks)")
    actions = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    test = spec_command(actions, "test", cmd_alerts_test,
                        "send a test event through the spec's `alerts:` routes, one line "
                        "per route (not de-duplicated; exit 1 unless every route took it)")
    test.add_argument("--kind", default="monitor.breached",
                      help="the event kind to send (default: monitor.breached; "
                           "monitor.recovered resolves it)")
