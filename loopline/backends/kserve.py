"""KServe backend: a spec's served model as a KServe `InferenceService` (serverless, Knative).

The predictor is a custom container running `loopline serve` from the step image, pinned to
one registry version, so a cluster answers with the same transform, Feast join, prediction
log and metrics as a local server; the pod gets the step environment (`env:` as values,
`secrets:` as secret references) and resources through the rules of `backends.kubernetes`.

A rollout maps onto KServe's own canary: the rendered document serves the canary's version
with `canaryTrafficPercent: <step weight>`; KServe sends that share to the latest revision
(this document) and the rest to the last revision that took all traffic (the champion's
render, applied before the rollout started). Promotion is the champion-only render (no
`canaryTrafficPercent`). Re-rendering at each step must change the traffic only: KServe
copies the InferenceService's annotations and labels onto the Knative revision template, so
anything that varied per step there (a step counter) would start a new revision, with new
pods, at every step. The step is therefore not annotated; the weight is in the spec.

KServe has no traffic mirroring: a `shadow` rollout renders the champion alone, with a note
annotation; the copy to the challenger is made by `loopline serve`'s own router in that
revision, which follows the controller's rollout state. `ab` renders like canary (KServe
splits per request at random, not sticky by entity key as `loopline serve` does).

The schema checked against is KServe's CRD `openAPIV3Schema` (v1beta1), vendored from
kserve/kserve v0.20.0, commit 1fb781055dd1567164358233e1125142ca6ef1fe,
`config/crd/full/serving.kserve.io_inferenceservices.yaml` (unchanged at aaac4e294dae of
2026-08-21); the KServe SDK does not install with our pins (docs/kubeflow.md).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from loopline.backends.kubernetes import pod_env, pod_resources, step_image
from loopline.runtime.environment import step_environment

if TYPE_CHECKING:
    from loopline.runtime.rollout import Traffic
    from loopline.spec.load import LoadedSpec

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
CONTAINER = "kserve-container"  # the name KServe gives a custom predictor's container
PORT = 8080
SCHEMA_FILE = Path(__file__).with_name("kserve_crd_schema.json.gz")
# Knative names a revision `<name>-predictor-00001` and, by default, its host label
# `<name>-predictor-<namespace>`: both must fit a 63-character DNS label.
_REVISION_SUFFIX = "-predictor-00001"
_HOST_SUFFIX = "-predictor-"
_LABEL = 63
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KServe's own IsvcNameFmt
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def service_name(model_name: str, namespace: str = "default") -> str:
    """The InferenceService name for a registered model: lowercase, runs of other characters
    as one `-`; refused (ValueError) when KServe or Knative would refuse it."""
    if not _NAMESPACE.match(namespace) or len(namespace) > _LABEL:
        raise ValueError(f"namespace {namespace!r} is not a DNS-1123 label (lowercase letters, "
                         "digits and '-', at most 63)")
    name = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")
    if not _NAME.match(name):
        raise ValueError(f"model {model_name!r} gives the name {name!r}, which must start with "
                         "a letter (KServe: [a-z]([-a-z0-9]*[a-z0-9])?); pass --name")
    limit = min(_LABEL - len(_REVISION_SUFFIX), _LABEL - len(_HOST_SUFFIX) - len(namespace))
    if len(name) > limit:
        raise ValueError(f"model {model_name!r} gives the name {name!r} ({len(name)} "
                         f"characters); at most {limit} fit Knative's revision and host "
                         f"names (<name>{_HOST_SUFFIX}{namespace}, 63 at most); pass --name")
    return name


def _served(champion: str | None, canary: str | None, weight: int,
            mode: str) -> tuple[str, int | None]:
    """(the version this revision serves, its canaryTrafficPercent or None)."""
    if not 0 <= weight <= 100:
        raise ValueError(f"weight {weight} is not a percentage (0..100)")
    if canary is None or mode == "shadow":
        if champion is None:
            raise ValueError("no champion to serve (and no canary): promote a model first, "
                             "or name the version with --champion")
        return champion, None
    if champion is None:  # KServe would send everything to the canary: no revision to split
        raise ValueError(f"canary v{canary} needs a champion to split traffic with")
    return canary, weight


def render_inference_service(loaded: LoadedSpec, champion: str | None, canary: str | None,
                             weight: int, *, namespace: str = "default",
                             image: str | None = None, mode: str = "canary",
                             name: str | None = None) -> dict[str, Any]:
    """The InferenceService serving `canary` at `weight` % (the rest stays on the champion's
    revision), or `champion` alone when there is no canary or the rollout is `shadow`."""
    if loaded.spec.registry is None:
        raise ValueError(f"{loaded.display}: no registry.model_name, so no model to serve")
    model = loaded.spec.registry.model_name
    name = service_name(name or model, namespace)
    served, percent = _served(champion, canary, weight, mode)
    # Relative to the project root: the image holds the project at its working folder.
    spec_path = PurePath(os.path.relpath(loaded.path, loaded.project_root)).as_posix()
    pod = pod_resources(loaded.spec.defaults.resources)  # `serve:` has no resources yet
    env = pod_env(step_environment(loaded), {})
    container: dict[str, Any] = {
        "name": CONTAINER, "image": step_image(image),
        "args": ["loopline", "serve", spec_path, "--host", "0.0.0.0", "--port", str(PORT),
                 "--model", served],
        **({"env": env} if env else {}),
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": PORT}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10},
        **({"resources": {k: v for k, v in (("requests", pod.requests),
                                            ("limits", pod.limits)) if v}}
           if pod.requests or pod.limits else {}),
    }
    predictor: dict[str, Any] = {"containers": [container]}
    if pod.node_selector:
        predictor["nodeSelector"] = pod.node_selector
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    annotations = {
        "serving.kserve.io/deploymentMode": "Knative",  # canaryTrafficPercent needs revisions
        "loopline.dev/pipeline": loaded.spec.name, "loopline.dev/model": model,
        "loopline.dev/champion": champion or "none", "loopline.dev/canary": canary or "none"}
    if mode == "shadow" and canary is not None:
        annotations["loopline.dev/note"] = (
            f"shadow v{canary}: KServe cannot mirror traffic, so the champion's revision "
            "answers every request (loopline serve mirrors the share itself, by the rollout "
            "state)")
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                         "labels": {"app.kubernetes.io/name": name,
                                    "app.kubernetes.io/managed-by": "loopline"}},
            "spec": {"predictor": predictor}}


def traffic_of(loaded: LoadedSpec) -> Traffic:
    """The current split as the rollout controller records it (registry aliases and the
    rollout state), read with the spec's environment, as its server would read it."""
    from loopline.runtime.environment import applied
    from loopline.runtime.rollout import traffic

    with applied(step_environment(loaded)):
        return traffic(loaded)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as `kubectl apply` does (server-side field
    validation, Strict by default): objects with `properties` get `additionalProperties:
    false` unless they keep unknown fields. The API server would otherwise prune a
    misspelled field in silence."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: (value if key in ("enum", "default", "required") else
                 {k: _strict(v) for k, v in value.items()} if key == "properties" else
                 _strict(value)) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator() -> Any:
    try:
        import jsonschema
    except ImportError as exc:  # a dev/airflow dependency, not a core one
        raise RuntimeError("validating an InferenceService needs jsonschema: "
                           "pip install jsonschema") from exc
    schema = _strict(json.loads(gzip.decompress(SCHEMA_FILE.read_bytes())))
    return jsonschema.Draft4Validator(schema)  # OpenAPI 3.0 schemas are draft-4 shaped


def _path(parts: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "(document)"


def validate(document: dict[str, Any]) -> list[str]:
    """Problems as `path: message` lines (empty: valid): KServe's CRD schema, unknown fields,
    and what the API server checks before it (kind, name, the percentage Knative takes)."""
    problems: list[str] = []
    for error in _validator().iter_errors(document):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            problems += [f"{_path([*error.absolute_path, field])}: unknown field"
                         for field in error.instance if field not in known]
        else:
            problems.append(f"{_path(error.absolute_path)}: {error.message}")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        problems.append(f"(document): not a {API_VERSION} {KIND}")
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not _NAME.match(str(name or "")):
        problems.append(f"metadata.name: {name!r} does not match [a-z]([-a-z0-9]*[a-z0-9])?")
    spec = document.get("spec")
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    percent = predictor.get("canaryTrafficPercent") if isinstance(predictor, dict) else None
    if isinstance(percent, int) and not 0 <= percent <= 100:
        problems.append(f"spec.predictor.canaryTrafficPercent: {percent} is not in 0..100")
    return sorted(problems)
