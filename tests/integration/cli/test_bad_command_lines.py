"""Every bad command line of the sweep (tests/support/bad_cli.py) is a clear refusal: a
non-zero exit, a message naming what was wrong, and no traceback (issue #12 §5)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tests.support import copy_example, mlflow_uris_restored, run_cli
from tests.support.bad_cli import CASES, SPEC, Case, prepare


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, trained once on two months: models, Feast and drift cases need a champion."""
    project = copy_example(tmp_path_factory.mktemp("bad-cli") / "flights", data__last_month=2,
                           data__eval_from="2013-02-01", train__max_iter=30,
                           gate__min_roc_auc=0.5)
    code, _out, err = run_cli("run", SPEC, cwd=project)
    assert code == 0, err
    prepare(project)
    return project


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_command_line_is_a_clear_refusal(trained: Path, case: Case,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.cli import main

    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(trained)
    captured = io.StringIO()
    with mlflow_uris_restored(), contextlib.redirect_stdout(captured), \
            contextlib.redirect_stderr(captured):
        try:
            code = main(list(case.argv))
        except SystemExit as exc:  # argparse's usage errors: exit 2 and a usage line
            code = exc.code
    output = captured.getvalue()
    assert code in (1, 2), f"{case.name}: exit {code}\n{output}"
    assert "Traceback" not in output, output
    assert case.says in output, f"{case.name}: does not name {case.says!r}\n{output}"
