"""Facts every registered model carries about where it came from."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path


@cache
def git_commit(project_root: Path) -> str:
    """HEAD's commit, with `-dirty` when tracked files changed; `none` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "none"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=project_root, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "none"
