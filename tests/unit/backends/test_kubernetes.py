"""One Kubernetes translation for every backend that starts pods (Airflow, KFP)."""

from __future__ import annotations

import pytest

from loopline import __version__
from loopline.backends.kubernetes import DEFAULT_IMAGE, pod_resources, step_image
from loopline.spec.model import Resources


def test_cpu_is_requested_memory_is_bounded_gpus_are_limits_with_a_node_selector() -> None:
    pod = pod_resources(Resources(cpu="500m", memory="4Gi",
                                  gpu={"count": 2, "type": "NVIDIA-A100-SXM4-40GB"}))
    assert pod.requests == {"cpu": "500m", "memory": "4Gi"}
    assert pod.limits == {"memory": "4Gi", "nvidia.com/gpu": "2"}  # no CPU limit: no throttling
    assert pod.node_selector == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    assert pod.gpus == 2


def test_nothing_asked_nothing_set() -> None:
    pod = pod_resources(Resources())
    assert (pod.requests, pod.limits, pod.node_selector, pod.gpus) == ({}, {}, {}, 0)
    assert pod_resources(Resources(gpu=0)).limits == {}
    assert pod_resources(Resources(gpu=1)).node_selector == {}  # any GPU model


def test_the_default_image_is_versioned_and_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_STEP_IMAGE", raising=False)
    assert step_image() == DEFAULT_IMAGE == f"loopline-step:{__version__}"
    monkeypatch.setenv("LOOPLINE_STEP_IMAGE", "registry.example/step:7")
    assert step_image() == "registry.example/step:7"
    assert step_image("own:1") == "own:1"  # the step's isolation.image wins
