"""`loopline compile kserve`: the example's served model as an InferenceService, with the
versions named on the command line or read from the registry and the rollout state, checked
against KServe's CRD schema before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.backends import kserve
from tests.support import copy_example, registry_client, run_cli

MODEL = "flights-late-arrival"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "flights")


def _spec(project: Path) -> str:
    return str(project / "pipelines" / "flights.yaml")


def _compile(project: Path, out: Path, *extra: str) -> tuple[int, str, dict[str, Any] | None]:
    code, _out, err = run_cli("compile", "kserve", _spec(project), "-o", str(out), *extra,
                              cwd=project)
    return code, err, yaml.safe_load(out.read_text()) if out.exists() else None


def test_named_versions_render_the_canary_share(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out, "--champion", "3", "--canary", "4",
                                   "--weight", "25", "--namespace", "ml", "--image", "reg/x:1")
    assert code == 0, err
    assert document is not None and kserve.validate(document) == []
    assert document["metadata"]["namespace"] == "ml"
    predictor = document["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    container = predictor["containers"][0]
    assert container["image"] == "reg/x:1"
    assert container["args"][:3] == ["loopline", "serve", "pipelines/flights.yaml"]
    assert container["args"][-2:] == ["--model", "4"]
    assert f"{MODEL} canary v4 at 25%, champion v3 at 75%" in err


def test_the_champion_alone_when_no_canary_is_named(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out, "--champion", "3")
    assert code == 0, err
    assert document is not None
    assert "canaryTrafficPercent" not in document["spec"]["predictor"]
    assert document["spec"]["predictor"]["containers"][0]["args"][-1] == "3"
    assert f"{MODEL} v3 at 100%" in err


def _register(project: Path, versions: int, champion: str) -> None:
    client = registry_client(project)
    client.create_registered_model(MODEL)
    for _ in range(versions):
        client.create_model_version(MODEL, source=str(project / "no-artifacts"))
    client.set_registered_model_alias(MODEL, "champion", champion)


def test_versions_come_from_the_registry_and_the_rollout_state(project: Path,
                                                               tmp_path: Path) -> None:
    from loopline.pipeline.load import load_pipeline
    from loopline.runtime import rollout_state

    _register(project, versions=3, champion="2")
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out)
    assert code == 0, err
    assert document is not None
    assert "canaryTrafficPercent" not in document["spec"]["predictor"]
    assert document["spec"]["predictor"]["containers"][0]["args"][-1] == "2"

    # A rollout at its second step, as the controller records it for the servers.
    loaded = load_pipeline(_spec(project))
    rollout_state.write(rollout_state.state_uri(loaded), {
        "status": rollout_state.ACTIVE[0], "id": "r1", "challenger": "3", "champion": "2",
        "mode": "canary", "step": 1, "weight": 25})
    code, err, document = _compile(project, out)
    assert code == 0, err
    assert document is not None
    assert document["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert document["spec"]["predictor"]["containers"][0]["args"][-1] == "3"
    assert document["metadata"]["annotations"]["loopline.dev/champion"] == "2"
    assert document["metadata"]["annotations"]["loopline.dev/canary"] == "3"


def test_no_champion_anywhere_is_a_clear_refusal(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out)
    assert code == 2
    assert "no champion to serve" in err and "--champion" in err
    assert document is None


@pytest.mark.parametrize(("extra", "says"), [
    (("--canary", "4"), "--canary and --weight go together"),
    (("--champion", "3", "--canary", "4", "--weight", "140"), "not a percentage"),
    (("--champion", "3", "--name", "9lives"), "must start with a letter"),
])
def test_bad_options_are_refused(project: Path, tmp_path: Path, extra: tuple[str, ...],
                                 says: str) -> None:
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out, *extra)
    assert code == 2
    assert says in err and "Traceback" not in err
    assert document is None


def test_an_invalid_document_is_reported_and_not_written(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render = kserve.render_inference_service

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        document = render(*args, **kwargs)
        document["spec"]["predictor"]["canaryTrafficPercent"] = "25%"
        return document

    monkeypatch.setattr(kserve, "render_inference_service", broken)
    out = tmp_path / "isvc.yaml"
    code, err, document = _compile(project, out, "--champion", "3", "--canary", "4",
                                   "--weight", "25")
    assert code == 2
    assert f"{out}: spec.predictor.canaryTrafficPercent: '25%' is not of type 'integer'" in err
    assert document is None
