"""One step environment for every place a step runs: values from `env:` and the profile,
secrets as references; a local process gets the values unless it has its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopline.backends.kubernetes import pod_env
from loopline.pipeline.load import load_pipeline
from loopline.runtime.environment import MissingSecret, applied, step_environment
from tests.support import copy_example, run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = copy_example(tmp_path / "p")
    (project / "params.production.yaml").write_text(
        "platform:\n  mlflow: http://127.0.0.1:9\n  s3_endpoint: http://127.0.0.1:9000\n")
    return project


def test_values_come_from_env_and_the_profile_secrets_stay_references(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = project / "pipelines" / "flights.yaml"
    local = step_environment(load_pipeline(spec))
    assert local.values == {}  # every platform value is empty here: nothing is set
    assert set(local.secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                  "LOOPLINE_FEAST_REGISTRY_URL", "LOOPLINE_FEAST_REDIS",
                                  "LOOPLINE_LOCK_URL", "LOOPLINE_SLACK_WEBHOOK",
                                  "LOOPLINE_PAGERDUTY_KEY"}
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    env = step_environment(load_pipeline(spec))
    assert env.values == {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
                          "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
                          "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
                          "LOOPLINE_PROFILE": "production"}
    rendered = pod_env(env, {"LOOPLINE_ORCHESTRATOR_RUN": "{{ run_id }}"})
    by_name = {e["name"]: e for e in rendered}
    assert by_name["AWS_SECRET_ACCESS_KEY"] == {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
        "secretKeyRef": {"name": "loopline-s3", "key": "secret-access-key"}}}
    # An alert route nobody configured: the pod starts without it.
    assert by_name["LOOPLINE_SLACK_WEBHOOK"]["valueFrom"]["secretKeyRef"] == {
        "name": "loopline-alerts", "key": "slack-webhook", "optional": True}
    assert env.missing_secrets({}) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                       "LOOPLINE_FEAST_REGISTRY_URL", "LOOPLINE_FEAST_REDIS",
                                       "LOOPLINE_LOCK_URL"]  # optional ones not required
    assert by_name["LOOPLINE_PROFILE"] == {"name": "LOOPLINE_PROFILE", "value": "production"}
    assert by_name["LOOPLINE_ORCHESTRATOR_RUN"]["value"] == "{{ run_id }}"


def test_applied_sets_what_is_missing_and_restores_it(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LOOPLINE_FEAST_REGISTRY_URL",
                 "LOOPLINE_FEAST_REDIS", "LOOPLINE_LOCK_URL"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://mine:1")  # a user's export wins
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = step_environment(load_pipeline(project / "pipelines" / "flights.yaml"))
    with applied(env):
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:9"
        assert os.environ["AWS_ENDPOINT_URL"] == "http://mine:1"
    assert "MLFLOW_TRACKING_URI" not in os.environ  # never leaks into the next run here
    assert os.environ["AWS_ENDPOINT_URL"] == "http://mine:1"


def test_a_deployment_without_its_secrets_stops_and_names_them(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a profile a missing secret is an error, not a silent local default (a SQLite
    file inside a throwaway container)."""
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "planted-value-1f9")
    env = step_environment(load_pipeline(project / "pipelines" / "flights.yaml"))
    with pytest.raises(MissingSecret) as caught, applied(env):
        pass
    message = str(caught.value)
    assert "AWS_SECRET_ACCESS_KEY (secret loopline-s3/secret-access-key)" in message
    assert "AWS_ACCESS_KEY_ID" not in message and "planted-value-1f9" not in message
    code, out, err = run_cli("run", str(project / "pipelines" / "flights.yaml"))
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: profile 'production': AWS_SECRET_ACCESS_KEY") and \
        "planted-value-1f9" not in out + err


def test_kfp_local_without_the_secrets_says_so_in_one_line(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_PROFILE", "production")
    code, _, err = run_cli("run", str(project / "pipelines" / "flights.yaml"),
                           "--backend", "kfp-local")
    assert code == 1 and err.startswith("error: profile 'production': AWS_ACCESS_KEY_ID")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_run_time_params_cannot_change_what_env_renders(project: Path) -> None:
    """Pods and KFP tasks got `env:` when the DAG was parsed or the pipeline compiled: a
    per-run change of `platform.mlflow` would move the artifact root but not the server."""
    from loopline.pipeline.load import run_time_overrides
    from loopline.spec.errors import SpecError

    loaded = load_pipeline(project / "pipelines" / "flights.yaml")
    assert run_time_overrides(loaded, {"train": {"max_iter": 7}}, "params") == \
        ["train.max_iter=7"]
    with pytest.raises(SpecError, match=r"platform\.mlflow: read by the spec's env:"):
        run_time_overrides(loaded, {"platform": {"mlflow": "http://elsewhere:5000"}}, "params")
    code, _, err = run_cli("submit", "kfp", str(project / "pipelines" / "flights.yaml"),
                           "--host", "http://127.0.0.1:9", "--params",
                           '{"platform": {"s3_endpoint": "http://x:9000"}}')
    assert code == 2 and "platform.s3_endpoint: read by the spec's env:" in err, err
