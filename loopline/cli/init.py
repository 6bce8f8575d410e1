"""`loopline init DIR`: copy a project skeleton that validates and runs as it is."""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib.resources import files
from pathlib import Path

from loopline.cli.common import EXIT_FAILED, EXIT_OK, Subcommands

GITIGNORE = "artifacts/\nmlflow.db\n.loopline/\nwandb/\n"


def create_project(target: Path) -> Path:
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
    from loopline.pipeline.load import load_pipeline
    from loopline.spec.profile import no_profile

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
    print(f"created {created}; next: cd {args.dir} && loopline run pipelines/train.yaml",
          file=sys.stderr)
    return EXIT_OK


def register(sub: Subcommands) -> None:
    init = sub.add_parser("init", help="create a project skeleton that runs as it is")
    init.add_argument("dir")
    init.set_defaults(fn=cmd_init)
