"""The Kubernetes rules every backend that starts pods shares (Airflow's pod operator, KFP
tasks, the `loopline components export` YAMLs): the step image, the command a pod runs, its
environment and a step's resources.

Resources, one translation:
* CPU is a request only. A CPU limit throttles a step through CFS quotas whenever it bursts
  (data loading, a sort) while the node has idle cores; the request alone reserves its share.
* Memory is a request and an equal limit: the scheduler never places more than fits, and a
  leaking step is killed alone instead of starving its neighbours.
* GPUs are limits of the `nvidia.com/gpu` resource (Kubernetes takes extended resources as
  limits only); a GPU `type` selects nodes by the `nvidia.com/gpu.product` label that
  NVIDIA's GPU feature discovery puts on each node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from loopline import __version__
from loopline.runtime.environment import StepEnvironment
from loopline.spec.model import GpuSpec, Resources

# The image built from this repository's Dockerfile, tagged with the package version: a
# moving `latest` tag would let a cluster run other code than the one that compiled the spec.
DEFAULT_IMAGE = f"loopline-step:{__version__}"
IMAGE_ENV = "LOOPLINE_STEP_IMAGE"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def step_image(configured: str | None = None) -> str:
    """The step's own image, else $LOOPLINE_STEP_IMAGE, else the versioned default."""
    return configured or os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def step_command(spec_relative: str, step: str, orchestrator: str,
                 fingerprint: str) -> list[str]:
    """What a pod runs: one step, the spec found relative to the image's working folder (the
    project in the image), so no path of the machine that compiled it leaks in; refused when
    the image's step differs from the one the task was built from (`fingerprint`)."""
    return ["loopline", "step", spec_relative, step, "--orchestrator", orchestrator,
            "--fingerprint", fingerprint]


def pod_env(env: StepEnvironment, extra: dict[str, str]) -> list[dict[str, Any]]:
    """A container's `env` list: `extra` (per task: run id, params) and the step's values as
    values, its secrets as `secretKeyRef`s (Kubernetes fills them; they never appear here)."""
    rendered: list[dict[str, Any]] = [{"name": k, "value": v}
                                      for k, v in {**env.values, **extra}.items()]
    rendered += [{"name": name, "valueFrom": {"secretKeyRef": {
        "name": ref.secret, "key": ref.key, **({"optional": True} if ref.optional else {})}}}
        for name, ref in env.secrets.items()]
    return rendered


@dataclass(frozen=True)
class PodResources:
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        return int(self.limits.get(GPU_RESOURCE, 0))


def pod_resources(resources: Resources) -> PodResources:
    """A step's `resources:` as Kubernetes requests, limits and a node selector."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    selector: dict[str, str] = {}
    if resources.cpu:
        requests["cpu"] = str(resources.cpu)
    if resources.memory:
        requests["memory"] = limits["memory"] = resources.memory
    gpu = resources.gpu
    if isinstance(gpu, GpuSpec) and gpu.count:
        limits[GPU_RESOURCE] = str(gpu.count)
        if gpu.type:
            selector[GPU_PRODUCT_LABEL] = gpu.type
    return PodResources(requests, limits, selector)
