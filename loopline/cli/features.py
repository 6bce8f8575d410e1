"""`loopline features get ENTITY=VALUE...`: what the online store serves for an entity."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from loopline.cli.common import EXIT_BAD_SPEC, CommandError, Subcommands


def features_command(args: argparse.Namespace) -> int:
    from loopline.components.contract import StepFailed
    from loopline.integrations.feast import declared_names, open_store
    from loopline.integrations.feast_config import repo_problem
    from loopline.spec.hints import did_you_mean

    repo = Path(args.repo)
    if problem := repo_problem(repo, args.config):
        hint = " (--config names a file in the repo)" if problem[0] == "config" else ""
        print(f"error: {problem[1]}{hint}", file=sys.stderr)
        return 2
    entity: dict[str, object] = {}
    for item in args.entity:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: expected ENTITY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        entity[key] = value
    services = declared_names(repo)["service"]
    if args.service and args.service not in services:
        raise CommandError(f"no feature service {args.service!r} in {repo}"
                           + (did_you_mean(args.service, services) or
                              f" (it defines: {', '.join(sorted(services)) or 'none'})"),
                           EXIT_BAD_SPEC)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            store = open_store(repo, apply=False, config=args.config)
        except StepFailed as exc:  # an unset variable, an unreachable registry
            raise CommandError(str(exc)) from None
        views = store.list_feature_views()
        join_keys = sorted({key for view in views for key in view.join_keys})
        if unknown := sorted(set(entity) - set(join_keys)):
            raise CommandError(f"{', '.join(unknown)}: not an entity key of {repo} (its keys: "
                               f"{', '.join(join_keys) or 'none'})", EXIT_BAD_SPEC)
        if args.service:
            features = store.get_feature_service(args.service)
        else:
            keys = set(entity)
            features = [f"{view.name}:{field.name}" for view in views
                        if set(view.join_keys) <= keys for field in view.features]
        started = time.perf_counter()
        values = store.get_online_features(features=features, entity_rows=[entity]).to_dict()
        elapsed_ms = (time.perf_counter() - started) * 1000
    result = {k: v[0] for k, v in values.items()}
    print(json.dumps(result, indent=2, default=str))
    print(f"({elapsed_ms:.1f} ms)", file=sys.stderr)
    return 0 if any(v is not None for k, v in result.items() if k not in entity) else 1


def register(sub: Subcommands) -> None:
    features = sub.add_parser("features", help="online feature lookups (Feast)")
    features.add_argument("action", choices=["get"])
    features.add_argument("entity", nargs="+", metavar="ENTITY=VALUE")
    features.add_argument("--repo", default="feature_repo")
    features.add_argument("--config", default="feature_store.yaml",
                          help="the repo's Feast config file, relative to the repo (what the "
                               "spec's feast steps name: feature_store.production.yaml under "
                               "the production profile)")
    features.add_argument("--service", help="a FeatureService (default: every matching view)")
    features.set_defaults(fn=features_command)
