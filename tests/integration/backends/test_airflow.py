"""Airflow 3 backend against real Airflow: DagBag parsing, dag.test(), and a real scheduler
(LocalExecutor on PostgreSQL) triggered through the REST API."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import registry_client, require_service, run_cli, run_json
from tests.support.airflow import (
    BIN,
    PortTaken,
    airflow_env,
    free_port,
    migrate,
    python,
    second_interpreter,
    wait_for_celery_workers,
    wait_for_port,
)
from tests.support.parity import assert_same_metrics, local_summary, parity_project
from tests.support.services import postgres_database, postgres_url

pytestmark = pytest.mark.slow
HEAVY = ["pandas", "numpy", "sklearn", "mlflow", "great_expectations", "feast", "torch",
         "evidently", "matplotlib", "pyarrow", "duckdb"]

FLAKY_SPEC = """\
name: flaky
schedule: null
steps:
  flaky:
    component: tests.support.slow_component:FLAKY
    params: {fail_times: 1}
    retries: 1
    retry_delay_s: 0
"""


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `airflow db migrate` per module: each test starts from its own copy of the result."""
    home = tmp_path_factory.mktemp("airflow_template")
    migrate(airflow_env(home, home))
    return home / "airflow.db"


@pytest.fixture
def airflow_home(tmp_path: Path, migrated_sqlite: Path) -> Path:
    """This test's AIRFLOW_HOME, holding a freshly migrated metadata database of its own."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(migrated_sqlite, home / "airflow.db")
    return home


def _project(tmp_path: Path, name: str = "p") -> Path:
    return parity_project(tmp_path / name)


def _unscheduled(project: Path, *specs: str) -> None:
    """No schedules in this copy: unpausing a scheduled DAG starts a run of its own (the last
    interval), and only the runs a test starts itself should run."""
    for name in specs:
        spec = project / "pipelines" / f"{name}.yaml"
        text = spec.read_text()
        schedule = next(line for line in text.splitlines() if line.startswith("schedule: "))
        spec.write_text(text.replace(f"{schedule}\n", ""))


SHAPES_SPEC = """\
name: shapes
steps:
  plain: {component: tests.support.slow_component:COMPONENT}
  light: {component: tests.support.slow_component:COMPONENT, resources: {cpu: 500m}}
  heavy: {component: tests.support.slow_component:COMPONENT, resources: {cpu: 2.5}}
  gpu: {component: tests.support.slow_component:COMPONENT, resources: {cpu: 2, gpu: 1}}
"""


def test_dagbag_loads_every_spec_and_isolates_a_broken_one(tmp_path: Path) -> None:
    project = _project(tmp_path)
    pipelines = project / "pipelines"
    (pipelines / "broken.yaml").write_text("name: broken\nsteps:\n  a:\n    component: nope.x\n")
    (pipelines / "shapes.yaml").write_text(SHAPES_SPEC)
    env = airflow_env(tmp_path / "home", pipelines)
    (tmp_path / "home").mkdir()
    code = textwrap.dedent(f"""
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(Path(env["AIRFLOW__CORE__DAGS_FOLDER"]))!r})
        flights = bag.dags["flights"]
        print(json.dumps({{
            "dags": sorted(bag.dags), "errors": bag.import_errors,
            "tasks": {{t.task_id: sorted(t.upstream_task_ids) for t in flights.tasks}},
            "retries": flights.get_task("train").retries,
            "timeout": flights.get_task("train").execution_timeout.total_seconds(),
            "params": sorted(flights.params.keys()),
            "outlets": [a.uri for a in flights.get_task("promote").outlets],
            "schedule": flights.timetable.summary,
            "drift_tasks": {{t.task_id: sorted(t.upstream_task_ids)
                            for t in bag.dags["flights_drift"].tasks}},
            "retrain_outlets": [
                a.uri for a in bag.dags["flights_drift"].get_task("retrain").outlets],
            "heavy": sorted(set({HEAVY!r}) & {{m.split(".")[0] for m in sys.modules}}),
            "runs": {{d.dag_id: [d.max_active_runs, d.catchup] for d in bag.dags.values()}},
            "slots": {{d.dag_id: {{t.task_id: [t.pool_slots, t.queue] for t in d.tasks}}
                      for d in bag.dags.values()}},
        }}))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["dags"] == ["flights", "flights_drift", "flights_rollout", "flights_scoring",
                            "flights_torch", "shapes"]
    assert len(info["errors"]) == 1
    (error,) = info["errors"].values()
    assert "broken.yaml:4: steps.a.component: unknown component 'nope.x'" in error
    assert info["tasks"]["evaluate"] == ["feast", "train", "validate"]
    assert info["tasks"]["ingest"] == []
    assert info["retries"] == 1 and info["timeout"] == 1800
    assert info["params"] == ["data", "drift", "features", "gate", "platform", "promote",
                              "rollout", "scoring", "torch", "train"]
    assert "loopline://models/flights-late-arrival" in info["outlets"]
    # its own weekly schedule, or a drift job's retrain event, whichever comes first
    assert info["schedule"] == "Asset or 0 0 * * 0"
    assert info["drift_tasks"] == {"drift": [], "retrain": ["drift"]}
    assert info["retrain_outlets"] == ["loopline://retrain/flights"]
    assert info["heavy"] == []
    # Steps share artifact paths: one run of a pipeline at a time, and no backfill of every
    # interval since 2024-01-01 when a scheduled DAG is unpaused.
    assert info["runs"] == {dag: [1, False] for dag in info["dags"]}
    # A pool slot per CPU core asked for (rounded up, at least one), and GPU steps on the GPU
    # queue that only GPU workers listen to; everything else on Airflow's default queue.
    assert info["slots"]["shapes"] == {"plain": [1, "default"], "light": [1, "default"],
                                       "heavy": [3, "default"], "gpu": [2, "gpu"]}
    assert info["slots"]["flights"]["train"] == [2, "default"]  # cpu: 2
    assert info["slots"]["flights_torch"]["train"] == [2, "gpu"]  # gpu: {count: 1, ...}
    assert {queue for task, (_, queue) in info["slots"]["flights_torch"].items()
            if task != "train"} == {"default"}


def _dag_test(env: dict[str, str], dag_id: str,
              conf: dict[str, object] | None = None) -> tuple[str, dict[str, Any]]:
    """`dag.test()` in a subprocess: its output, and what Airflow's metadata database says
    about the run (task instances, asset events), the operators and the process id."""
    code = textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
        import loopline_dags
        from sqlalchemy import select
        from airflow.models.asset import AssetEvent
        from airflow.utils.session import create_session
        dag = loopline_dags.{dag_id}
        run = dag.test(run_conf={conf!r})
        print("STATE", run.state)
        with create_session() as session:
            tis = {{ti.task_id: {{"state": str(ti.state), "try_number": ti.try_number}}
                   for ti in run.get_task_instances(session=session)}}
            events = [{{"uri": e.uri, "task": e.source_task_id, "extra": e.extra}}
                      for e in session.scalars(select(AssetEvent).where(
                          AssetEvent.source_run_id == run.run_id))]
        print("INFO", json.dumps({{
            "state": str(run.state), "run_id": run.run_id, "pid": os.getpid(),
            "operators": {{t.task_id: type(t).__name__ for t in dag.tasks}},
            "tis": tis, "events": events}}, default=str))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-5000:]
    info = next(json.loads(line[5:]) for line in reversed(result.stdout.splitlines())
                if line.startswith("INFO {"))
    return result.stdout + result.stderr, info


def test_dag_test_gives_the_same_metrics_as_loopline_run(
        tmp_path: Path, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    via_airflow = _project(tmp_path, "airflow")
    env = airflow_env(airflow_home, via_airflow / "pipelines")
    output, info = _dag_test(env, "flights")
    assert "STATE success" in output, output[-5000:]
    manifest = json.loads((via_airflow / "artifacts/flights/evaluate/_loopline.json").read_text())
    assert manifest["orchestrator"] == "airflow"
    assert_same_metrics(manifest["metrics"],
                        local_summary(tmp_path_factory)["steps"]["evaluate"]["metrics"])
    client = registry_client(via_airflow)
    version = client.get_model_version_by_alias("flights-late-arrival", "champion")
    assert version.tags["loopline.orchestrator"] == "airflow"
    assert version.tags["loopline.run_id"].startswith("airflow-")
    # The model Asset's event, recorded by Airflow, says which version and whether promoted.
    (event,) = [e for e in info["events"] if e["uri"] == "loopline://models/flights-late-arrival"]
    assert event["task"] == "promote"
    assert event["extra"] == {"version": str(version.version),
                              "aliases": ["challenger", "champion"], "promoted": True,
                              "run_id": version.tags["loopline.run_id"]}


KNOBS_SPEC = """\
name: knobs
schedule: null
steps:
  knobs:
    component: tests.support.slow_component:ECHO
    params:
      estimator: ${train.estimator}
      max_iter: ${train.max_iter}
      learning_rate: ${train.learning_rate}
      min_roc_auc: ${gate.min_roc_auc}
"""


def test_trigger_params_override_params_yaml(tmp_path: Path, airflow_home: Path) -> None:
    """The example's params.yaml under a one-step spec that records what it was given (the
    rule is the DAG's, not the pipeline's: a flights run here cost 45 s and proved nothing
    more)."""
    project = _project(tmp_path)
    (project / "pipelines" / "knobs.yaml").write_text(KNOBS_SPEC)
    env = airflow_env(airflow_home, project / "pipelines")
    # The trigger form sends whole sections; a run's conf may also use dotted keys. A section
    # sent whole keeps the keys it does not name (train.estimator comes from params.yaml).
    output, _ = _dag_test(env, "knobs", {"train": {"max_iter": 7, "learning_rate": 0.3},
                                         "gate.min_roc_auc": 0.5})
    assert "STATE success" in output, output[-5000:]
    manifest = json.loads((project / "artifacts/knobs/knobs/_loopline.json").read_text())
    assert manifest["params"]["max_iter"] == 7 and manifest["orchestrator"] == "airflow"
    received = json.loads((project / "artifacts/knobs/knobs/params.json").read_text())
    assert received == {"estimator": "hist_gradient_boosting", "max_iter": 7,
                        "learning_rate": 0.3, "min_roc_auc": 0.5}


def test_failed_step_is_retried_with_its_error_in_the_log(tmp_path: Path,
                                                         airflow_home: Path) -> None:
    pipelines = tmp_path / "p" / "pipelines"
    pipelines.mkdir(parents=True)
    (pipelines / "flaky.yaml").write_text(FLAKY_SPEC)
    env = airflow_env(airflow_home, pipelines)
    output, info = _dag_test(env, "flaky")
    assert "STATE success" in output
    assert "ConnectionError: flaky on attempt 1" in output  # the component's own error
    # Two attempts in two Airflow tries: Airflow retried the task. Loopline retrying inside
    # one task would show the same two attempts, but in try 1.
    assert (tmp_path / "p" / "attempts").read_text() == "2"
    assert info["tis"] == {"flaky": {"state": "success", "try_number": 2}}


def test_a_verdict_fails_the_task_without_retries(tmp_path: Path, airflow_home: Path) -> None:
    """Bad data or a failed gate gives the same answer on every try: one attempt, no retry,
    as `loopline run` does (Airflow used to retry verdicts like crashes)."""
    pipelines = tmp_path / "p" / "pipelines"
    pipelines.mkdir(parents=True)
    (pipelines / "flaky.yaml").write_text(FLAKY_SPEC.replace(
        "params: {fail_times: 1}", "params: {fail_times: 1, verdict: true}")
        .replace("retries: 1", "retries: 3"))
    env = airflow_env(airflow_home, pipelines)
    output, info = _dag_test(env, "flaky")
    assert "the data says no" in output
    assert (tmp_path / "p" / "attempts").read_text() == "1"
    assert info["tis"] == {"flaky": {"state": "failed", "try_number": 1}}


@pytest.fixture(scope="module")
def migrated_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `airflow db migrate` on PostgreSQL per module, used as a template."""
    require_service("PostgreSQL", 5432)
    with postgres_database("airflow") as name:
        home = tmp_path_factory.mktemp("airflow_pg_template")
        migrate(airflow_env(home, home, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres_url(name)))
        yield name


@pytest.fixture
def postgres_db(migrated_postgres: str) -> Iterator[str]:
    """This test's own migrated Airflow metadata database (a copy of the template)."""
    with postgres_database("airflow", template=migrated_postgres) as name:
        yield postgres_url(name)


class AirflowServices:
    """scheduler + dag-processor + api-server (+ Celery workers) as real processes."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: list[subprocess.Popen[bytes]] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.processes.append(subprocess.Popen([str(BIN / "airflow"), *args],
                                               env={**self.env, **extra_env}, stdout=log,
                                               stderr=subprocess.STDOUT))

    def start_core(self, port: int) -> None:
        """What every deployment runs: the API server (loopback only), scheduler, dag-processor."""
        self.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _api(port: int) -> tuple[object, dict[str, str]]:
    import requests

    base = f"http://127.0.0.1:{port}"
    token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": "x"},
                          timeout=30)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"} \
        if token.ok else {}
    return base, headers


def _trigger_and_wait(port: int, dag_id: str, timeout: float = 420) -> tuple[str, dict]:  # type: ignore[type-arg]
    import requests

    base, headers = _api(port)
    deadline = time.time() + 120
    while True:  # the dag-processor must have parsed and serialized the DAG first
        response = requests.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False},
                                  headers=headers, timeout=30)
        if response.ok:
            break
        assert time.time() < deadline, response.text
        time.sleep(2)
    run = requests.post(f"{base}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None},
                        headers=headers, timeout=30)
    assert run.ok, run.text
    run_id = run.json()["dag_run_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}", headers=headers,
                             timeout=30).json()["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    tis = requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                       headers=headers, timeout=30).json()["task_instances"]
    return state, {ti["task_id"]: ti for ti in tis}


def _task_log(port: int, dag_id: str, run_id: str, task_id: str, attempt: int) -> str:
    import requests

    base, headers = _api(port)
    response = requests.get(
        f"{base}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{attempt}",
        headers={**headers, "Accept": "application/json"}, timeout=30)
    return response.text


def _scheduler_env(tmp_path: Path, pipelines: Path, database: str, port: int,
                   **extra: str) -> dict[str, str]:
    return airflow_env(
        tmp_path / "home", pipelines,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=database,
        AIRFLOW__API__PORT=str(port), AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        **extra)


@contextlib.contextmanager
def _airflow(tmp_path: Path, project: Path, database: str, workers: tuple[str, ...] = (),
             **extra: str) -> Iterator[tuple[int, AirflowServices]]:
    """The core services (and named Celery workers) over the project's pipelines/, on a
    migrated metadata database, yielded once the API server listens and every worker answers
    a ping. Started again on other ports when a port turned out to be taken meanwhile."""
    from cryptography.fernet import Fernet

    home = tmp_path / "home"
    home.mkdir()
    # One configuration for every process: with no airflow.cfg, each service would write its
    # own at start-up with a JWT secret of its own, and the API server would refuse the
    # tokens of the scheduler's tasks ("Invalid auth token").
    (home / "airflow.cfg").write_text("# everything is set by AIRFLOW__* variables\n")
    extra = {"AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
             "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
             "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(), **extra}
    for attempt in range(3):
        port = free_port()
        env = _scheduler_env(tmp_path, project / "pipelines", database, port, **extra)
        services = AirflowServices(env, tmp_path / ("logs" if not attempt else f"logs{attempt}"))
        try:
            services.start_core(port)
            for worker in workers:  # each serves its task logs on a port of its own
                services.start(worker, "celery", "worker", "--concurrency", "1",
                               "--celery-hostname", f"{worker}@%h", LOOPLINE_TEST_WORKER=worker,
                               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
            wait_for_port(port, services.processes, services.logs)
            if workers:
                wait_for_celery_workers(env["AIRFLOW__CELERY__BROKER_URL"], list(workers),
                                        services.processes, services.logs)
        except PortTaken:
            services.stop()
            if attempt == 2:
                raise
            continue
        except BaseException:
            services.stop()
            raise
        break
    try:
        yield port, services
    finally:
        services.stop()


def _dag_runs(port: int, dag_id: str) -> list[dict]:  # type: ignore[type-arg]
    import requests

    base, headers = _api(port)
    return requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns", headers=headers,
                        timeout=30).json()["dag_runs"]


def _unpause(port: int, dag_id: str) -> None:
    import requests

    base, headers = _api(port)
    deadline = time.time() + 120
    while not requests.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False},
                             headers=headers, timeout=30).ok:
        assert time.time() < deadline, f"{dag_id} never parsed"
        time.sleep(2)


@pytest.mark.services
def test_drift_dag_starts_the_training_dag_through_an_asset_event(
        tmp_path: Path, postgres_db: str) -> None:
    project = _project(tmp_path)
    training = project / "pipelines" / "flights.yaml"
    # No schedules in this copy: only the drift job's Asset event can start training, and
    # only the manual drift runs below (unpausing a scheduled DAG would start one itself).
    _unscheduled(project, "flights", "flights_drift")
    # A champion (trained with other settings than the DAG's, so Airflow's retraining is real
    # work) and a drifted batch: July flights against a January model.
    assert run_json(training, "--set", "train.max_iter=20")["model"]["aliases"] \
        == ["challenger", "champion"]
    run_json(project / "pipelines" / "flights_scoring.yaml", "--set", "scoring.month=7")
    with _airflow(tmp_path, project, postgres_db,
                  AIRFLOW__CORE__EXECUTOR="LocalExecutor") as (port, _):
        _unpause(port, "flights")
        state, tasks = _trigger_and_wait(port, "flights_drift")
        assert state == "success" and tasks["retrain"]["state"] == "success", \
            {t: ti["state"] for t, ti in tasks.items()}
        deadline = time.time() + 420
        while time.time() < deadline:
            runs = _dag_runs(port, "flights")
            if runs and runs[0]["state"] in ("success", "failed"):
                break
            time.sleep(3)
        assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")]
        (asset_event,) = _asset_events(port, "flights_drift", "retrain")
        # The same drift event again: the trigger skips, no second training run starts.
        state, again = _trigger_and_wait(port, "flights_drift")
        assert state == "success" and again["retrain"]["state"] == "skipped"
        # A skipped trigger emits no Asset event, and without one nothing can start training.
        assert _asset_events(port, "flights_drift", "retrain") == [asset_event]
        assert len(_dag_runs(port, "flights")) == 1
    assert asset_event["uri"] == "loopline://retrain/flights"
    assert [(r["dag_id"], r["run_id"]) for r in asset_event["created_dagruns"]] == \
        [("flights", runs[0]["dag_run_id"])]
    client = registry_client(project)
    history = _history(client)
    events = [e for e in history if e.get("kind") == "retrain"]
    assert [(e["orchestrator"], e["dag"]) for e in events] == [("airflow", "flights")]
    # The event's extra is the recorded trigger: why, which drift run, against which champion.
    assert asset_event["extra"] == {k: events[0].get(k) for k in
                                    ("reason", "key", "champion", "drift_pipeline", "run")}
    assert asset_event["extra"]["champion"] == "1" and asset_event["extra"]["reason"]
    new = client.get_model_version("flights-late-arrival", "2")
    assert new.tags["loopline.orchestrator"] == "airflow"  # trained by the asset-triggered run
    # its gate decided whether the champion moved; either way the history says so
    assert any("2" in (e.get("version"), e.get("candidate")) for e in history
               if e.get("alias") == "champion")
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def _asset_events(port: int, dag_id: str, task_id: str) -> list[dict]:  # type: ignore[type-arg]
    """The Asset events a task emitted, as Airflow recorded them."""
    import requests

    base, headers = _api(port)
    response = requests.get(f"{base}/api/v2/assets/events",
                            params={"source_dag_id": dag_id, "source_task_id": task_id,
                                    "order_by": "timestamp"},
                            headers=headers, timeout=30)
    assert response.ok, response.text
    return list(response.json()["asset_events"])


def _history(client: object) -> list[dict]:  # type: ignore[type-arg]
    from loopline.integrations.mlflow_registry import history

    return history(client, "flights-late-arrival")


FANOUT_SPEC = """\
name: fanout
steps:
""" + "".join(f"""  part_{i}:
    component: tests.support.slow_component:COMPONENT
    params: {{hang_s: {i}}}
""" for i in range(4))


@pytest.mark.services
def test_real_scheduler_with_celery_workers_on_postgres_runs_triggered_dags(
        tmp_path: Path, postgres_db: str, redis_db: int) -> None:
    """The deployment the docs describe: scheduler, dag-processor and API server on a
    PostgreSQL metadata database, tasks on two Celery workers over Redis. (The LocalExecutor
    runs under a real scheduler in the drift test below.)"""
    project = _project(tmp_path)
    _unscheduled(project, "flights")  # the triggered run does the work, not a scheduled one
    (project / "pipelines" / "fanout.yaml").write_text(FANOUT_SPEC)
    (project / "pipelines" / "flaky.yaml").write_text(FLAKY_SPEC)
    # Both workers answer a ping before the first trigger (_airflow waits for them), so the
    # four parts can only spread if the executor really hands them to two workers.
    with _airflow(tmp_path, project, postgres_db, workers=("worker-a", "worker-b"),
                  AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
                  AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:6379/{redis_db}",
                  AIRFLOW__CELERY__RESULT_BACKEND="db+" + postgres_db,
                  AIRFLOW__CORE__HOSTNAME_CALLABLE="tests.support.airflow.hostname",
                  LOOPLINE_TEST_HANG="3") as (port, _):
        state, tasks = _trigger_and_wait(port, "fanout")
        assert state == "success", {t: ti["state"] for t, ti in tasks.items()}
        assert {ti["hostname"] for ti in tasks.values()} == {"worker-a", "worker-b"}
        state, flights = _trigger_and_wait(port, "flights")
        assert state == "success", {t: ti["state"] for t, ti in flights.items()}
        assert all(ti["state"] == "success" for ti in flights.values())
        assert {ti["hostname"] for ti in flights.values()} <= {"worker-a", "worker-b"}
        # A crash is retried by Airflow, and the first try's error is in that try's log.
        state, flaky = _trigger_and_wait(port, "flaky")
        assert state == "success"
        assert flaky["flaky"]["try_number"] == 2
        log = _task_log(port, "flaky", flaky["flaky"]["dag_run_id"], "flaky", 1)
        assert "ConnectionError: flaky on attempt 1" in log
    client = registry_client(project)
    version = client.get_model_version_by_alias("flights-late-arrival", "champion")
    assert version.tags["loopline.orchestrator"] == "airflow"
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_kubernetes_isolation_renders_pods_with_resources(tmp_path: Path) -> None:
    """No cluster here: the pod operators are built and inspected, never submitted."""
    project = _project(tmp_path)
    spec = project / "pipelines" / "flights_torch.yaml"
    spec.write_text(spec.read_text().replace(
        "  resources: {cpu: 2, memory: 4Gi}\n",
        "  resources: {cpu: 2, memory: 4Gi}\n"
        "  isolation: {mode: kubernetes, image: registry.example/loopline:1, namespace: ml}\n")
        .replace("gpu: {count: 1, require: false}",
                 "gpu: {count: 2, type: NVIDIA-A100-SXM4-40GB, require: true}"))
    (project / "pipelines" / "flights.yaml").unlink()
    env = airflow_env(tmp_path / "home", project / "pipelines")
    (tmp_path / "home").mkdir()
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
        import loopline_dags
        dag = loopline_dags.flights_torch
        train, ingest = dag.get_task("train"), dag.get_task("ingest")
        print(json.dumps({{
            "type": type(train).__name__, "image": train.image, "namespace": train.namespace,
            "cmds": train.cmds, "env": {{e.name: e.value for e in train.env_vars}},
            "secrets": {{e.name: [e.value_from.secret_key_ref.name,
                                  e.value_from.secret_key_ref.key]
                        for e in train.env_vars if e.value_from}},
            "limits": train.container_resources.limits,
            "requests": train.container_resources.requests,
            "selector": train.node_selector, "queue": train.queue,
            "ingest_limits": ingest.container_resources.limits,
        }}))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    pod = json.loads(result.stdout.strip().splitlines()[-1])
    assert pod["type"] == "KubernetesPodOperator"
    assert pod["image"] == "registry.example/loopline:1" and pod["namespace"] == "ml"
    assert pod["cmds"][:7] == ["loopline", "step", "pipelines/flights_torch.yaml", "train",
                               "--orchestrator", "airflow", "--fingerprint"]
    assert pod["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "2"}  # never dropped
    assert pod["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert pod["selector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    assert pod["queue"] == "gpu"
    assert pod["ingest_limits"] == {"memory": "4Gi"}
    # The pod derives its run id from Airflow's with the rule in-process tasks use.
    assert pod["env"]["LOOPLINE_ORCHESTRATOR_RUN"] == "{{ run_id }}"
    assert "LOOPLINE_RUN_ID" not in pod["env"]
    # The spec's secrets reach the pod as secret references (Airflow used to drop them, and
    # the step fell back to a SQLite file inside the throwaway container).
    assert pod["secrets"]["AWS_SECRET_ACCESS_KEY"] == ["loopline-s3", "secret-access-key"]
    assert pod["secrets"]["LOOPLINE_LOCK_URL"] == ["loopline-mlflow", "lock-url"]
    assert pod["env"]["AWS_SECRET_ACCESS_KEY"] is None  # no value in the operator
    # An image whose step differs from the one the DAG was built from refuses to run it.
    spec.write_text(spec.read_text().replace("max_epochs: ${torch.max_epochs}", "max_epochs: 1"))
    code, _, err = run_cli(*pod["cmds"][1:], cwd=project)
    assert code == 2 and "step 'train' changed since the airflow task was built; rebuild and " \
        "push the step image" in err, err


def test_external_python_runs_the_step_in_another_interpreter(tmp_path: Path,
                                                              airflow_home: Path) -> None:
    """A real second interpreter process: an environment of its own (its own sys.executable
    and sys.prefix) that sees this venv's packages; in production a separate environment that
    holds the ML stack while Airflow's stays lean."""
    interpreter = second_interpreter(tmp_path / "ml-env")
    pipelines = tmp_path / "p" / "pipelines"
    pipelines.mkdir(parents=True)
    (pipelines / "ext.yaml").write_text(
        "name: ext\ndefaults:\n  isolation: {mode: external_python}\nsteps:\n"
        "  work:\n    component: tests.support.slow_component:COMPONENT\n"
        "  where:\n    component: tests.support.airflow:WHERE\n")
    env = airflow_env(airflow_home, pipelines, LOOPLINE_EXTERNAL_PYTHON=str(interpreter))
    output, info = _dag_test(env, "ext")
    assert "STATE success" in output
    assert info["operators"] == {"work": "ExternalPythonOperator",
                                 "where": "ExternalPythonOperator"}
    manifest = json.loads((tmp_path / "p/artifacts/ext/work/_loopline.json").read_text())
    assert manifest["orchestrator"] == "airflow"
    assert (tmp_path / "p/artifacts/ext/work/data.csv").read_text() == "partial,complete\n"
    # What the step itself saw: the configured interpreter, in a process other than the one
    # running the DAG (an in-process fallback would report Airflow's own python and pid).
    seen = json.loads((tmp_path / "p/artifacts/ext/where/where.json").read_text())
    assert seen["executable"] == str(interpreter)
    assert Path(seen["prefix"]) == tmp_path / "ml-env"
    assert seen["pid"] != info["pid"]


def test_hostile_specs_cost_only_their_own_dag(tmp_path: Path) -> None:
    """Kinds of broken spec that used to take every DAG in the folder down."""
    project = _project(tmp_path)
    pipelines = project / "pipelines"
    hostile = {
        "colon": "name: colon\nsteps: {a: {component: ':X'}}\n",
        "merge": "name: merge\nsteps:\n  a:\n    <<: {component: 1}\n",
        "deep": "name: deep\nsteps: " + "[" * 3000 + "]" * 3000 + "\n",
        "suite_dir": (pipelines / "flights.yaml").read_text()
        .replace("name: flights\n", "name: suite_dir\n")
        .replace("expectations/flights.json", "expectations"),
    }
    for name, text in hostile.items():
        (pipelines / f"{name}.yaml").write_text(text)
    env = airflow_env(tmp_path / "home", pipelines)
    (tmp_path / "home").mkdir()
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {env['AIRFLOW__CORE__DAGS_FOLDER']!r})
        import loopline_dags
        from loopline.backends.airflow.dag import InvalidSpecs
        dags = {{k: v for k, v in vars(loopline_dags).items() if hasattr(v, "dag_id")}}
        try:
            dags["loopline_invalid_specs"].validate()
        except InvalidSpecs as exc:
            problems = str(exc).splitlines()
        print(json.dumps({{"dags": sorted(dags), "problems": problems}}))
    """)
    result = python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"flights", "flights_drift", "flights_scoring", "flights_torch"} <= set(out["dags"])
    for name in hostile:
        located = [p for p in out["problems"] if f"{name}.yaml:" in p]
        assert located, (name, out["problems"])
    assert all(re.match(r"^\S+\.yaml:\d+: ", p) for p in out["problems"]), out["problems"]
