"""Facts every registered model carries about where it came from."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path


@cache
def git_commit(project_root: Path) -> str:
    """HEAD's commit, with `-dirty` when tracked files changed; outside git (a step image has
    no .git and maybe no git) the commit it was built from, $LOOPLINE_GIT_COMMIT, else `none`."""
    built_from = os.environ.get("LOOPLINE_GIT_COMMIT") or "none"
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return built_from
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=project_root, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return built_from
