"""Where a model came from, also when it was trained in a step image that has no .git."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.runtime.lineage import git_commit
from tests.support import REPO


def test_outside_git_the_image_build_commit_is_the_lineage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert git_commit(tmp_path / "a") == "none"
    monkeypatch.setenv("LOOPLINE_GIT_COMMIT", "0123abcd")  # Dockerfile: ARG GIT_COMMIT
    assert git_commit(tmp_path / "b") == "0123abcd"
    git_commit.cache_clear()
    assert git_commit(REPO).split("-")[0] != "0123abcd"  # a real checkout says its own
