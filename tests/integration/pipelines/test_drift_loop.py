"""Batch scoring and drift jobs end to end on real MLflow: `loopline drift`, its retraining,
the once-per-event rule, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.integrations.mlflow_registry import history
from tests.support import copy_example, registry_client, run_cli, run_json

SCORING = """\
name: scoring
registry: {model_name: my-model}
steps:
  ingest:
    component: ingest.table
    params: {source: data/current.csv, derive: {late: arr_delay > 15}}
  score:
    component: predict.batch
    inputs: {data: ingest.train}
"""

DRIFT = """\
name: drift
registry: {model_name: my-model}
steps:
  drift:
    component: drift.evidently
retrain:
  pipeline: pipelines/train.yaml
  step: drift
  cooldown: 1h
"""


@pytest.fixture
def project(small_project: Path) -> Path:
    """`loopline init`'s project (3,000 real flights) plus a scoring and a drift spec."""
    (small_project / "pipelines" / "scoring.yaml").write_text(SCORING)
    (small_project / "pipelines" / "drift.yaml").write_text(DRIFT)
    return small_project


def _sample(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data" / "flights_sample.csv")


def _score(project: Path, frame: pd.DataFrame) -> dict[str, Any]:
    frame.to_csv(project / "data" / "current.csv", index=False)
    return run_json(project / "pipelines" / "scoring.yaml")


def _drift(project: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli("drift", str(project / "pipelines" / "drift.yaml"), "--json",
                             *extra)
    return code, (json.loads(out) if out.strip() else {}), err


def _retrain_events(project: Path) -> list[dict[str, Any]]:
    return [e for e in history(registry_client(project), "my-model")
            if e.get("kind") == "retrain"]


def test_scoring_keeps_rows_with_the_version_that_scored_them(project: Path) -> None:
    trained = run_json(project / "pipelines" / "train.yaml")
    version = trained["model"]["version"]
    scored = _score(project, _sample(project))
    assert scored["status"] == "succeeded"
    predictions = pd.read_parquet(scored["steps"]["score"]["outputs"]["predictions"])
    assert set(predictions["model_version"]) == {version}
    from loopline.integrations.mlflow_registry import load_model

    client = registry_client(project)
    model = load_model(client.tracking_uri, f"models:/my-model/{version}")
    expected = model.predict_proba(_sample(project))[:, 1]
    assert predictions["prediction"].to_numpy() == pytest.approx(expected, abs=1e-12)
    folder = project / "artifacts" / "monitoring" / "my-model"
    kept = list(folder.glob("*.parquet"))
    assert len(kept) == 1 and len(pd.read_parquet(kept[0])) == len(predictions)
    summary = json.loads(Path(scored["steps"]["score"]["outputs"]["summary"]).read_text())
    assert summary["kept_as"] == str(kept[0]) and summary["version"] == version
    assert not list(folder.glob(".*tmp"))  # no half-written batch left behind


def test_drift_retrains_once_per_event_and_records_why(project: Path) -> None:
    run_json(project / "pipelines" / "train.yaml")
    _score(project, _sample(project))  # the training population itself: no drift
    code, quiet, err = _drift(project)
    assert code == 0, err
    assert (quiet["drift"], quiet["action"], quiet["trigger"]["retrain"]) == (False, "none", False)
    assert set(quiet["columns"]) == {"distance", "sched_dep_time", "carrier", "origin"}

    longer = _sample(project).assign(distance=lambda f: f["distance"] * 3)
    _score(project, longer)
    code, planned, err = _drift(project, "--dry-run")
    assert code == 0, err
    assert planned["action"] == "retrain" and planned["drift"] is True
    distance = planned["columns"]["distance"]
    assert distance["method"] == "psi" and distance["score"] > 0.25 and distance["drifted"]
    assert planned["share_drifted"] == pytest.approx(1 / 4)
    assert planned["trigger"] == {"retrain": True, "reason": planned["trigger"]["reason"],
                                  "pipeline": "pipelines/train.yaml", "suppressed": None,
                                  "dry_run": True, "command": "loopline run pipelines/train.yaml"}
    report = Path(planned["report"]).read_text()
    assert "Value Drift for column distance" in report  # Evidently's own, not a placeholder
    assert planned["report_sample_rows"] == planned["rows"]["current"]  # small: all rows
    assert planned["prediction"]["severity"] in ("none", "warn", "retrain")
    code, _, human = run_cli("drift", str(project / "pipelines" / "drift.yaml"), "--dry-run")
    assert code == 0
    assert "✗ distance" in human and "would retrain (dry run): loopline run" in human
    assert _retrain_events(project) == []  # dry runs record nothing

    code, acted, err = _drift(project)
    assert code == 0, err
    assert acted["trigger"]["retrain"] is True
    assert acted["retraining"]["status"] == "succeeded"
    (event,) = _retrain_events(project)
    assert "major drift in distance" in event["reason"] and event["orchestrator"] == "local"

    code, again, _ = _drift(project)  # the same drift event
    assert again["trigger"]["retrain"] is False
    assert "already started retraining" in again["trigger"]["suppressed"]
    _score(project, longer)  # a new batch, still drifted, within the cooldown
    code, later, _ = _drift(project)
    assert later["action"] == "retrain" and later["trigger"]["retrain"] is False
    assert later["trigger"]["suppressed"].startswith("cooldown:")
    assert len(_retrain_events(project)) == 1


def test_no_champion_is_a_message_not_a_trigger(project: Path) -> None:
    code, result, err = _drift(project)
    assert code == 0, err
    assert result["action"] == "none" and result["trigger"]["retrain"] is False
    assert any("my-model has no 'champion' yet" in w for w in result["warnings"])
    _sample(project).to_csv(project / "data" / "current.csv", index=False)
    code, _, err = run_cli("run", str(project / "pipelines" / "scoring.yaml"))
    assert code == 1 and "no 'champion' yet: train and promote one first" in err


def test_empty_window_warns_and_triggers_nothing(project: Path) -> None:
    run_json(project / "pipelines" / "train.yaml")
    code, result, err = _drift(project)
    assert code == 0, err
    assert result["action"] == "none" and result["trigger"]["retrain"] is False
    assert any("the current window is empty" in w for w in result["warnings"])
    assert "WARNING: the current window is empty" in err
    assert _retrain_events(project) == []


def test_current_data_with_missing_or_retyped_columns_is_refused(project: Path) -> None:
    run_json(project / "pipelines" / "train.yaml")
    bad = _sample(project).drop(columns=["distance"]).assign(carrier=lambda f: f.index % 7)
    folder = project / "artifacts" / "monitoring" / "my-model"
    folder.mkdir(parents=True)
    bad.to_parquet(folder / "bad-batch.parquet")
    code, _, err = _drift(project)
    assert code == 1
    assert "missing in the current data: distance" in err
    assert "carrier (object in the reference, int64 now)" in err
    assert _retrain_events(project) == []


def test_retrain_block_is_checked_with_file_and_line(project: Path) -> None:
    spec = project / "pipelines" / "drift.yaml"
    spec.write_text(DRIFT.replace("step: drift", "step: drfit").replace(
        "pipelines/train.yaml", "pipelines/nope.yaml"))
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2
    assert f"{spec}:7: retrain.pipeline: pipelines/nope.yaml not found" in err
    assert f"{spec}:8: retrain.step: no step 'drfit' (did you mean drift?)" in err
    spec.write_text(DRIFT.replace("cooldown: 1h", "cooldown: 1w"))
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2
    assert f"{spec}:9: retrain.cooldown: '1w' is not a duration such as 30m, 1h or 2d" in err


@pytest.mark.slow
def test_batches_follow_an_object_store_artifact_root(project: Path) -> None:
    """Pods on Kubernetes share no disk: with the artifacts on an object store (an in-memory
    fsspec file system stands in for s3://), scored batches and drift's window live there."""
    import uuid

    import fsspec

    root = f"memory://loopline-{uuid.uuid4().hex[:8]}/artifacts"
    for name in ("train", "scoring", "drift"):
        spec = project / "pipelines" / f"{name}.yaml"
        spec.write_text(f"artifacts: {{root: '{root}'}}\n" + spec.read_text())
    run_json(project / "pipelines" / "train.yaml")
    _score(project, _sample(project).assign(distance=lambda f: f["distance"] * 3))
    code, result, err = _drift(project, "--dry-run")
    assert code == 0, err
    (batch,) = result["window"]
    assert batch.startswith(f"{root}/monitoring/my-model/") and batch.endswith(".parquet")
    assert fsspec.filesystem("memory").exists(batch.removeprefix("memory://"))
    assert result["action"] == "retrain" and result["report"].startswith(root)
    assert not (project / "artifacts").exists()


@pytest.mark.slow
def test_scoring_joins_feast_exactly_as_training_did(tmp_path: Path) -> None:
    """Score February with a champion trained on January with February held out: the
    weather joined at scoring equals the training pipeline's own join, row for row."""
    example = copy_example(tmp_path / "p", data__last_month=2, data__eval_from="2013-02-01",
                           train__max_iter=20, gate__min_roc_auc=0.55)
    trained = run_json(example / "pipelines" / "flights.yaml")
    scored = run_json(example / "pipelines" / "flights_scoring.yaml", "--set",
                      "scoring.month=2")
    held_out = pd.read_parquet(trained["steps"]["feast"]["outputs"]["eval"])
    predictions = pd.read_parquet(scored["steps"]["score"]["outputs"]["predictions"])
    # rownames: the dataset's own row id
    merged = held_out.merge(predictions, on="rownames", suffixes=("_train", "_score"))
    # every February flight was held out (the held-out set also has the last January
    # evenings, which are February in UTC)
    assert len(merged) == len(predictions) > 0.99 * len(held_out)
    for column in ("temp", "humid", "wind_speed", "visib"):
        pd.testing.assert_series_equal(merged[f"{column}_train"], merged[f"{column}_score"],
                                       check_names=False)
