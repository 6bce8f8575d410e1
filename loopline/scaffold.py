"""`loopline init DIR`: copy a project skeleton that validates and runs as it is."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

GITIGNORE = "artifacts/\nmlflow.db\n.loopline/\nwandb/\n"


def create_project(target: Path) -> Path:
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty")
    source = Path(str(files("loopline") / "scaffold_data"))
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / ".gitignore").write_text(GITIGNORE)
    from loopline.backends.dvc import DvcCompiler
    from loopline.components.validation import load_pipeline

    loaded = load_pipeline(target / "pipelines" / "train.yaml")
    DvcCompiler().compile(loaded, target / "dvc.yaml")
    return target
