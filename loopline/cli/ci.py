"""`loopline ci pr|main|init`: CI/CD for ML (docs/ci.md).

`pr` trains every training spec on its seeded sample and gates it against the base branch
trained on the same sample (quality) and the champion (latency, and for information);
`main` runs the full pipelines into the declared rollout. Both print one Markdown report,
keep it in a folder (with the plots), append it to the step summary and keep one sticky
pull-request comment up to date. Exit 1 when a gate, a validation or a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.cli.common import EXIT_BAD_SPEC, EXIT_OK, CommandError, Subcommands, output_folder

if TYPE_CHECKING:
    from loopline.ci.outcome import CiOutcome

DEFAULT_OUT = "loopline-ci"


def cmd_ci(args: argparse.Namespace) -> int:
    from loopline.ci.report import render
    from loopline.ci.run import run_ci
    from loopline.integrations.report_delivery import deliver, redact, secrets_in
    from loopline.spec.paths import find_project_root

    specs = [Path(s) for s in args.specs]
    if missing := [str(s) for s in specs if not s.is_file()]:
        raise CommandError(f"no spec file {', '.join(missing)}", EXIT_BAD_SPEC)
    root = find_project_root(specs[0] if specs else Path.cwd())
    if not (root / "pipelines").is_dir():
        raise CommandError(f"{root} holds no pipelines/ folder: run this in a Loopline "
                           "project (`loopline init DIR` makes one)", EXIT_BAD_SPEC)
    out = output_folder(args.out)
    out.mkdir(exist_ok=True)
    secrets = secrets_in(os.environ)
    # Everything printed while the pipelines run (progress, step logs, library chatter)
    # passes through the redaction too: a token echoed in an error never reaches the log.
    with contextlib.redirect_stdout(Redacting(sys.stdout, secrets)), \
            contextlib.redirect_stderr(Redacting(sys.stderr, secrets)):
        outcome = run_ci(args.mode, root, specs or None, out=out, base=args.base,
                         force=args.force, report_only=args.report_only)
    text = redact(render(outcome), secrets)
    (out / "report.md").write_text(redact(render(outcome, images=out), secrets))
    (out / "report.json").write_text(redact(json.dumps(_facts(outcome), indent=2,
                                                       default=str), secrets))
    sys.stdout.write(text)
    sys.stdout.flush()
    key = " ".join([args.mode, *sorted(s.name for s in specs)])
    for delivery in deliver(text, key=key):
        mark = "✓" if delivery.ok else "✗"
        print(redact(f"{mark} {delivery.where}: {delivery.detail}", secrets), file=sys.stderr)
    print(f"report: {out / 'report.md'}", file=sys.stderr)
    return outcome.exit_code()


class Redacting(io.TextIOBase):
    """A text stream that writes through `redact` (to a terminal, a CI log)."""

    def __init__(self, stream: Any, secrets: list[str]) -> None:
        self.stream, self.secrets = stream, secrets

    def write(self, text: str) -> int:
        from loopline.integrations.report_delivery import redact

        self.stream.write(redact(text, self.secrets))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return int(self.stream.fileno())

    def isatty(self) -> bool:
        return bool(self.stream.isatty())


def _facts(outcome: CiOutcome) -> dict[str, object]:
    """report.json: what a later job step can branch on without parsing Markdown."""
    return {"mode": outcome.mode, "passed": outcome.passed, "exit_code": outcome.exit_code(),
            "failures": outcome.failures, "head": outcome.head, "base": outcome.base_ref,
            "duration_s": round(outcome.duration_s, 1),
            "specs": [{"spec": s.display, "model": s.model, "status": s.status,
                       "failures": s.failures, "problems": s.problems, "sample": s.sample,
                       "metrics": (s.verdict or {}).get("metrics"),
                       "champion": (s.verdict or {}).get("champion"),
                       "moved": s.moved, "rollout": s.rollout, "lineage": s.lineage}
                      for s in outcome.specs]}


def cmd_init(args: argparse.Namespace) -> int:
    from loopline.ci.workflows import write_ci_files

    root = Path(args.dir)
    if not (root / "pipelines").is_dir():
        raise CommandError(f"{root} holds no pipelines/ folder; `loopline init DIR` makes a "
                           "new project with its CI files", EXIT_BAD_SPEC)
    try:
        written = write_ci_files(root, force=args.force, github=not args.no_github,
                                 gitlab=not args.no_gitlab)
    except (FileExistsError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    ci = sub.add_parser("ci", help="CI/CD for ML: gate pull requests, ship merges",
                        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    modes = ci.add_subparsers(dest="mode", required=True, metavar="MODE")
    for mode, text in (("pr", "train each training spec on its sample, gate it against the "
                              "champion, report"),
                       ("main", "run the full pipelines; a passing model goes to the "
                                "declared rollout, else champion")):
        command = modes.add_parser(mode, help=text, description=text)
        command.add_argument("specs", nargs="*", metavar="SPEC",
                             help="default: every spec in pipelines/ that "
                                  + ("has an evaluate.gate step" if mode == "pr"
                                     else "registers a model"))
        command.add_argument("--out", default=DEFAULT_OUT,
                             help=f"report folder (default {DEFAULT_OUT}/)")
        command.add_argument("--base", help="the git ref whose merge base is trained on the "
                                            "same sample and whose params are compared "
                                            "(default: the pull request's base, else "
                                            "origin/main or main)"
                                            if mode == "pr" else "compare params with this "
                                            "git ref (default: HEAD~1)")
        command.add_argument("--report-only", action="store_true",
                             help="report failed gates and validation, exit 0")
        command.add_argument("--force", action="store_true", help="ignore the step cache")
        command.set_defaults(fn=cmd_ci)
    init = modes.add_parser("init", help="write the GitHub Actions workflow and GitLab CI "
                                         "file into an existing project")
    init.add_argument("dir", nargs="?", default=".")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument("--no-github", action="store_true")
    init.add_argument("--no-gitlab", action="store_true")
    init.set_defaults(fn=cmd_init)
