"""The pipeline spec as immutable pydantic models: what to run, never how to run it."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from loopline.spec.alerts import AlertsSpec
from loopline.spec.ci import CiSpec
from loopline.spec.durations import Duration, duration_seconds
from loopline.spec.refs import OutputRef
from loopline.spec.rollout import RolloutSpec
from loopline.spec.schedules import SCHEDULE_PRESETS, check_schedule
from loopline.spec.serving import ServeSpec

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
# Names become DAG ids, KFP task and pod names, and folder names: a Kubernetes label holds 63.
MAX_NAME = 63
MAX_CPU_CORES = 1024
MAX_DELAY_S = 86_400.0
# Kubernetes resource quantities: "500m", "2", "1.5", "4Gi", "512M".
_CPU_RE = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")


def _cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Frozen):
    """GPU needs of a step; `require` turns "no GPU here" into an error instead of a CPU run."""

    count: int = Field(1, ge=0, le=64, description="Number of GPUs.")
    type: str | None = Field(
        None, description="GPU model, matched against the nvidia.com/gpu.product node label, "
                          "e.g. NVIDIA-A100-SXM4-40GB.")
    require: bool = Field(False, description="Fail instead of falling back to the CPU.")


class Resources(_Frozen):
    """What a step needs from the machine; backends translate it (pools, pod requests)."""

    # Numbers are accepted and kept as quantity strings ("2"), as Kubernetes writes them.
    cpu: str | int | float | None = Field(
        None, description='CPU request as a Kubernetes quantity: 2, "0.5", "500m".')
    memory: str | None = Field(None, description='Memory request: "4Gi", "512Mi".')
    gpu: GpuSpec | int | None = Field(None, description="A GPU count, or count/type/require.")

    def cpu_cores(self) -> float:
        """The CPU request in cores ("500m" -> 0.5); 1 when none is given."""
        return 1.0 if self.cpu is None else _cores(str(self.cpu))

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a CPU quantity such as 2 or \"500m\"")
        if isinstance(value, int | float):
            if value <= 0:
                raise ValueError("must be positive")
            value = str(value)
        if isinstance(value, str) and not _CPU_RE.match(value):
            raise ValueError(f'{value!r} is not a CPU quantity (e.g. 2, "0.5", "500m")')
        if isinstance(value, str) and _cores(value) > MAX_CPU_CORES:
            raise ValueError(f"{value} cores is more than any node has (at most "
                             f"{MAX_CPU_CORES})")
        return value

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, str) and not _MEMORY_RE.match(value):
            raise ValueError(f'{value!r} is not a memory quantity (e.g. "4Gi", "512Mi")')
        return value

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a GPU count or a mapping with count/type/require")
        if isinstance(value, int):
            if value < 0:
                raise ValueError("GPU count cannot be negative")
            return {"count": value}
        return value


class Isolation(_Frozen):
    """Where an orchestrator runs a step's code; `loopline run` always runs in-process."""

    mode: str = Field("in_process", pattern="^(in_process|external_python|kubernetes)$",
                      description="in_process | external_python | kubernetes.")
    python: str | None = Field(
        None, description="external_python: the interpreter holding the ML stack "
                          "(default: $LOOPLINE_EXTERNAL_PYTHON).")
    image: str | None = Field(
        None, description="kubernetes: the step image (default: $LOOPLINE_STEP_IMAGE).")
    namespace: str | None = Field(None, description="kubernetes: the namespace.")


class StepSpec(_Frozen):
    """One step: a named component, where its inputs come from, and its parameters."""

    component: str = Field(description="Registered component name, e.g. train.sklearn.")
    description: str = ""
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Input name -> 'step.output' of an upstream step."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Component parameters.")
    after: list[str] = Field(default_factory=list, description="Extra ordering dependencies.")
    resources: Resources | None = None
    retries: int | None = Field(None, ge=0, le=20)
    retry_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, allow_inf_nan=False)
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    cache: bool = Field(True, description="Reuse outputs when nothing the step reads changed.")
    isolation: Isolation | None = None

    @field_validator("inputs")
    @classmethod
    def _refs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            try:
                OutputRef.parse(ref)
            except ValueError as exc:
                raise ValueError(f"input {name!r}: {exc}") from None
        return value

    def input_refs(self) -> dict[str, OutputRef]:
        """Input name -> the upstream output it reads."""
        return {name: OutputRef.parse(ref) for name, ref in self.inputs.items()}


class SecretRef(_Frozen):
    """An environment variable filled from a Kubernetes secret; the value never enters a spec,
    a compiled pipeline or a DAG. Locally the variable is read from the environment."""

    secret: str = Field(description="Kubernetes secret name.")
    key: str = Field(description="Key inside the secret.")
    optional: bool = Field(
        False, description="May be absent (an alert route nobody configured): pods start "
                           "without it and a profile does not require it.")


class StepDefaults(_Frozen):
    """Defaults every step inherits unless it says otherwise."""

    retries: int = Field(0, ge=0, le=20)
    retry_delay_s: float = Field(10.0, ge=0, le=MAX_DELAY_S, allow_inf_nan=False)
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    resources: Resources = Field(default_factory=Resources)
    isolation: Isolation = Field(default_factory=Isolation)


class MlflowSpec(_Frozen):
    tracking_uri: str | None = Field(
        None, description="Default: sqlite:///<project>/mlflow.db (env MLFLOW_TRACKING_URI wins)."
    )
    experiment: str | None = Field(None, description="Default: the pipeline's name.")


class WandbSpec(_Frozen):
    enabled: bool = False
    project: str | None = None
    mode: str = Field("auto", pattern="^(auto|online|offline)$",
                      description="auto: online with WANDB_API_KEY, offline without.")


class TrackingSpec(_Frozen):
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)
    wandb: WandbSpec = Field(default_factory=WandbSpec)


class RegistrySpec(_Frozen):
    model_name: str = Field(description="Registered model name in the MLflow registry.")
    registry_uri: str | None = Field(None, description="Default: the tracking URI.")


class ArtifactsSpec(_Frozen):
    root: str = Field("artifacts", description="Folder or fsspec URI; relative to the project.")


StepName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=255)]
# What every backend sets for a step itself (runtime.environment); a spec may not set them.
RESERVED_ENV = ("LOOPLINE_PARAMS_JSON", "LOOPLINE_ORCHESTRATOR_RUN", "LOOPLINE_RUN_ID",
                "LOOPLINE_PROFILE")
class RetrainSpec(_Frozen):
    """What a drift job starts when its drift step decides `action: retrain`."""

    pipeline: str = Field(description="The training spec to run, relative to the project root.")
    step: str = Field(description="The step whose drift summary decides (drift.evidently).")
    cooldown: Duration = Field(
        "1h", description="After a trigger, later ones wait this long (30m, 1h, 2d).")

    @property
    def cooldown_s(self) -> float:
        return duration_seconds(self.cooldown)


class PipelineSpec(_Frozen):
    """A whole pipeline. Relative paths resolve against the project root, never the cwd."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=MAX_NAME)
    description: str = ""
    schedule: str | None = Field(
        None, description="Cron expression (5 fields, UTC) or a preset: "
                          + ", ".join(SCHEDULE_PRESETS) + ".")
    params_file: str = Field("params.yaml", description="Relative to the project root.")
    artifacts: ArtifactsSpec = Field(default_factory=ArtifactsSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    registry: RegistrySpec | None = None
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    env: dict[EnvName, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="Environment variables every step gets on every backend (Airflow pods "
                    "and workers, KFP tasks, local runs, the server); values may use "
                    "${params}; an empty value sets nothing. Never secrets: use `secrets:`.")
    secrets: dict[EnvName, SecretRef] = Field(
        default_factory=dict, description="Env var name -> Kubernetes secret reference.")
    steps: dict[StepName, StepSpec] = Field(min_length=1)
    retrain: RetrainSpec | None = Field(
        None, description="Drift jobs: the training pipeline that drift starts.")
    serve: ServeSpec | None = Field(
        None, description="`loopline serve`: the registry model behind an HTTP server, its "
                          "prediction log and live checks.")
    rollout: RolloutSpec | None = Field(
        None, description="How a challenger that passed its gate reaches all traffic: canary "
                          "steps, shadow or A/B, gated at each step (`loopline rollout`).")
    ci: CiSpec = Field(default_factory=CiSpec,
                       description="`loopline ci pr|main`: the pull request's training sample "
                                   "and whether a failed gate fails the job.")
    alerts: AlertsSpec | None = Field(
        None, description="Where events (drift, failed gates and steps, live checks, "
                          "retraining) are sent: Slack, PagerDuty, webhooks.")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            check_schedule(value)
        return value

    @field_validator("serve", mode="before")
    @classmethod
    def _serve_alone(cls, value: Any) -> Any:
        return {} if value is None else value  # `serve:` alone: serve with every default

    @model_validator(mode="after")
    def _environment(self) -> PipelineSpec:
        for name in (*self.env, *self.secrets):
            if name in RESERVED_ENV:
                raise ValueError(f"{name} is set by Loopline itself for every step")
        if both := sorted(set(self.env) & set(self.secrets)):
            raise ValueError(f"{', '.join(both)}: in both env and secrets; a variable comes "
                             "from one place")
        return self

    @model_validator(mode="after")
    def _rollout_needs_a_server(self) -> PipelineSpec:
        if self.rollout is not None and (self.registry is None or self.serve is None):
            raise ValueError("rollout: needs registry.model_name and a `serve:` block (the "
                             "server routes the challenger's share of traffic)")
        return self

    @model_validator(mode="after")
    def _step_names(self) -> PipelineSpec:
        for name in self.steps:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"step name {name!r} must match {NAME_PATTERN}")
        return self

    def retries(self, step: str) -> int:
        value = self.steps[step].retries
        return self.defaults.retries if value is None else value

    def retry_delay_s(self, step: str) -> float:
        value = self.steps[step].retry_delay_s
        return self.defaults.retry_delay_s if value is None else value

    def timeout_s(self, step: str) -> float | None:
        value = self.steps[step].timeout_s
        return self.defaults.timeout_s if value is None else value

    def resources(self, step: str) -> Resources:
        return self.steps[step].resources or self.defaults.resources

    def isolation(self, step: str) -> Isolation:
        return self.steps[step].isolation or self.defaults.isolation
