"""The PyTorch trainer: light imports, determinism, GPU requirements, a real round trip."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from loopline.ml.torch_trainer import GpuUnavailable, TrainConfig, fit, resolve_device
from tests.support import REPO


def test_trainer_core_imports_only_torch_and_numpy() -> None:
    probe = ("import sys, loopline.ml.torch_trainer\n"
             "heavy = {'pandas', 'mlflow', 'feast', 'airflow', 'sklearn', 'great_expectations',"
             " 'kfp', 'evidently', 'pyarrow'}\n"
             "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, timeout=120).stdout.strip()
    assert out == "[]"


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(scale=0.3, size=n) > 0.5).astype("int64")
    return x, y


def test_seeded_training_is_deterministic_on_cpu() -> None:
    x, y = _data()
    config = TrainConfig(max_epochs=3, batch_size=256, device="cpu")
    first = fit(x, y, x[:500], y[:500], config, log=lambda _: None)
    second = fit(x, y, x[:500], y[:500], config, log=lambda _: None)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    losses = [[(h["train_loss"], h["eval_loss"]) for h in r.history] for r in (first, second)]
    assert losses[0] == losses[1]


def test_learns_and_stops_early() -> None:
    x, y = _data(6000)
    xe, ye = _data(2000, seed=1)
    result = fit(x, y, xe, ye, TrainConfig(max_epochs=40, patience=2, batch_size=256,
                                           device="cpu"), log=lambda _: None)
    with torch.no_grad():
        scores = torch.sigmoid(result.model(torch.from_numpy(xe)).squeeze(-1)).numpy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(ye, scores) > 0.85
    # It stopped on the eval loss: `patience` epochs after the best one, well before 40.
    assert len(result.history) == result.best_epoch + 2 < 40
    assert result.samples_per_s > 0


def test_regression_fits_a_line() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 2)).astype("float32")
    y = (3 * x[:, 0] - x[:, 1] + 1).astype("float32")
    result = fit(x, y, x[:500], y[:500], TrainConfig(task="regression", max_epochs=60,
                                                     batch_size=128, dropout=0.0,
                                                     device="cpu"), log=lambda _: None)
    assert result.best_eval_loss < 0.05


@pytest.mark.parametrize(("requested", "require_gpu", "cuda", "chosen"), [
    ("auto", False, True, "cuda"),   # auto takes the GPU when there is one
    ("auto", True, True, "cuda"),
    ("cuda", False, True, "cuda"),
    ("cuda", True, True, "cuda"),
    ("cpu", False, True, "cpu"),     # an explicit cpu stays on the CPU
    ("auto", False, False, "cpu"),   # auto falls back without a GPU
    ("cpu", False, False, "cpu"),
])
def test_device_choice(requested: str, require_gpu: bool, cuda: bool, chosen: str) -> None:
    assert resolve_device(requested, require_gpu, cuda_available=cuda) == torch.device(chosen)


@pytest.mark.parametrize(("requested", "require_gpu", "message"), [
    ("auto", True, "requires a GPU (resources.gpu.require: true) but none is visible"),
    ("cpu", True, "requires a GPU (resources.gpu.require: true) but none is visible"),
    ("cuda", False, "device: cuda was requested but no GPU is visible"),
])
def test_device_choice_refuses_without_a_gpu(requested: str, require_gpu: bool,
                                             message: str) -> None:
    with pytest.raises(GpuUnavailable, match=re.escape(message)):
        resolve_device(requested, require_gpu, cuda_available=False)


REFUSAL_PROBE = """
import numpy as np, torch
from loopline.ml.torch_trainer import GpuUnavailable, TrainConfig, fit, resolve_device
assert not torch.cuda.is_available()
x, y = np.zeros((100, 8), "float32"), np.arange(100) % 2
for config in (TrainConfig(require_gpu=True), TrainConfig(device="cuda")):
    try:
        fit(x, y, None, None, config, log=lambda _: None)
    except GpuUnavailable as exc:
        print(exc)
    else:
        print("trained")
"""


def test_required_gpu_fails_fast_without_one() -> None:
    """In a process that sees no GPU (CUDA_VISIBLE_DEVICES=""), also on a machine with one."""
    done = subprocess.run([sys.executable, "-c", REFUSAL_PROBE], capture_output=True,
                          text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "this step requires a GPU (resources.gpu.require: true) but none is visible: "
        "torch.cuda.is_available() is False",
        "device: cuda was requested but no GPU is visible"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_auto_trains_on_the_gpu_when_there_is_one() -> None:
    x, y = _data(2000)
    result = fit(x, y, x[:200], y[:200], TrainConfig(max_epochs=1, compile="never"),
                 log=lambda _: None)
    assert result.device == "cuda"
    assert next(result.model.parameters()).device.type == "cpu"  # handed back on the CPU
