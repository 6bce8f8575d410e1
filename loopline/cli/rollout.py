"""`loopline rollout status|evaluate|watch|start|advance|promote|abort NAME`: a challenger
walking the spec's `rollout:` steps. NAME is a spec file, or a registered model name whose
spec (the one in `pipelines/` with that model and a `rollout:` block) is found for you."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from loopline.cli.common import EXIT_BAD_SPEC, EXIT_FAILED, EXIT_OK, CommandError, Subcommands

ACTIONS = ("status", "evaluate", "watch", "start", "advance", "promote", "abort")


def find_spec(name: str, overrides: list[str]) -> Any:
    """The spec NAME means: a file, else the spec in pipelines/ that rolls model NAME out."""
    from loopline.pipeline.load import load_pipeline
    from loopline.spec.load import load_spec
    from loopline.spec.paths import find_project_root

    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_pipeline(name, overrides)
    folder = find_project_root(Path.cwd()) / "pipelines"
    found = []
    for path in sorted(folder.glob("*.y*ml")):
        try:
            spec = load_spec(path).spec
        except Exception:  # noqa: BLE001 - a broken neighbour is not this model's spec
            continue
        if spec.rollout is not None and spec.registry and spec.registry.model_name == name:
            found.append(path)
    if len(found) != 1:
        why = "none" if not found else "several: " + ", ".join(p.name for p in found)
        raise CommandError(f"{name}: not a spec file, and the specs in {folder} with "
                           f"registry.model_name {name} and a `rollout:` block are {why}; "
                           "name the spec file", EXIT_BAD_SPEC)
    return load_pipeline(found[0], overrides)


def _figures(side: dict[str, Any]) -> str:
    rate = side.get("error_rate")
    return (f"v{side.get('version')}: {side.get('requests', 0):,} requests, errors "
            f"{'-' if rate is None else f'{rate:.1%}'}, p95 {_ms(side.get('p95_ms'))}, "
            f"p99 {_ms(side.get('p99_ms'))}, labelled {side.get('labelled', 0):,}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def print_state(state: dict[str, Any]) -> None:
    status = state.get("status") or "idle"
    if not state.get("id"):
        print(f"no rollout ({status}); a promote with strategy: canary or `loopline rollout "
              "start` begins one")
        return
    steps = state["steps"]
    print(f"rollout {state['id']} ({state['mode']}): v{state['challenger']} vs champion "
          f"v{state['champion']}: {status.replace('_', ' ')}, step {state['step'] + 1}/"
          f"{len(steps)} ({state['weight']}% on the challenger), steps {steps}")
    look = state.get("decision") or state.get("last_look")
    if look:
        print(f"  champion   {_figures(look['champion'])}")
        print(f"  challenger {_figures(look['challenger'])} (this step)")
        for gate in look.get("gates") or []:
            verdict = {True: "BREACHED", False: "ok", None: "-"}[gate["breached"]]
            print(f"  gate {gate['gate']:24} {verdict:8} {gate['detail']}")
        if metric := look.get("metric"):
            print(f"  metric {metric['outcome']}: {metric['verdict']} ({metric['reason']})")
        print(f"  -> {look['action']}: {look['reason']}")
    if state.get("reason") and status not in ("running", "held"):
        print(f"  ended {state.get('ended_at')}: {state['reason']}")


def cmd_rollout(args: argparse.Namespace) -> int:
    from loopline.runtime import rollout
    from loopline.spec.errors import SpecError

    try:
        loaded = find_spec(args.name, args.set or [])
        if args.action == "watch":
            return _watch(loaded, args)
        if args.action == "start":
            if not args.version:
                raise CommandError("start needs a VERSION: loopline rollout start NAME 3")
            state = rollout.start(loaded, args.version)
        elif args.action == "status":
            state = rollout.evaluate(loaded, act=False)
        else:
            command = None if args.action == "evaluate" else args.action
            state = rollout.evaluate(loaded, command=command)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_SPEC
    except rollout.ControllerBusy as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    except rollout.RolloutError as exc:
        raise CommandError(str(exc), EXIT_BAD_SPEC) from None
    if args.json:
        print(json.dumps(state, indent=2, default=str))
    else:
        print_state(state)
    return EXIT_OK


def _watch(loaded: Any, args: argparse.Namespace) -> int:
    """Look every `rollout.every` while holding the controller lock, so a second watcher
    says who acts and leaves; SIGTERM ends between looks (the state is already written)."""
    from loopline.runtime import rollout
    from loopline.runtime.rollout_state import ACTIVE

    every = args.every or rollout.policy(loaded).every_s
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        with rollout.watching(loaded):
            print(f"watching {loaded.spec.registry.model_name}'s rollouts every {every:g}s "
                  f"({loaded.display})", flush=True)
            seen_active = False
            while not stop.is_set():
                try:
                    state = rollout.evaluate(loaded)
                except rollout.ControllerBusy:
                    raise
                except Exception as exc:  # noqa: BLE001 - a registry blip must not end the watch
                    print(f"look failed, trying again in {every:g}s: {type(exc).__name__}: "
                          f"{str(exc)[:300]}", file=sys.stderr, flush=True)
                    stop.wait(every)
                    continue
                look = state.get("decision") or {}
                if (look and look.get("action") != "wait") or args.verbose:
                    print_state(state)
                active = state.get("status") in ACTIVE
                seen_active = seen_active or active
                if args.until_done and seen_active and not active:
                    return EXIT_OK
                if deadline is not None and time.monotonic() >= deadline:
                    print("watch: --timeout reached", flush=True)
                    return EXIT_FAILED if args.until_done else EXIT_OK
                stop.wait(every)
    except rollout.ControllerBusy as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    return EXIT_OK


def register(sub: Subcommands) -> None:
    command = sub.add_parser(
        "rollout", help="walk a challenger through the rollout steps (status, watch, ...)",
        description="Progressive rollout of the registry's `canary` version: status (a look "
                    "without acting), evaluate (one look that acts: cron), watch (look every "
                    "rollout.every), start VERSION, and a person's advance, promote, abort.")
    command.add_argument("action", choices=ACTIONS)
    command.add_argument("name", help="spec file, or the registered model name")
    command.add_argument("version", nargs="?", help="start: the version to roll out")
    command.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                         help="override a params.yaml value (repeatable)")
    command.add_argument("--json", action="store_true")
    command.add_argument("--every", type=float, help="watch: seconds between looks")
    command.add_argument("--until-done", action="store_true",
                         help="watch: exit once a rollout has ended (promoted or rolled back)")
    command.add_argument("--timeout", type=float, help="watch: stop after this many seconds")
    command.add_argument("--verbose", action="store_true", help="watch: print every look")
    command.set_defaults(fn=cmd_rollout)
