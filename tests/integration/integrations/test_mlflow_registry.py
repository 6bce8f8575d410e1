"""`loopline models` over a real registry: SQLite locally, and an MLflow server on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import registry_client, run_cli, run_json

MODEL = "my-model"


def _models(project: Path, *args: str) -> tuple[int, str, str]:
    return run_cli("models", *args, "--tracking-uri", f"sqlite:///{project / 'mlflow.db'}")


def _aliases(project: Path) -> dict[str, list[str]]:
    code, out, err = _models(project, "list", MODEL, "--json")
    assert code == 0, err
    return {row["version"]: row["aliases"] for row in json.loads(out)["versions"]}


def _history(project: Path) -> list[dict[str, object]]:
    return list(json.loads(_models(project, "list", MODEL, "--json")[1])["history"])


def _second_champion(project: Path) -> None:
    """v1, then v2 as champion for certain: a changed gate param re-runs only evaluate and
    promote, so v2 is the very model v1 is (no drop vs the champion) and passes its gate."""
    spec = project / "pipelines" / "train.yaml"
    first = run_json(spec)
    assert first["model"] == {"name": MODEL, "version": "1",
                              "aliases": ["challenger", "champion"]}
    second = run_json(spec, "--set", "gate.min_roc_auc=0.5")
    assert second["steps"]["train"]["status"] == "cached"
    assert second["gate"]["passed"] is True
    assert second["model"] == {"name": MODEL, "version": "2",
                               "aliases": ["challenger", "champion"]}


@pytest.mark.slow
def test_list_promote_rollback_with_history(small_project: Path) -> None:
    _second_champion(small_project)
    assert _aliases(small_project) == {"2": ["challenger", "champion"],
                                       "1": ["previous_champion"]}
    promoted = _history(small_project)[-1]
    assert (promoted["alias"], promoted["version"], promoted["previous"]) == \
        ("champion", "2", "1")
    assert str(promoted["reason"]).startswith("gate passed in run ")

    code, out, err = _models(small_project, "rollback", MODEL)
    assert code == 0, err
    assert out.strip() == f"{MODEL}: champion v2 -> v1"
    assert _aliases(small_project) == {"2": ["challenger", "previous_champion"],
                                       "1": ["champion"]}
    history = _history(small_project)
    assert (history[-1]["alias"], history[-1]["version"], history[-1]["previous"]) == \
        ("champion", "1", "2")
    assert history[-1]["reason"] == "rollback from version 2"

    code, out, _ = _models(small_project, "list", MODEL)
    assert code == 0
    assert "rollback from version 2" in out and "champion" in out


@pytest.mark.slow
def test_rollback_to_a_named_version(small_project: Path) -> None:
    """`--to N` skips the previous champion: v1 -> v2 -> v3, then back to v1 directly."""
    _second_champion(small_project)
    third = run_json(small_project / "pipelines" / "train.yaml", "--set",
                     "gate.min_roc_auc=0.51")
    assert third["model"]["version"] == "3" and "champion" in third["model"]["aliases"]
    assert _aliases(small_project)["2"] == ["previous_champion"]  # where plain rollback goes
    before = len(_history(small_project))

    code, out, err = _models(small_project, "rollback", MODEL, "--to", "1")
    assert code == 0, err
    assert out.strip() == f"{MODEL}: champion v3 -> v1"
    assert _aliases(small_project) == {"3": ["challenger", "previous_champion"], "2": [],
                                       "1": ["champion"]}
    history = _history(small_project)
    assert len(history) == before + 1
    assert {k: history[-1][k] for k in ("alias", "version", "previous", "reason")} == \
        {"alias": "champion", "version": "1", "previous": "3",
         "reason": "rollback from version 3"}

    code, _, err = _models(small_project, "rollback", MODEL, "--to", "9")
    assert code == 1
    assert err.startswith("error: ") and "9" in err and "not found" in err.lower(), err
    assert _aliases(small_project)["1"] == ["champion"]  # nothing moved
    assert len(_history(small_project)) == before + 1


@pytest.mark.slow
def test_promote_refuses_a_failed_version_without_force(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    run_json(spec)
    failed = run_json(spec, "--set", "gate.min_roc_auc=0.99")
    assert failed["gate"]["passed"] is False
    assert failed["model"]["aliases"] == ["challenger"]
    code, _, err = _models(small_project, "promote", MODEL, "2")
    assert code == 1 and "failed its gate" in err
    code, _, err = _models(small_project, "rollback", "no-such-model")
    assert (code, err) == (1, "error: no-such-model has no champion to roll back\n")


@pytest.mark.slow
def test_a_never_verified_version_cannot_become_champion(small_project: Path) -> None:
    """A crash between registration and the load-back check leaves a version without the
    `verified` tag (simulated here by removing it from a real, gate-passing version)."""
    spec = small_project / "pipelines" / "train.yaml"
    first = run_json(spec)
    assert first["model"]["aliases"] == ["challenger", "champion"]
    client = registry_client(small_project)
    assert client.get_model_version(MODEL, "1").tags["loopline.verified"] == "true"
    second = run_json(spec, "--set", "gate.min_roc_auc=0.99")  # a challenger, not champion
    assert second["model"]["aliases"] == ["challenger"]
    client.delete_model_version_tag(MODEL, "2", "loopline.verified")

    code, _, err = _models(small_project, "promote", MODEL, "2")
    assert code == 1 and "never verified" in err, err
    code, _, err = _models(small_project, "rollback", MODEL, "--to", "2")  # no side door
    assert code == 1 and "v2 was never verified" in err, err
    code, out, _ = _models(small_project, "list", MODEL, "--json")
    rows = {row["version"]: row for row in json.loads(out)["versions"]}
    assert rows["2"]["verdict"] == "incomplete" and rows["1"]["verdict"] == "passed"
    assert "champion" in rows["1"]["aliases"]

    code, out, err = _models(small_project, "promote", MODEL, "2", "--force")
    assert code == 0, err
    history = json.loads(_models(small_project, "list", MODEL, "--json")[1])["history"]
    assert history[-1]["version"] == "2"
    assert history[-1]["reason"].startswith("manual promote (forced: never verified")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback with a fresh PostgreSQL database as its store."""
    from tests.support.services import mlflow_server as server

    with server(tmp_path / "server.log", str(tmp_path / "mlartifacts")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.services
def test_pipeline_against_mlflow_server_on_postgres(small_project: Path, mlflow_server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = small_project / "pipelines" / "train.yaml"
    first = run_json(spec)
    assert first["model"] == {"name": MODEL, "version": "1", "aliases": ["challenger", "champion"]}
    second = run_json(spec, "--set", "train.seed=9")
    assert second["model"]["version"] == "2"  # a string over REST too
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version(MODEL, "1")
    assert version.tags["loopline.verdict"] == "passed"
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id],
                              filter_string="tags.`loopline.level` = 'pipeline'")
    assert len(runs) == 2
    steps = client.search_runs([runs[0].info.experiment_id],
                               filter_string=f"tags.`loopline.run_id` = '{first['run_id']}' "
                                             "and tags.`loopline.level` = 'step'")
    assert {r.data.tags["loopline.step"] for r in steps} == set(first["steps"])


WRAP_STEP = """
  wrap:
    component: tests.support.promise_components:LOADS_ONCE
    inputs: {model: train.model}
"""


@pytest.mark.slow
def test_a_broken_registered_copy_never_gets_an_alias(small_project: Path) -> None:
    """v2 is v1's very model wrapped so that its pickle loads only once: the gate loads it,
    compares it with the champion and passes it, but the copy promote registers cannot be
    loaded back by any process. Nothing is patched: the registered artifact is broken for
    real, the champion still loads, and no alias may point at the broken version."""
    spec = small_project / "pipelines" / "train.yaml"
    assert run_json(spec)["model"]["version"] == "1"
    text = spec.read_text()
    assert text.count("model: train.model") == 2  # evaluate's and promote's
    spec.write_text(text.replace("model: train.model", "model: wrap.model") + WRAP_STEP)

    summary = run_json(spec)
    assert summary["steps"]["train"]["status"] == "cached"
    # The gate compared the challenger with a champion that loaded and scored.
    assert summary["gate"]["passed"] is True
    verdict = json.loads(Path(summary["steps"]["evaluate"]["outputs"]["verdict"]).read_text())
    assert verdict["champion"] is not None, verdict["champion_note"]
    assert verdict["champion"]["version"] == "1" and verdict["champion_note"] == "champion is v1"
    assert verdict["champion"]["metrics"]["roc_auc"] == verdict["metrics"]["roc_auc"]
    (relative,) = [c for c in verdict["checks"] if c["check"] == "max_drop_vs_champion"]
    assert "vs champion" in relative["detail"] and relative["value"] == 0, relative
    # ... and the registered copy of v2 could not be loaded back: no alias moved.
    promote = summary["steps"]["promote"]
    assert promote["status"] == "failed"
    assert promote["error"].startswith(f"{MODEL} v2 could not be loaded back (")
    assert "a re-pickled LoadsOnce model cannot be loaded" in promote["error"]
    assert promote["error"].endswith("aliases left unchanged")
    client = registry_client(small_project)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == "1"
    broken = client.get_model_version(MODEL, "2")
    assert not broken.aliases
    assert "loopline.verified" not in broken.tags
    assert all(event.get("version") != "2" for event in _history(small_project))
    # The registered artifact itself is broken, for any reader, not only inside the step.
    from loopline.integrations.mlflow_registry import load_model

    with pytest.raises(Exception, match="a re-pickled LoadsOnce model cannot be loaded"):
        load_model(client.tracking_uri, f"models:/{MODEL}/2")
    assert load_model(client.tracking_uri, f"models:/{MODEL}/1") is not None
