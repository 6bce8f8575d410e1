"""The `<spec>_rollout` DAG against real Airflow: parsed by a DagBag, run by `dag.test()` on
`loopline init`'s project (trained, v1 champion) with a real v2 in a real registry and real
prediction-log files. `dag.test()` in Airflow 3 runs reschedule-mode sensors as a scheduler
would (the task goes up for reschedule, its worker slot free, and runs again), so the DAG
is tested as it ships, in `reschedule` mode."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loopline.integrations import prediction_log
from tests.integration.backends import test_airflow
from tests.integration.backends.test_airflow import HEAVY, _dag_test
from tests.support import mlflow_uris_restored, registry_client
from tests.support.airflow import airflow_env, python
from tests.support.live_monitoring import MODEL, trained_project, with_rollout

pytestmark = pytest.mark.slow

ROLLOUT = """
rollout:
  steps: [50, 100]
  min_requests: 20
  min_duration: 0s
  max_duration: 1m
  every: 1s
  gates: {metric: null}
"""
DAG_ID = "train_rollout"
# The Airflow tests' fixtures: a metadata database migrated once, copied for each test.
migrated_sqlite = test_airflow.migrated_sqlite
airflow_home = test_airflow.airflow_home


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("rollout") / "project")


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    return with_rollout(trained, tmp_path / "project", ROLLOUT)


def _start(project: Path) -> dict[str, Any]:
    from loopline.pipeline.load import load_pipeline
    from loopline.runtime import rollout

    with mlflow_uris_restored():
        return rollout.start(load_pipeline(project / "pipelines" / "train.yaml"), "2")


def _log(project: Path, version: str, route: str, rows: int, errors: int = 0) -> None:
    """Real prediction-log rows, timed now (after the step began, before the next look)."""
    now = datetime.now(UTC)
    prediction_log.write_file(
        prediction_log.log_folder(str(project / "artifacts"), MODEL),
        [prediction_log.row(f"{route}-{now:%H%M%S%f}-{i}", now + timedelta(microseconds=i),
                            version, route, 500 if i < errors else 200, 5.0,
                            None if i < errors else 0.3)
         for i in range(rows)])


def _state(project: Path) -> dict[str, Any]:
    path = project / "artifacts" / "monitoring" / MODEL / "rollout.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _aliases(project: Path) -> dict[str, str]:
    return {k: str(v) for k, v in registry_client(project).get_registered_model(MODEL)
            .aliases.items()}


def _rollout_events(project: Path) -> list[tuple[str, int]]:
    from loopline.integrations.mlflow_registry import history

    return [(e["action"], e["step"]) for e in history(registry_client(project), MODEL)
            if e.get("kind") == "rollout"]


def _states(info: dict[str, Any]) -> dict[str, str]:
    return {task: ti["state"] for task, ti in info["tis"].items()}


def test_the_rollout_dag_parses_light_with_reschedule_sensors(project: Path,
                                                              tmp_path: Path) -> None:
    env = airflow_env(tmp_path / "home", project / "pipelines")
    (tmp_path / "home").mkdir()
    code = textwrap.dedent(f"""
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={env["AIRFLOW__CORE__DAGS_FOLDER"]!r})
        dag = bag.dags["{DAG_ID}"]
        print(json.dumps({{
            "dags": sorted(bag.dags), "errors": bag.import_errors,
            "tasks": {{t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}},
            "sensors": {{t.task_id: [t.mode, t.poke_interval, t.timeout] for t in dag.tasks
                        if t.task_id.startswith("step_")}},
            "outcome_rule": dag.get_task("outcome").trigger_rule.value,
            "schedule": dag.timetable.summary, "runs": [dag.max_active_runs, dag.catchup],
            "heavy": sorted(set({HEAVY!r}) & {{m.split(".")[0] for m in sys.modules}}),
            "rollout_imported": "loopline.runtime.rollout" in sys.modules,
        }}))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["dags"] == ["drift", "train", DAG_ID]
    assert info["tasks"] == {"step_1_50pct": [], "step_2_100pct": ["step_1_50pct"],
                             "outcome": ["step_1_50pct", "step_2_100pct"]}
    # No worker slot between looks; a look every `rollout.every`; a step waits at most its
    # max_duration (1m) plus the margin.
    assert info["sensors"] == {"step_1_50pct": ["reschedule", 1.0, 660.0],
                               "step_2_100pct": ["reschedule", 1.0, 660.0]}
    assert info["outcome_rule"] == "none_failed_min_one_success"
    # The training DAG's promote (the model Asset) starts it; the cron picks up manual starts.
    assert info["schedule"] == "Asset or */10 * * * *"
    assert info["runs"] == [1, False]
    assert info["heavy"] == [] and info["rollout_imported"] is False


def _reschedules(airflow_home: Path) -> dict[str, int]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT ti.task_id, count(*) FROM task_reschedule r JOIN "
                          "task_instance ti ON r.ti_id = ti.id WHERE ti.dag_id = ? "
                          "GROUP BY ti.task_id", (DAG_ID,)).fetchall()
    return dict(rows)


def _dag_test_in_thread(airflow_home: Path,
                        project: Path) -> tuple[threading.Thread, dict[str, Any]]:
    """`dag.test()` (its own process) while this test acts on the project meanwhile."""
    result: dict[str, Any] = {}
    env = airflow_env(airflow_home, project / "pipelines")

    def test() -> None:
        try:
            result["output"], result["info"] = _dag_test(env, DAG_ID)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = exc

    run = threading.Thread(target=test, daemon=True)
    run.start()
    return run, result


def _joined(run: threading.Thread, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    run.join(timeout=300)
    assert not run.is_alive(), "dag.test still running"
    if "error" in result:
        raise result["error"]
    return result["output"], result["info"]


def _until(condition: Any, run: threading.Thread, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.is_alive(), "dag.test ended first"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_a_failing_challenger_is_rolled_back_at_the_first_step(
        project: Path, airflow_home: Path) -> None:
    """Another controller holds the model's rollout at first: the sensor says so and waits
    (rescheduled); once it is free, its look rolls the failing challenger back."""
    from loopline.pipeline.load import load_pipeline
    from loopline.runtime import rollout

    started = _start(project)
    assert started["status"] == "running" and started["step"] == 0
    _log(project, "1", "champion", 40)
    _log(project, "2", "canary", 40, errors=12)  # 30 % answered 500
    with mlflow_uris_restored(), \
            rollout.watching(load_pipeline(project / "pipelines" / "train.yaml")):
        run, result = _dag_test_in_thread(airflow_home, project)
        _until(lambda: _reschedules(airflow_home).get("step_1_50pct", 0) >= 1, run)
        assert _state(project)["status"] == "running"  # it did not act while busy
    output, info = _joined(run, result)
    assert info["state"] == "success", output[-5000:]
    assert "another controller" in output and "reading the recorded state" in output
    # Ended at step 1: it never reached step 2, and `outcome` says what happened.
    assert _states(info) == {"step_1_50pct": "success", "step_2_100pct": "skipped",
                             "outcome": "success"}
    assert info["operators"]["step_1_50pct"] == "RolloutStepSensor"
    assert "errors 30.0% of 40 requests (limit 5.0%)" in output, output[-5000:]
    aliases = _aliases(project)
    assert aliases["champion"] == "1" and "canary" not in aliases
    assert _rollout_events(project) == [("started", 0), ("rolled_back", 0)]
    state = _state(project)
    assert state["status"] == "rolled_back" and state["weight"] == 0


def test_no_rollout_skips_the_run(project: Path, airflow_home: Path) -> None:
    output, info = _dag_test(airflow_env(airflow_home, project / "pipelines"), DAG_ID)
    assert info["state"] == "success", output[-5000:]
    assert set(_states(info).values()) == {"skipped"}, info["tis"]
    assert "no rollout running (idle): nothing to watch" in output
    aliases = _aliases(project)
    assert aliases["champion"] == "1" and "canary" not in aliases
    assert _rollout_events(project) == []


def test_a_healthy_challenger_walks_the_steps_and_is_promoted(
        project: Path, airflow_home: Path) -> None:
    """Step 2 has no traffic when its sensor first looks: it goes up for reschedule (its
    worker slot free) until the traffic below arrives, then the challenger is promoted."""
    _start(project)
    _log(project, "1", "champion", 40)
    _log(project, "2", "canary", 40)
    run, result = _dag_test_in_thread(airflow_home, project)
    _until(lambda: _state(project).get("step") == 1, run)
    time.sleep(3)  # a few looks at step 2 with nothing to judge: wait, rescheduled
    _log(project, "2", "canary", 40)
    output, info = _joined(run, result)
    assert info["state"] == "success", output[-5000:]
    assert set(_states(info).values()) == {"success"}, info["tis"]
    assert _reschedules(airflow_home).get("step_2_100pct", 0) >= 1
    assert info["tis"]["step_2_100pct"]["try_number"] == 1  # reschedules, not retries
    aliases = _aliases(project)
    assert aliases["champion"] == "2" and aliases["previous_champion"] == "1", aliases
    assert "canary" not in aliases
    assert _rollout_events(project) == [("started", 0), ("advanced", 1), ("promoted", 1)]
