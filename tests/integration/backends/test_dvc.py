"""`dvc repro` on the generated dvc.yaml runs the same pipeline as `loopline run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopline.backends.dvc import DvcCompiler
from loopline.pipeline.load import load_pipeline
from tests.support import REPO, registry_client
from tests.support.parity import assert_same_metrics, local_summary, parity_project

# January to train, February to evaluate: the smallest slice the gate still passes on.

def test_checked_in_dvc_yaml_is_fresh() -> None:
    loaded = load_pipeline(REPO / "pipelines" / "flights.yaml")
    assert (REPO / "dvc.yaml").read_text() == DvcCompiler().render(loaded), \
        "dvc.yaml is stale: run `loopline compile dvc pipelines/flights.yaml`"


def test_stages_declare_deps_params_outs_metrics_plots() -> None:
    stages = DvcCompiler().stages(load_pipeline(REPO / "pipelines" / "flights.yaml"))
    train = stages["stages"]["train"]
    assert train["params"] == ["train.estimator", "train.learning_rate", "train.max_iter",
                               "train.max_leaf_nodes", "train.seed",
                               {"pipelines/flights.yaml": ["steps.train", "defaults"]}]
    assert "artifacts/flights/features/train.parquet" in train["deps"]
    assert "artifacts/flights/train/model.joblib" in train["outs"]
    evaluate = stages["stages"]["evaluate"]
    assert evaluate["metrics"] == [{"artifacts/flights/evaluate/metrics.json": {"cache": False}}]
    assert {"artifacts/flights/evaluate/plots": {"cache": False}} in evaluate["plots"]
    validate = stages["stages"]["validate"]
    assert "expectations/flights.json" in validate["deps"]
    # after: [validate] is a dependency, so `dvc repro feast` runs validate first.
    assert "artifacts/flights/validate/_loopline.json" in stages["stages"]["feast"]["deps"]
    # Data shipped in a package is versioned by the pin, never by the venv's path.
    ingest_deps = stages["stages"]["ingest"]["deps"]
    assert "constraints.txt" in ingest_deps
    assert not any("site-packages" in dep for stage in stages["stages"].values()
                   for dep in stage.get("deps", [])), ingest_deps
    assert stages["plots"][0] == {"artifacts/flights/evaluate/plots/roc.json":
                                  {"x": "fpr", "y": "tpr", "title": "ROC"}}
    assert "always_changed" not in train
    # drift reads the registry's champion and the latest batches: never "up to date"
    drift = DvcCompiler().stages(load_pipeline(REPO / "pipelines" / "flights_drift.yaml"))
    assert drift["stages"]["drift"]["always_changed"] is True


def _sh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_dvc_repro_matches_loopline_run(tmp_path: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    # `dvc repro` in a project of its own; `loopline run` of the same slice in another (the
    # session's shared all-local run), so neither can reuse the other's outputs or registry.
    project = parity_project(tmp_path / "dvc")
    spec = project / "pipelines" / "flights.yaml"
    DvcCompiler().compile(load_pipeline(spec), project / "dvc.yaml")
    (project / ".gitignore").write_text("mlflow.db\n.loopline/\n")
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
                    ["dvc", "init", "-q"]):
        assert _sh(*command, cwd=project).returncode == 0

    first = _sh("dvc", "repro", cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    local = local_summary(tmp_path_factory)
    assert local["model"]["aliases"] == ["challenger", "champion"]
    via_dvc = json.loads((project / "artifacts/flights/evaluate/metrics.json").read_text())
    assert_same_metrics(via_dvc, local["steps"]["evaluate"]["metrics"])
    # Every step of the DVC copy ran under DVC (the local run's steps are the same steps).
    for step in local["steps"]:
        manifest = json.loads((project / f"artifacts/flights/{step}/_loopline.json").read_text())
        assert manifest["orchestrator"] == "dvc", step
        assert local["steps"][step]["status"] == "succeeded", step
    version = registry_client(project).get_model_version_by_alias("flights-late-arrival",
                                                                  "champion")
    assert version.tags["loopline.orchestrator"] == "dvc"

    second = _sh("dvc", "repro", cwd=project)
    assert second.returncode == 0
    assert "Data and pipelines are up to date" in second.stdout
    assert "Running stage" not in second.stdout

    # A step edited without recompiling: the stage refuses to run a stale definition.
    text = spec.read_text()
    spec.write_text(text.replace("seed: ${train.seed}", "seed: 7"))
    stale = _sh("dvc", "repro", "train", cwd=project)
    assert stale.returncode != 0

    # Data that now fails its suite, and `dvc repro` aimed at a later stage: validate runs
    # first (feast runs after: [validate]) and stops the run before anything downstream.
    spec.write_text(text)
    suite = project / "expectations" / "flights.json"
    data = json.loads(suite.read_text())
    data["expectations"].append({"type": "expect_column_values_to_be_in_set",
                                 "kwargs": {"column": "origin", "value_set": ["EWR", "JFK"]}})
    suite.write_text(json.dumps(data))
    refused = _sh("dvc", "repro", "train", cwd=project)
    assert refused.returncode != 0
    assert "Running stage 'validate'" in refused.stdout, refused.stdout
    assert "Running stage 'feast'" not in refused.stdout
    assert "Running stage 'train'" not in refused.stdout
    assert "changed since dvc.yaml was generated" in stale.stdout + stale.stderr


def test_plots_follow_the_models_task(small_project: Path) -> None:
    """A regression writes predicted-vs-actual, never ROC/PR: DVC declares what exists."""
    spec = small_project / "pipelines" / "train.yaml"
    declared = DvcCompiler().stages(load_pipeline(spec))["plots"]
    assert [next(iter(p)).rsplit("/", 1)[-1] for p in declared] == ["roc.json", "pr.json"]
    spec.write_text(spec.read_text()
                    .replace("      params: {max_iter: 500}", "      task: regression\n"
                             "      params: {}")
                    .replace('{metric: roc_auc, min: "${gate.min_roc_auc}", '
                             'max_drop_vs_champion: 0.02}', "{metric: rmse, max: 100}"))
    params = small_project / "params.yaml"
    params.write_text(params.read_text().replace("logistic_regression", "ridge"))
    declared = DvcCompiler().stages(load_pipeline(spec))["plots"]
    assert declared == [{"artifacts/train/evaluate/plots/predictions.json":
                         {"x": "actual", "y": "predicted", "title": "Predicted vs actual"}}]
