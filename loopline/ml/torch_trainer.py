"""A tabular MLP trainer that keeps the accelerator busy. Imports only torch and numpy, so it
can be run and benchmarked alone.

Why it is fast: the whole dataset lives on the device as two tensors and batches are index
slices of a device-side permutation (no per-sample DataLoader, no host round trips); host
tensors are pinned before the one copy; bf16 autocast on CUDA; `torch.compile` on CUDA.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


class GpuUnavailable(RuntimeError):
    """A GPU was required (resources.gpu.require) and none is visible."""


@dataclass(frozen=True)
class TrainConfig:
    task: str = "classification"  # classification | regression
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 1024
    max_epochs: int = 30
    patience: int = 3
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    require_gpu: bool = False
    compile: str = "auto"  # auto (on CUDA) | always | never
    bf16: bool = True


@dataclass
class FitResult:
    model: nn.Module
    device: str
    best_epoch: int
    best_eval_loss: float
    samples_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)


class MLP(nn.Module):
    def __init__(self, n_features: int, n_outputs: int, hidden: tuple[int, ...],
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resolve_device(requested: str, require_gpu: bool,
                   cuda_available: bool | None = None) -> torch.device:
    """The device to train on; `cuda_available` defaults to torch.cuda.is_available()."""
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if require_gpu and not cuda:
        raise GpuUnavailable("this step requires a GPU (resources.gpu.require: true) but none "
                             "is visible: torch.cuda.is_available() is False")
    if requested == "cuda" and not cuda:
        raise GpuUnavailable("device: cuda was requested but no GPU is visible")
    return torch.device("cuda" if (requested in ("auto", "cuda") and cuda) else "cpu")


def _to_device(array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _loss(task: str, n_outputs: int) -> nn.Module:
    if task == "regression":
        return nn.MSELoss()
    return nn.BCEWithLogitsLoss() if n_outputs == 1 else nn.CrossEntropyLoss()


def label_classes(frame: Any, label: str, task: str) -> list[Any]:
    """The sorted class values of a classification label (their index is the target)."""
    return sorted(frame[label].unique().tolist()) if task == "classification" else []


def training_arrays(frame: Any, label: str, task: str,
                    classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A transformed frame as the trainer's arrays: features as float32, the label as class
    indices (a class unseen in training: -1) or float32 targets. One rule for `train.torch`
    and bench/torch_example.py, so the GPU figures are the component's."""
    x = frame.drop(columns=[label]).to_numpy("float32")
    if task == "classification":
        lookup = {value: index for index, value in enumerate(classes)}
        return x, frame[label].map(lookup).fillna(-1).to_numpy("int64")
    return x, frame[label].to_numpy("float32")


def fit(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray | None,
        y_eval: np.ndarray | None, config: TrainConfig,
        log: Callable[[str], None] = print) -> FitResult:
    """Train with early stopping on the eval split; returns the best model, on the CPU."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = resolve_device(config.device, config.require_gpu)
    classes = int(y_train.max()) + 1 if config.task == "classification" else 0
    n_outputs = 1 if config.task == "regression" or classes <= 2 else classes
    target_dtype = torch.long if n_outputs > 1 else torch.float32
    x = _to_device(x_train, device, torch.float32)
    y = _to_device(y_train, device, target_dtype)
    has_eval = x_eval is not None and y_eval is not None and len(x_eval) > 0
    xe = _to_device(x_eval, device, torch.float32) if has_eval else x
    ye = _to_device(y_eval, device, target_dtype) if has_eval else y

    model = MLP(x.shape[1], n_outputs, config.hidden, config.dropout).to(device)
    step_model: nn.Module = model
    if config.compile == "always" or (config.compile == "auto" and device.type == "cuda"):
        step_model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    loss_fn = _loss(config.task, n_outputs)
    autocast = device.type == "cuda" and config.bf16
    generator = torch.Generator(device=device).manual_seed(config.seed)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = step_model(batch)
        out = out.float()
        return out.squeeze(-1) if n_outputs == 1 else out

    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    trained, train_seconds = 0, 0.0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(x), device=device, generator=generator)
        total = torch.zeros((), device=device)
        for start in range(0, len(x), config.batch_size):
            index = order[start:start + config.batch_size]
            loss = loss_fn(forward(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        trained += len(x)
        train_seconds += seconds
        eval_loss = evaluate_loss(model, forward, loss_fn, xe, ye, config.batch_size * 8)
        history.append({"epoch": epoch, "train_loss": float(total) / len(x),
                        "eval_loss": eval_loss, "samples_per_s": len(x) / seconds})
        log(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, eval loss "
            f"{eval_loss:.4f}, {len(x) / seconds:,.0f} samples/s on {device.type}")
        if eval_loss < best_loss - 1e-6:
            best_loss, best_epoch = eval_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            log(f"early stop: no eval improvement for {config.patience} epochs")
            break
    model.load_state_dict(best_state)
    model = model.to("cpu").eval()
    return FitResult(model, device.type, best_epoch, best_loss,
                     trained / train_seconds if train_seconds else 0.0, history)


@torch.no_grad()
def evaluate_loss(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                  loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch):
        total += float(loss_fn(forward(x[start:start + batch]), y[start:start + batch])) * \
            len(x[start:start + batch])
    return total / len(x)
