"""`loopline init DIR`: copy a project skeleton that validates and runs as it is."""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.resources import files
from pathlib import Path

from loopline.cli.common import EXIT_FAILED, EXIT_OK, Subcommands

# Local state and outputs, never committed: the artifact store, the SQLite registry with its
# model files (mlruns/), Loopline's caches and logs, W&B's offline runs, CI reports.
GITIGNORE = ("artifacts/\nmlflow.db\nmlflow.db.lock\nmlruns/\n.loopline/\nwandb/\n"
             "loopline-ci/\n")


def create_project(target: Path) -> Path:
    """Copy the skeleton into a new (or empty) folder, with its CI files (GitHub Actions and
    GitLab, and the requirements.txt they install from) and a generated dvc.yaml."""
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file; name a new folder")
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty")
    if not target.parent.is_dir():
        raise FileExistsError(f"cannot create {target}: no folder {target.parent}")
    source = Path(str(files("loopline") / "scaffold_data"))
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / ".gitignore").write_text(GITIGNORE)
    from loopline.backends.dvc import DvcCompiler
    from loopline.ci.workflows import REQUIREMENTS, render_requirements, write_ci_files
    from loopline.pipeline.load import load_pipeline
    from loopline.spec.profile import no_profile

    # Before dvc.yaml: a stage reading packaged data depends on the requirements.txt pin.
    (target / REQUIREMENTS).write_text(render_requirements())
    write_ci_files(target)
    with no_profile():
        loaded = load_pipeline(target / "pipelines" / "train.yaml")
    DvcCompiler().compile(loaded, target / "dvc.yaml")
    return target


def cmd_init(args: argparse.Namespace) -> int:
    try:
        created = create_project(Path(args.dir))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"created {created}; next: cd {args.dir} && loopline run pipelines/train.yaml\n"
          "CI: .github/workflows/loopline.yml (GitHub Actions) and .gitlab-ci.yml (GitLab) run "
          "`loopline ci pr` on pull requests and `loopline ci main` on main, installing "
          "requirements.txt", file=sys.stderr)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    init = sub.add_parser("init", help="create a project skeleton that runs as it is")
    init.add_argument("dir")
    init.set_defaults(fn=cmd_init)
