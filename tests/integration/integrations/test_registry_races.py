"""Alias moves that race (#12 §9), and the load-back check of `registry.promote`.

`loopline models promote` and `loopline models rollback` run at the same moment as separate
processes, 20+ pairs, against a real SQLite registry and a real PostgreSQL-backed MLflow
store. After every pair the newest champion move in the history must name the `champion`
alias and its `previous` the `previous_champion` alias; the moves must form one chain; and a
last `models rollback` must go where the history says.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from loopline.components.contract import (
    Component,
    ComponentParams,
    Output,
    StepContext,
    StepResult,
)
from tests.support import require_service, run_cli

MODEL = "racer"
PAIRS = 20
VERSIONS = 4

# Children fork from a server that has already imported the CLI and MLflow: each pair costs
# milliseconds to start, not a cold `python -m loopline` (seconds on two cores).
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload([
    __name__, "loopline.cli", "loopline.cli.models", "loopline.integrations.mlflow_registry",
    "mlflow", "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_store", "sqlalchemy", "psycopg2"])


def _mover(uri: str, log: str, go: Any, done: Any, commands: list[list[str]],
           codes: Any) -> None:
    """One side of every pair, in its own process: each `loopline models ...` starts when
    its rival's does (the `go` barrier) and the parent checks the registry after both
    (`done`). One long-lived process per side: MLflow is opened once, not forty times."""
    from loopline.cli import main

    with open(log, "w") as out, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(out):
        for index, command in enumerate(commands):
            go.wait(timeout=120)
            try:
                codes[index] = main(["models", *command, "--tracking-uri", uri])
            except Exception as exc:  # noqa: BLE001 - reported by the parent
                print(f"{' '.join(command)}: {type(exc).__name__}: {exc}", flush=True)
                codes[index] = 99
            done.wait(timeout=120)


@contextlib.contextmanager
def _movers(uri: str, logs: Path, *sides: list[list[str]]) -> Iterator[Any]:
    """Start one process per side; yields `step()`, which runs the next round of all sides
    at once and returns the commands that failed."""
    go, done = _FORKS.Barrier(len(sides) + 1), _FORKS.Barrier(len(sides) + 1)
    children = []
    for number, commands in enumerate(sides):
        codes = _FORKS.Array("i", [-1] * len(commands))
        log = logs / f"mover-{number}.log"
        child = _FORKS.Process(target=_mover, args=(uri, str(log), go, done, commands, codes))
        child.start()
        children.append((child, codes, log, commands))
    rounds = iter(range(len(sides[0])))

    def step() -> list[str]:
        index = next(rounds)
        go.wait(timeout=120)
        done.wait(timeout=300)
        return [f"{' '.join(commands[index])} exited {codes[index]}: "
                f"{log.read_text()[-300:]}" for _, codes, log, commands in children
                if codes[index] != 0]

    try:
        yield step
    finally:
        for child, *_ in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()


def _seed(uri: str) -> None:
    """VERSIONS verified, gate-passed versions; v2 champion over v1."""
    from loopline.integrations import mlflow_registry as reg
    from loopline.integrations.mlflow_tags import VERDICT, VERIFIED

    client = reg.client(uri)
    client.create_registered_model(MODEL)
    for _ in range(VERSIONS):
        version = str(client.create_model_version(MODEL, source="/nowhere/model").version)
        client.set_model_version_tag(MODEL, version, VERIFIED, "true")
        client.set_model_version_tag(MODEL, version, VERDICT, "passed")
    reg.crown(client, MODEL, "1", reason="seed")
    reg.crown(client, MODEL, "2", reason="seed")


def _champion_moves(client: Any) -> list[dict[str, Any]]:
    from loopline.integrations import mlflow_registry as reg

    return [e for e in reg.history(client, MODEL)
            if e.get("alias") == reg.CHAMPION and e.get("version")]


def _violations(client: Any) -> list[str]:
    """Where aliases and history disagree now (the newest champion move is the truth)."""
    aliases = {a: str(v) for a, v in (client.get_registered_model(MODEL).aliases or {}).items()}
    newest = _champion_moves(client)[-1]
    problems = []
    if aliases.get("champion") != newest["version"]:
        problems.append(f"champion is v{aliases.get('champion')}, history says "
                        f"v{newest['version']}")
    if aliases.get("previous_champion") != str(newest["previous"]):
        problems.append(f"previous_champion is v{aliases.get('previous_champion')}, history "
                        f"says v{newest['previous']}")
    return problems


def _broken_links(client: Any) -> list[str]:
    """Each champion move must start where the one before it ended."""
    moves = _champion_moves(client)
    return [f"move to v{after['version']} says it replaced v{after['previous']}, but "
            f"v{before['version']} was champion" for before, after in pairwise(moves)
            if str(after["previous"]) != before["version"]]


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL database as MLflow's store, dropped afterwards."""
    from tests.support.services import postgres_database, postgres_url

    with postgres_database("loopline_race") as database:
        yield postgres_url(database)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    return str(request.getfixturevalue("postgres_uri"))


def test_racing_promote_and_rollback_keep_aliases_and_history_together(
        registry_uri: str, tmp_path: Path) -> None:
    from loopline.integrations import mlflow_registry as reg

    _seed(registry_uri)
    client = reg.client(registry_uri)
    promotes = [["promote", MODEL, str(1 + pair % VERSIONS)] for pair in range(PAIRS)]
    rollbacks = [["rollback", MODEL]] * PAIRS
    failed_commands: list[str] = []
    bad_pairs: list[str] = []
    with _movers(registry_uri, tmp_path, promotes, rollbacks) as next_pair:
        for pair in range(PAIRS):
            failed_commands += next_pair()
            if problems := _violations(client):
                bad_pairs.append(f"pair {pair + 1}: " + "; ".join(problems))
    assert not failed_commands, failed_commands
    assert not bad_pairs, f"{len(bad_pairs)} of {PAIRS} pairs left aliases and history " \
                          "apart:\n" + "\n".join(bad_pairs)
    assert not _broken_links(client), _broken_links(client)

    # The next rollback goes where the history says: to the newest move's `previous`.
    expected = str(_champion_moves(client)[-1]["previous"])
    with _movers(registry_uri, tmp_path, [["rollback", MODEL]]) as last:
        assert not last()
    assert reg.version_for_alias(client, MODEL, reg.CHAMPION) == expected
    assert _champion_moves(client)[-1]["version"] == expected
    assert not _violations(client)


def test_a_lock_nobody_releases_times_out_with_a_clear_error(tmp_path: Path) -> None:
    from loopline.integrations import mlflow_registry as reg

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _seed(uri)
    client = reg.client(uri)
    start = _FORKS.Barrier(2)
    holder = _FORKS.Process(target=_hold_lock, args=(uri, start))
    holder.start()
    try:
        start.wait(timeout=120)  # the other process holds the model's lock now
        with pytest.raises(reg.RegistryError, match=r"held its lock \(.*\) for over 0\.5s"), \
                reg.locked(client, MODEL, timeout_s=0.5):
            pass
    finally:
        holder.kill()
        holder.join()
    with reg.locked(client, MODEL, timeout_s=5):  # the kernel let go of the dead holder's
        pass


def test_a_server_registry_locks_in_LOOPLINE_LOCK_URL_or_warns_it_is_one_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """An MLflow server keeps its database to itself: the lock goes to $LOOPLINE_LOCK_URL."""
    require_service("PostgreSQL", 5432)
    import psycopg2

    from loopline.integrations.registry_lock import lock_key, model_lock

    server = f"http://127.0.0.1:1/{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("LOOPLINE_LOCK_URL", "postgresql://postgres@127.0.0.1:5432/test")
    other = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    other.autocommit = True
    cursor = other.cursor()

    def free() -> bool:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(MODEL),))
        taken = bool(cursor.fetchone()[0])
        if taken:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key(MODEL),))
        return taken

    with model_lock(server, MODEL):
        assert not free()  # another session, as on another host, must wait
    assert free()
    other.close()

    monkeypatch.delenv("LOOPLINE_LOCK_URL")
    monkeypatch.setenv("HOME", str(tmp_path))
    with model_lock(server, MODEL):
        assert list((tmp_path / ".loopline" / "locks").glob(f"*/{MODEL}-*.lock"))
    assert "serialised on this host only; set $LOOPLINE_LOCK_URL" in caplog.text


def _hold_lock(uri: str, start: Any) -> None:
    import time

    from loopline.integrations import mlflow_registry as reg

    with reg.locked(reg.client(uri), MODEL):
        start.wait(timeout=120)
        time.sleep(120)


# -- the load-back check: the registered copy must predict what was trained -----------------

class Forgetful(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier whose scores lean on state that does not survive pickling, as a model
    holding a process-local handle would: each unpickling shifts its scores."""

    def __init__(self, forgets: bool = False) -> None:
        self.forgets = forgets

    def fit(self, features: Any, labels: Any) -> Forgetful:
        self.classes_ = [False, True]
        self.shift_ = 0.0
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.forgets:
            self.shift_ += 0.25

    def predict_proba(self, features: Any) -> Any:
        score = 1 / (1 + np.exp(-np.asarray(features, "float64").sum(axis=1) - self.shift_))
        return np.column_stack([1 - score, score])


class MakeParams(ComponentParams):
    forgets: bool = False


def _make(ctx: StepContext, params: MakeParams) -> StepResult:
    """A trained bundle as `train.sklearn` writes it, with a passed verdict and some rows."""
    import json

    import joblib
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from loopline.ml.feature_transform import FeatureTransform
    from loopline.ml.model_info import model_info

    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"distance": rng.uniform(100, 2000, 50),
                         "origin": rng.choice(["EWR", "JFK", "LGA"], 50),
                         "late": rng.random(50) > 0.5})
    transform = FeatureTransform(numeric={"distance": "standard"},
                                 categorical={"origin": {"encoding": "onehot"}}, label="late")
    transform.fit(rows.drop(columns=["late"]))
    features = rows.drop(columns=["late"])
    model = Forgetful(params.forgets).fit(transform.transform(features), rows["late"])
    joblib.dump(Pipeline([("features", transform), ("model", model)]), ctx.output_path("model"))
    ctx.output_path("info").write_text(json.dumps(model_info(
        "classification", "forgetful", "late", "sklearn", transform.input_columns(),
        [False, True])))
    ctx.output_path("verdict").write_text(json.dumps({
        "passed": True, "checks": [], "metrics": {}, "champion": None,
        "champion_note": "no champion yet for loadback"}))
    rows.to_parquet(ctx.output_path("rows"))
    return StepResult()


MAKE = Component(
    name="tests.make_bundle", version="1", description="a bundle to register", params=MakeParams,
    run=_make, outputs={"model": Output("model.joblib", "model"),
                        "info": Output("model.json", "json"),
                        "verdict": Output("verdict.json", "json"),
                        "rows": Output("rows.parquet", "dataset")},
)


def _loadback_spec(project: Path, forgets: bool, sample: bool) -> Path:
    (project / "pipelines").mkdir(parents=True)
    spec = project / "pipelines" / "loadback.yaml"
    spec.write_text(f"""
name: loadback
registry: {{model_name: loadback}}
steps:
  make:
    component: {__name__}:MAKE
    params: {{forgets: {str(forgets).lower()}}}
  promote:
    component: registry.promote
    inputs: {{model: make.model, info: make.info, verdict: make.verdict
              {", sample: make.rows" if sample else ""}}}
""")
    return spec


@pytest.mark.slow
@pytest.mark.parametrize(("forgets", "sample", "checked_on"), [
    (True, False, "5 rows made from the model's feature transform"),
    (False, False, "5 rows made from the model's feature transform"),
])
def test_the_registered_copy_must_reproduce_the_trained_model(
        tmp_path: Path, forgets: bool, sample: bool, checked_on: str) -> None:
    import json

    from loopline.integrations import mlflow_registry as reg

    spec = _loadback_spec(tmp_path, forgets, sample)
    code, out, err = run_cli("run", str(spec), "--json")
    summary = json.loads(out)
    client = reg.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    version = client.get_model_version("loadback", "1")
    if forgets:
        assert code == 1 and summary["steps"]["promote"]["status"] == "failed", err
        error = summary["steps"]["promote"]["error"]
        assert error.startswith("loadback v1 does not reproduce the trained model's "
                                f"predictions on {checked_on}"), error
        assert error.endswith("; aliases left unchanged")
        assert not version.aliases and "loopline.verified" not in version.tags
    else:
        assert code == 0, err
        manifest = tmp_path / "artifacts" / "loadback" / "promote" / "_loopline.json"
        log = "\n".join(json.loads(manifest.read_text())["log"])
        assert "loadback v1 loaded back and reproduced the trained model's predictions on " \
               f"{checked_on}" in log, log
        assert version.tags["loopline.verified"] == "true"
        assert reg.version_for_alias(client, "loadback", reg.CHAMPION) == "1"
