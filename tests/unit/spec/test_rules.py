"""One function per rule: each rule the layout issue found written twice has one home, and
these tests hold that home to the behaviour every caller relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.spec.hints import did_you_mean
from loopline.spec.paths import find_project_root, location, project_path
from loopline.spec.refs import OutputRef


def test_output_ref_is_parsed_in_one_place() -> None:
    ref = OutputRef.parse("train.model")
    assert (ref.step, ref.output, str(ref)) == ("train", "model", "train.model")
    for bad in ("train", "a.b.c", ".model", "train.", ""):
        with pytest.raises(ValueError, match=r"expected 'step\.output'"):
            OutputRef.parse(bad)


def test_did_you_mean_names_the_closest_or_nothing() -> None:
    assert did_you_mean("trian", ["train", "ingest"]) == " (did you mean train?)"
    assert did_you_mean("zzz", ["train", "ingest"]) == ""


def test_relative_paths_are_under_the_project_never_the_working_folder(tmp_path: Path) -> None:
    assert project_path("data/x.csv", tmp_path) == tmp_path / "data/x.csv"
    assert project_path("/abs/x.csv", tmp_path) == Path("/abs/x.csv")
    assert location("artifacts", tmp_path) == str(tmp_path / "artifacts")
    assert location("s3://bucket/root", tmp_path) == "s3://bucket/root"


def test_project_root_of_a_spec_and_of_a_working_folder(tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "sub").mkdir(parents=True)
    (tmp_path / "feature_repo").mkdir()
    spec = tmp_path / "pipelines" / "sub" / "a.yaml"
    spec.write_text("name: a\n")
    assert find_project_root(spec) == tmp_path
    assert find_project_root(tmp_path) == tmp_path
    assert find_project_root(tmp_path / "feature_repo") == tmp_path  # a folder inside it
    stray = tmp_path / "elsewhere.yaml"  # a spec outside pipelines/ is its own root
    stray.write_text("name: b\n")
    assert find_project_root(stray) == tmp_path


def test_tracking_uri_is_one_rule_for_steps_and_the_models_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.cli.models import tracking_uri as models_uri
    from loopline.runtime.tracking import tracking_uri

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "feature_repo").mkdir()
    default = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking_uri(None, tmp_path) == default
    assert tracking_uri("sqlite:///db/m.db", tmp_path) == f"sqlite:///{tmp_path / 'db/m.db'}"
    monkeypatch.chdir(tmp_path / "feature_repo")  # `loopline models` from a sub-folder
    assert models_uri(None) == default
    assert models_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert tracking_uri("sqlite:///x.db", tmp_path) == "http://127.0.0.1:5001"
    assert models_uri(None) == "http://127.0.0.1:5001"


def test_a_relative_sqlite_registry_is_under_the_project_too(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from loopline.runtime.tracking import resolve_uris
    from loopline.spec.model import PipelineSpec

    spec = PipelineSpec.model_validate({
        "name": "p", "registry": {"model_name": "m", "registry_uri": "sqlite:///reg/r.db"},
        "steps": {"a": {"component": "ingest.table"}}})
    monkeypatch.chdir(tmp_path.parent)  # not the project: the working folder must not matter
    tracking, registry = resolve_uris(spec, tmp_path)
    assert tracking == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert registry == f"sqlite:///{tmp_path / 'reg/r.db'}"


def test_drift_methods_are_named_once() -> None:
    from typing import get_args

    from loopline.ml.drift_decision import DEFAULT_THRESHOLDS, DriftRules
    from loopline.ml.drift_methods import METHODS, Method

    assert set(METHODS) == set(get_args(Method)) == set(DEFAULT_THRESHOLDS)
    schema = DriftRules.model_json_schema()
    assert set(schema["properties"]["numeric_method"]["enum"]) == set(METHODS)
