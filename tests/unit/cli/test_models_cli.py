"""`loopline models` is a look at a registry: it never creates one where there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli


@pytest.mark.parametrize("action", [["list", "flights"], ["promote", "flights", "1"],
                                    ["rollback", "flights"]])
def test_outside_a_project_no_store_is_created(tmp_path: Path, action: list[str]) -> None:
    code, _, err = run_cli("models", *action, cwd=tmp_path)
    assert code == 1
    assert f"no registry at {tmp_path / 'mlflow.db'}" in err
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, nothing else
