"""The PyTorch pipeline end to end: a missing required GPU stops it before training; the
registered module scores raw rows exactly as the gate measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import copy_example, run_json, subprocess_cli


@pytest.mark.slow
def test_pipeline_stops_before_training_when_a_required_gpu_is_missing(tmp_path: Path) -> None:
    """Run where no GPU is visible (CUDA_VISIBLE_DEVICES=""), so this holds on GPU machines."""
    project = copy_example(tmp_path / "p", data__last_month=2, data__eval_from="2013-02-01")
    spec = project / "pipelines" / "flights_torch.yaml"
    text = spec.read_text()
    assert "gpu: {count: 1, require: false}" in text
    spec.write_text(text.replace("gpu: {count: 1, require: false}",
                                 "gpu: {count: 1, require: true}"))
    done = subprocess_cli("run", str(spec), "--json", cwd=project,
                          env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 1, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    train = summary["steps"]["train"]
    assert train["status"] == "failed"
    assert "requires a GPU (resources.gpu.require: true)" in train["error"]
    assert train["duration_s"] < 5  # refused up front, not after an epoch on the CPU
    assert summary["steps"]["promote"]["status"] == "skipped"


@pytest.mark.slow
def test_torch_pipeline_registers_a_module_that_scores_raw_rows(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p", data__last_month=2, data__eval_from="2013-02-01",
                           gate__min_roc_auc=0.55, torch__max_epochs=4)
    summary = run_json(project / "pipelines" / "flights_torch.yaml")
    assert summary["status"] == "succeeded", summary
    assert summary["steps"]["train"]["metrics"]["samples_per_s"] > 1000
    auc = summary["steps"]["evaluate"]["metrics"]["roc_auc"]
    import mlflow
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from loopline.ml.torch_model import TabularModel

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    champion = mlflow.pytorch.load_model("models:/flights-late-arrival-mlp@champion")
    assert isinstance(champion, TabularModel)  # the real module, not a GraphModule
    rows = pd.read_parquet(project / "artifacts/flights_torch/feast/eval.parquet")
    scores = champion.predict_proba(rows.drop(columns=["late"]))[:, 1]
    assert roc_auc_score(rows["late"], scores) == pytest.approx(auc, abs=1e-9)
