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
    assert [c for c, v in planned["columns"].items() if v["severity"] != "none"] == ["distance"]
    # Tripled distances move the champion's scores too: PSI past the retrain limit (0.25).
    prediction = planned["prediction"]
    assert (prediction["method"], prediction["threshold"], prediction["retrain_threshold"]) == \
        ("psi", 0.1, 0.25)
    assert prediction["score"] > 0.25 and prediction["severity"] == "retrain"
    assert planned["performance"]["degraded"] is False  # the labels still agree with it
    reasons = ["major drift in distance", f"prediction drift (PSI {prediction['score']:.3f})"]
    assert planned["reasons"] == reasons
    assert planned["trigger"] == {"retrain": True, "reason": "; ".join(reasons),
                                  "pipeline": "pipelines/train.yaml", "suppressed": None,
                                  "dry_run": True, "command": "loopline run pipelines/train.yaml"}
    report = Path(planned["report"]).read_text()
    assert "Value Drift for column distance" in report  # Evidently's own, not a placeholder
    assert planned["report_sample_rows"] == planned["rows"]["current"]  # small: all rows
    code, _, human = run_cli("drift", str(project / "pipelines" / "drift.yaml"), "--dry-run")
    assert code == 0
    assert "✗ distance" in human and "would retrain (dry run): loopline run" in human
    assert _retrain_events(project) == []  # dry runs record nothing

    code, acted, err = _drift(project)
    assert code == 0, err
    assert acted["trigger"]["retrain"] is True
    assert acted["retraining"]["status"] == "succeeded"
    (event,) = _retrain_events(project)
    assert event["reason"] == "; ".join(reasons) and event["orchestrator"] == "local"

    code, again, _ = _drift(project)  # the same drift event
    assert again["trigger"]["retrain"] is False
    assert "already started retraining" in again["trigger"]["suppressed"]
    _score(project, longer)  # a new batch, still drifted, within the cooldown
    code, later, _ = _drift(project)
    assert later["action"] == "retrain" and later["trigger"]["retrain"] is False
    assert later["trigger"]["suppressed"].startswith("cooldown:")
    assert len(_retrain_events(project)) == 1


def _flipped_labels(project: Path) -> pd.DataFrame:
    """The training population itself, with `late` turned around (arr_delay d -> 30 - d):
    the same inputs, so no column and no prediction drift, but labels the champion now gets
    wrong."""
    return _sample(project).assign(arr_delay=lambda f: 30 - f["arr_delay"])


def test_a_live_metric_drop_alone_triggers_retraining(project: Path) -> None:
    run_json(project / "pipelines" / "train.yaml")
    _score(project, _flipped_labels(project))
    code, result, err = _drift(project, "--dry-run")
    assert code == 0, err
    assert {c: v["severity"] for c, v in result["columns"].items()} == dict.fromkeys(
        ("carrier", "distance", "origin", "sched_dep_time"), "none")
    assert result["share_drifted"] == 0 and result["prediction"]["severity"] == "none"
    performance = result["performance"]
    assert (performance["metric"], performance["max_drop"], performance["labelled_rows"]) == \
        ("roc_auc", 0.05, 3000)
    assert performance["drop"] == pytest.approx(performance["evaluation"]
                                                - performance["current"])
    assert performance["drop"] > 0.05 and performance["degraded"] is True
    reason = f"roc_auc {performance['current']:.3f} vs {performance['evaluation']:.3f} " \
             "at evaluation"
    assert result["reasons"] == [reason]
    assert (result["drift"], result["action"]) == (True, "retrain")
    assert result["trigger"]["retrain"] is True and result["trigger"]["reason"] == reason

    # The same window with the metric rule off: nothing else would retrain.
    spec = project / "pipelines" / "drift.yaml"
    spec.write_text(DRIFT.replace("component: drift.evidently",
                                  "component: drift.evidently\n    params: "
                                  "{metric_max_drop: null}"))
    code, quiet, err = _drift(project, "--dry-run")
    assert code == 0, err
    assert (quiet["action"], quiet["reasons"]) == ("none", [])
    assert "performance" not in quiet and quiet["prediction"]["severity"] == "none"
    assert quiet["trigger"]["retrain"] is False


def test_drift_exits_1_when_retraining_fails(project: Path) -> None:
    """The training data disappears before a drift-triggered retraining: that run fails for
    real (its ingest step), and `loopline drift` says so and exits 1."""
    trained = run_json(project / "pipelines" / "train.yaml")
    _score(project, _flipped_labels(project))
    data = project / "data" / "flights_sample.csv"
    kept = data.read_bytes()
    data.unlink()
    code, result, err = _drift(project)
    assert code == 1, err
    assert result["status"] == "failed" and result["action"] == "retrain"
    assert result["trigger"]["retrain"] is True
    retraining = result["retraining"]
    assert (retraining["status"], retraining.get("model"), retraining.get("gate")) == \
        ("failed", None, None)
    assert "✗ ingest: failed in " in err
    assert "data source 'data/flights_sample.csv': not found" in err
    assert "· promote: skipped in " in err and "not started: step 'ingest' failed" in err
    (event,) = _retrain_events(project)
    assert event["reason"] == result["trigger"]["reason"]
    champion = registry_client(project).get_model_version_by_alias("my-model", "champion")
    assert str(champion.version) == trained["model"]["version"]  # nothing replaced it
    assert retraining["error"].startswith("ingest: data source")
    # The failure does not use the event up: with the data back, the same drift retrains.
    data.write_bytes(kept)
    code, again, err = _drift(project)
    assert code == 0, err
    assert again["trigger"]["retrain"] is True and again["trigger"]["suppressed"] is None
    assert again["retraining"]["status"] == "succeeded"


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


def test_a_window_under_min_rows_decides_nothing(project: Path) -> None:
    """999 rows of plainly drifted data: below `min_rows` (1000) the job warns, naming the
    field, and decides nothing; with min_rows lowered to 999 the same window retrains."""
    run_json(project / "pipelines" / "train.yaml")
    _score(project, _sample(project).head(999).assign(distance=lambda f: f["distance"] * 3))
    code, result, err = _drift(project)
    assert code == 0, err
    warning = "the current window has 999 rows (< min_rows 1000); no drift decision, " \
              "nothing triggered"
    assert result["warnings"] == [warning] and f"WARNING: {warning}" in err
    assert (result["drift"], result["action"], result["columns"]) == (False, "none", {})
    assert result["trigger"]["retrain"] is False
    assert _retrain_events(project) == []

    spec = project / "pipelines" / "drift.yaml"
    spec.write_text(DRIFT.replace("component: drift.evidently",
                                  "component: drift.evidently\n    params: {min_rows: 999}"))
    code, decided, err = _drift(project, "--dry-run")
    assert code == 0, err
    assert decided["rows"]["current"] == 999 and decided["action"] == "retrain"
    assert decided["reasons"][0] == "major drift in distance"


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
