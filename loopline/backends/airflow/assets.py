"""The Airflow Assets a Loopline DAG emits and listens to: each step's output files, the
registered model (promote), and the retrain request a drift DAG sends its training DAG."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset

from loopline.components import registry
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import is_uri, location


def step_assets(loaded: LoadedSpec, step: str) -> list[Asset]:
    spec = loaded.spec
    component = registry.get(spec.steps[step].component)
    root = spec.artifacts.root
    base = root if is_uri(root) else Path(location(root, loaded.project_root)).resolve().as_uri()
    # Identified by URI alone: a name tied to a path would turn "inactive" (and fail the
    # task) as soon as the project moved or the artifact root changed.
    assets = [Asset(uri=f"{base}/{spec.name}/{step}/{output.filename}")
              for output in component.outputs.values()]
    if component.touches_registry and spec.registry:
        assets.append(model_asset(spec.registry.model_name))
    return assets


def model_asset(model_name: str) -> Asset:
    """The registered model: promote emits an event on it (extra: version, promoted)."""
    return Asset(name=f"model.{model_name}", uri=f"loopline://models/{model_name}")


def retrain_asset(pipeline: str) -> Asset:
    """Drift jobs emit an event here when drift calls for retraining `pipeline`; the
    training DAG is scheduled on it (as well as on its own schedule)."""
    return Asset(name=f"retrain.{pipeline}", uri=f"loopline://retrain/{pipeline}")


