"""The terminal shows Loopline's progress; what libraries print and crash tracebacks go to
the step's files under .loopline/logs (issue #12 §6)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli


def test_library_noise_goes_to_the_step_log(small_project: Path) -> None:
    code, out, err = run_cli("run", "pipelines/train.yaml", "--json", cwd=small_project)
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    for noise in ("Created version", "Registered model", "\x1b[", "Warning", "View run"):
        assert noise not in err, f"{noise!r} reached the terminal:\n{err}"
    assert "[7/7] promote: running" in err or "promote: succeeded" in err  # progress stays
    logs = small_project / ".loopline" / "logs" / run_id
    assert "Created version '1' of model 'my-model'" in (logs / "promote.log").read_text()


def test_a_crash_is_one_line_with_its_traceback_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "p.yaml").write_text(
        "name: p\nsteps:\n  flaky:\n    component: tests.support.slow_component:FLAKY\n"
        "    params: {fail_times: 1}\n")
    code, out, err = run_cli("run", "pipelines/p.yaml", "--json", cwd=tmp_path)
    assert code == 1
    run_id = json.loads(out)["run_id"]
    shown = f".loopline/logs/{run_id}/flaky.attempt1.traceback"
    assert f"crashed: ConnectionError: flaky on attempt 1 (traceback: {shown})" in err
    assert "Traceback" not in err
    traceback = (tmp_path / shown).read_text()
    assert traceback.startswith("Traceback (most recent call last):")
    assert 'raise ConnectionError(f"flaky on attempt {attempts}")' in traceback
