"""A fresh copy of the example project for a benchmark run (nothing cached, own registry)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_example(target: Path) -> Path:
    target.mkdir(parents=True)
    for item in ("pipelines", "expectations"):
        shutil.copytree(REPO / item, target / item)
    shutil.copytree(REPO / "feature_repo", target / "feature_repo",
                    ignore=shutil.ignore_patterns("registry.db", "online.db"))
    shutil.copy(REPO / "params.yaml", target / "params.yaml")
    return target
