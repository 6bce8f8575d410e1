"""The real example on real flights: train, gate, promote, cache, refuse a worse challenger."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.support import run_json

pytestmark = pytest.mark.slow
LEAKY = {"arr_delay", "dep_delay", "arr_time", "dep_time", "air_time"}


def _client(project: Path):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def test_flights_pipeline_trains_gates_promotes_and_caches(flights_project: Path) -> None:
    spec = flights_project / "pipelines" / "flights.yaml"
    first = run_json(spec)
    assert first["status"] == "succeeded"
    assert {s["status"] for s in first["steps"].values()} == {"succeeded"}
    assert first["gate"]["passed"], [c for c in first["gate"]["checks"] if not c["passed"]]
    assert first["model"] == {"name": "flights-late-arrival", "version": "1",
                              "aliases": ["challenger", "champion"]}
    gate = first["gate"]
    assert gate["passed"] is True
    assert {c["check"] for c in gate["checks"]} >= {"min", "max_drop_vs_champion", "passed"}
    roc_auc = first["steps"]["evaluate"]["metrics"]["roc_auc"]
    assert 0.6 < roc_auc < 0.9  # real signal, and no leak (a leaked label gives ~1.0)

    artifacts = flights_project / "artifacts" / "flights"
    # Earlier period trains, later period evaluates.
    train = pd.read_parquet(artifacts / "ingest" / "train.parquet")
    held_out = pd.read_parquet(artifacts / "feast" / "eval.parquet")  # + weather, as served
    assert train["time_hour"].max() < held_out["time_hour"].min()
    features = json.loads((artifacts / "features" / "features.json").read_text())
    assert not LEAKY & set(features["inputs"]), features["inputs"]
    assert (artifacts / "evaluate" / "plots" / "evaluation.png").stat().st_size > 10_000
    assert json.loads((artifacts / "evaluate" / "plots" / "roc.json").read_text())[0].keys() \
        == {"fpr", "tpr"}

    # The registry holds the lineage, and the champion scores raw rows to the same metric.
    client, uri = _client(flights_project)
    version = client.get_model_version("flights-late-arrival", "1")
    for key in ("spec_hash", "git_commit", "data_hash", "run_id", "validation", "metrics",
                "verdict", "gate", "mlflow_run_id"):
        assert f"loopline.{key}" in version.tags, key
    assert version.tags["loopline.verdict"] == "passed"
    assert json.loads(version.tags["loopline.validation"])["success"] is True
    assert "flights.pkl.compress:" in version.tags["loopline.data_hash"]
    import mlflow
    from sklearn.metrics import roc_auc_score

    mlflow.set_tracking_uri(uri)
    champion = mlflow.sklearn.load_model("models:/flights-late-arrival@champion")
    scores = champion.predict_proba(held_out.drop(columns=["late"]))[:, 1]
    assert roc_auc_score(held_out["late"], scores) == pytest.approx(roc_auc, abs=1e-9)

    # Nothing changed: everything is reused, and says why.
    second = run_json(spec)
    assert {s["status"] for s in second["steps"].values()} == {"cached"}
    assert all("unchanged" in s["note"] for s in second["steps"].values())
    assert second["steps"]["evaluate"]["metrics"]["roc_auc"] == roc_auc
    assert second["model"]["version"] == "1"

    # A much weaker challenger: registered, but the champion stays where it was.
    third = run_json(spec, "--set", "train.max_iter=1", "--set", "train.max_leaf_nodes=2")
    statuses = {name: s["status"] for name, s in third["steps"].items()}
    assert statuses == {"ingest": "cached", "validate": "cached", "feast": "cached",
                        "features": "cached", "train": "succeeded", "evaluate": "succeeded",
                        "promote": "succeeded", "materialize": "succeeded"}
    assert third["gate"]["passed"] is False
    drop = next(c for c in third["gate"]["checks"]
                if c["metric"] == "roc_auc" and c["check"] == "max_drop_vs_champion")
    assert drop["passed"] is False and drop["value"] > drop["threshold"]
    assert "worse by" in drop["detail"]
    assert third["model"]["version"] == "2"
    assert third["model"]["aliases"] == ["challenger"]
    assert client.get_model_version_by_alias("flights-late-arrival", "champion").version in (1, "1")
    assert client.get_model_version("flights-late-arrival", "2").tags["loopline.verdict"] == \
        "failed"


def test_bad_data_stops_before_training(flights_project: Path) -> None:
    suite = flights_project / "expectations" / "flights.json"
    data = json.loads(suite.read_text())
    data["expectations"].append({"type": "expect_column_values_to_be_in_set",
                                 "kwargs": {"column": "origin", "value_set": ["EWR", "JFK"]}})
    suite.write_text(json.dumps(data))
    summary = run_json(flights_project / "pipelines" / "flights.yaml")
    assert summary["status"] == "failed"
    steps = summary["steps"]
    assert steps["validate"]["status"] == "failed"
    assert "expect_column_values_to_be_in_set(origin)" in steps["validate"]["error"]
    assert "LGA" in steps["validate"]["error"]
    for later in ("features", "train", "evaluate", "promote"):
        assert steps[later]["status"] == "skipped", later
    assert not (flights_project / "artifacts" / "flights" / "train").exists()
    assert summary["model"] is None
    client, _ = _client(flights_project)
    assert client.search_registered_models() == []


@pytest.mark.slow
def test_data_docs_when_asked(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text().replace(
        "    params:\n      suite:", "    params:\n      data_docs: true\n      suite:"))
    summary = run_json(spec, "--only", "ingest", "--only", "validate")
    assert summary["steps"]["validate"]["status"] == "succeeded"
    site = Path(summary["steps"]["validate"]["outputs"]["data_docs"])
    pages = list(site.rglob("*.html"))
    assert len(pages) > 2  # index + a page per validation run
    assert "Great Expectations" in (site / "index.html").read_text()
