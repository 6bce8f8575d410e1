"""Profiles: `LOOPLINE_PROFILE=production` lays params.production.yaml over params.yaml, so
one spec points at shared services without an edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.pipeline.load import load_pipeline
from loopline.spec.errors import SpecError
from tests.support import copy_example


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "p")


def test_the_profile_file_moves_the_artifact_root_and_tracking(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = project / "pipelines" / "flights.yaml"
    local = load_pipeline(spec)
    assert local.spec.artifacts.root == "artifacts" and local.params.profile is None
    assert local.spec.env["MLFLOW_TRACKING_URI"] == ""
    (project / "params.production.yaml").write_text(
        "platform:\n  artifacts: s3://bucket/root\n  mlflow: http://mlflow:5000\n")
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    production = load_pipeline(spec)
    assert production.params.profile == "production"
    assert production.spec.artifacts.root == "s3://bucket/root"
    assert production.spec.env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # keys the profile leaves alone keep params.yaml's values, and the steps are the same
    assert production.params.get("train.max_iter") == local.params.get("train.max_iter")
    assert production.spec.steps == local.spec.steps


def test_a_profile_key_params_yaml_lacks_is_a_located_error(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt key silently ignored would send production artifacts to a local folder."""
    (project / "params.production.yaml").write_text(
        "platform:\n  artifacts: s3://b/r\n  artifact: s3://typo\n")
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    with pytest.raises(SpecError) as caught:
        load_pipeline(project / "pipelines" / "flights.yaml")
    (problem,) = caught.value.problems
    assert str(problem).endswith("params.production.yaml:3: platform.artifact: not a key of "
                                 "params.yaml (did you mean artifacts?)")


def test_a_missing_or_badly_named_profile_is_refused(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = project / "pipelines" / "flights.yaml"
    monkeypatch.setenv("LOOPLINE_PROFILE", "staging")
    with pytest.raises(SpecError, match=r"profile 'staging': \S*/params\.staging\.yaml not found"):
        load_pipeline(spec)
    monkeypatch.setenv("LOOPLINE_PROFILE", "../etc/passwd")
    with pytest.raises(SpecError, match="is not a profile name"):
        load_pipeline(spec)


@pytest.mark.parametrize(("entry", "message"), [
    ("env: {AWS_ACCESS_KEY_ID: x}", "AWS_ACCESS_KEY_ID: in both env and secrets"),
    ("env: {LOOPLINE_PROFILE: x}", "LOOPLINE_PROFILE is set by Loopline itself"),
    ("env: {9BAD: x}", "should match pattern"),
])
def test_env_and_secrets_are_checked(tmp_path: Path, entry: str, message: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nsteps: {a: {component: ingest.table, params: {source: x.csv}}}\n"
                    f"{entry}\nsecrets: {{AWS_ACCESS_KEY_ID: {{secret: s3, key: id}}}}\n")
    with pytest.raises(SpecError, match=message):
        load_pipeline(spec)


@pytest.mark.parametrize(("overlay", "line", "message"), [
    ("platform:\n", None, None),  # empty: changes nothing
    ("train: 7\n", 1, "train: is a section in params.yaml; a profile changes values, never "
                      "the shape"),
    ("platform:\n  mlflow: {host: x}\n", 2, "platform.mlflow: is a value in params.yaml"),
])
def test_a_profile_changes_values_never_the_shape(
        project: Path, monkeypatch: pytest.MonkeyPatch, overlay: str, line: int | None,
        message: str | None) -> None:
    """Replacing a whole section by a value (or a value by a section) would surface far away,
    as `${platform.artifacts} not found` in the spec; it is refused at the overlay's line."""
    (project / "params.production.yaml").write_text(overlay)
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    spec = project / "pipelines" / "flights.yaml"
    if message is None:
        assert load_pipeline(spec).spec.artifacts.root == "artifacts"
        return
    with pytest.raises(SpecError) as caught:
        load_pipeline(spec)
    (problem,) = caught.value.problems
    assert f"params.production.yaml:{line}: {message}" in str(problem)


def test_init_works_whatever_profile_the_shell_has(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/production.md exports LOOPLINE_PROFILE on every machine; a fresh skeleton has no
    profile file yet and must still be created whole."""
    from loopline.cli.init import create_project

    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    project = create_project(tmp_path / "fresh")
    assert (project / "dvc.yaml").is_file()
    import os

    assert os.environ["LOOPLINE_PROFILE"] == "production"  # put back afterwards
