"""The KServe InferenceService of the example's model: the champion alone, a canary's share,
the same container rules as the other pod backends, and KServe's own CRD schema as judge."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from loopline.backends import kserve
from loopline.backends.kubernetes import DEFAULT_IMAGE, pod_env
from loopline.pipeline.load import load_pipeline
from loopline.runtime.environment import step_environment
from loopline.spec.load import LoadedSpec
from tests.support import REPO


@pytest.fixture(scope="module")
def loaded() -> LoadedSpec:
    return load_pipeline(REPO / "pipelines" / "flights.yaml")


def _container(document: dict[str, Any]) -> dict[str, Any]:
    containers = document["spec"]["predictor"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_champion_only_serves_the_champion_with_all_traffic(
        loaded: LoadedSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_STEP_IMAGE", raising=False)
    document = kserve.render_inference_service(loaded, "4", None, 0)
    assert document["apiVersion"] == "serving.kserve.io/v1beta1"
    assert document["kind"] == "InferenceService"
    assert document["metadata"]["name"] == "flights-late-arrival"
    assert document["metadata"]["namespace"] == "default"
    predictor = document["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor  # promotion: the field removed
    container = _container(document)
    assert container["name"] == "kserve-container"
    assert container["image"] == DEFAULT_IMAGE
    assert container["args"] == ["loopline", "serve", "pipelines/flights.yaml", "--host",
                                 "0.0.0.0", "--port", "8080", "--model", "4"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    annotations = document["metadata"]["annotations"]
    assert annotations["loopline.dev/model"] == "flights-late-arrival"
    assert annotations["loopline.dev/champion"] == "4"
    assert annotations["loopline.dev/canary"] == "none"
    assert annotations["serving.kserve.io/deploymentMode"] == "Knative"
    assert kserve.validate(document) == []


def test_a_canary_at_25_percent_serves_the_canary_version(loaded: LoadedSpec) -> None:
    document = kserve.render_inference_service(loaded, "4", "5", 25, namespace="ml",
                                               image="registry.example/loopline:abc")
    assert document["spec"]["predictor"]["canaryTrafficPercent"] == 25
    container = _container(document)
    assert container["args"][-2:] == ["--model", "5"]
    assert container["image"] == "registry.example/loopline:abc"
    assert document["metadata"]["namespace"] == "ml"
    annotations = document["metadata"]["annotations"]
    assert (annotations["loopline.dev/champion"], annotations["loopline.dev/canary"]) == \
        ("4", "5")
    assert kserve.validate(document) == []


def test_the_pod_gets_the_shared_env_and_resource_rules(loaded: LoadedSpec) -> None:
    container = _container(kserve.render_inference_service(loaded, "4", None, 0))
    assert container["env"] == pod_env(step_environment(loaded), {})
    secret = next(e for e in container["env"] if e["name"] == "AWS_SECRET_ACCESS_KEY")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "loopline-s3",
                                                   "key": "secret-access-key"}
    # The example's defaults: {cpu: 2, memory: 4Gi}; CPU requested only, memory bounded.
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"memory": "4Gi"}}


def test_advancing_a_step_changes_the_traffic_and_nothing_that_makes_a_revision(
        loaded: LoadedSpec) -> None:
    """KServe copies annotations and labels onto the Knative revision template: a field that
    varied per step there would restart the canary's pods at every step."""
    at_5 = kserve.render_inference_service(loaded, "4", "5", 5)
    at_50 = kserve.render_inference_service(loaded, "4", "5", 50)
    assert at_5["spec"]["predictor"].pop("canaryTrafficPercent") == 5
    assert at_50["spec"]["predictor"].pop("canaryTrafficPercent") == 50
    assert at_5 == at_50


def test_shadow_renders_the_champion_alone_with_a_note(loaded: LoadedSpec) -> None:
    document = kserve.render_inference_service(loaded, "4", "5", 10, mode="shadow")
    assert "canaryTrafficPercent" not in document["spec"]["predictor"]
    assert _container(document)["args"][-1] == "4"
    assert "KServe cannot mirror" in document["metadata"]["annotations"]["loopline.dev/note"]
    assert kserve.validate(document) == []


@pytest.mark.parametrize(("champion", "canary", "weight", "says"), [
    (None, None, 0, "no champion to serve"),
    (None, "5", 25, "needs a champion"),
    ("4", "5", 101, "not a percentage"),
    ("4", "5", -1, "not a percentage"),
])
def test_impossible_splits_are_refused(loaded: LoadedSpec, champion: str | None,
                                       canary: str | None, weight: int, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        kserve.render_inference_service(loaded, champion, canary, weight)


def test_a_spec_without_a_registered_model_has_nothing_to_serve(loaded: LoadedSpec) -> None:
    bare = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"registry": None}))
    with pytest.raises(ValueError, match=r"no registry\.model_name"):
        kserve.render_inference_service(bare, "4", None, 0)


def _broken(document: dict[str, Any], change: str) -> dict[str, Any]:
    broken = copy.deepcopy(document)
    predictor = broken["spec"]["predictor"]
    if change == "percent-text":
        predictor["canaryTrafficPercent"] = "x"
    elif change == "percent-range":
        predictor["canaryTrafficPercent"] = 120
    elif change == "unknown-field":
        predictor["containers"][0]["imagePullPolicyy"] = "Always"
    elif change == "missing-name":
        del predictor["containers"][0]["name"]
    elif change == "missing-predictor":
        del broken["spec"]["predictor"]
    elif change == "bad-port":
        predictor["containers"][0]["ports"][0]["containerPort"] = "http"
    return broken


@pytest.mark.parametrize(("change", "line"), [
    ("percent-text", "spec.predictor.canaryTrafficPercent: 'x' is not of type 'integer'"),
    ("percent-range", "spec.predictor.canaryTrafficPercent: 120 is not in 0..100"),
    ("unknown-field", "spec.predictor.containers[0].imagePullPolicyy: unknown field"),
    ("missing-name", "spec.predictor.containers[0]: 'name' is a required property"),
    ("missing-predictor", "spec: 'predictor' is a required property"),
    ("bad-port", "spec.predictor.containers[0].ports[0].containerPort: 'http' is not of "
                 "type 'integer'"),
])
def test_validation_names_the_path_of_each_problem(loaded: LoadedSpec, change: str,
                                                   line: str) -> None:
    document = kserve.render_inference_service(loaded, "4", "5", 25)
    assert kserve.validate(document) == []
    assert kserve.validate(_broken(document, change)) == [line]


def test_validation_checks_what_the_api_server_checks_before_the_schema() -> None:
    problems = kserve.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "A_b"},
                                "spec": {"predictor": {}}})
    assert "(document): not a serving.kserve.io/v1beta1 InferenceService" in problems
    assert "metadata.name: 'A_b' does not match [a-z]([-a-z0-9]*[a-z0-9])?" in problems


def test_status_keeps_unknown_fields_as_the_crd_says(loaded: LoadedSpec) -> None:
    document = kserve.render_inference_service(loaded, "4", None, 0)
    assert kserve.validate({**document, "status": {"anything": {"the": "controller"}}}) == []


def test_the_name_comes_from_the_model_name() -> None:
    assert kserve.service_name("Flights_Late.Arrival") == "flights-late-arrival"
    assert kserve.service_name("__churn--model__") == "churn-model"
    assert kserve.service_name("m" * 45) == "m" * 45  # 45 + "-predictor-default" = 63


@pytest.mark.parametrize(("model", "namespace", "says"), [
    ("7up", "default", "must start with a letter"),
    ("___", "default", "must start with a letter"),
    ("m" * 46, "default", "at most 45 fit"),
    ("m" * 40, "a-long-team-namespace", "at most 31 fit"),
    ("model", "Team_NS", "not a DNS-1123 label"),
])
def test_names_kserve_or_knative_would_refuse_are_refused(model: str, namespace: str,
                                                          says: str) -> None:
    with pytest.raises(ValueError, match=says):
        kserve.service_name(model, namespace)


def test_the_vendored_schema_is_kserves_inference_service() -> None:
    assert kserve.SCHEMA_FILE.stat().st_size < 64_000  # compact, gzipped
    schema = kserve._validator().schema
    predictor = schema["properties"]["spec"]["properties"]["predictor"]["properties"]
    assert predictor["canaryTrafficPercent"]["type"] == "integer"
    assert schema["properties"]["spec"]["required"] == ["predictor"]
