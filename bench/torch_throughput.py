"""train.torch's loop vs the textbook DataLoader(TensorDataset) loop: same MLP, same data,
same batch size, measured in one process. Runs alone (only torch and numpy) — on a GPU
machine too: `python bench/torch_throughput.py`."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from loopline.ml.torch_trainer import MLP, TrainConfig, fit


def data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype("int64")
    return x, y


def dataloader_samples_per_s(x: np.ndarray, y: np.ndarray, epochs: int, batch: int,
                             device: torch.device) -> float:
    torch.manual_seed(0)
    model = MLP(x.shape[1], 1, (128, 64), 0.1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y).float()),
                        batch_size=batch, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = loss_fn(model(xb).squeeze(-1), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) * epochs / (time.perf_counter() - started)


class GpuUtilisation:
    """Samples `nvidia-smi` utilisation every 100 ms while our loop trains (CUDA only)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> GpuUtilisation:
        if torch.cuda.is_available() and shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "100"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            out, _ = self.process.communicate(timeout=10)
            self.samples = [float(v) for v in out.split() if v.strip().isdigit()]


def main(rows: int = 200_000, features: int = 30, epochs: int = 3, batch: int = 512,
         repeats: int = 3) -> None:
    x, y = data(rows, features)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ours, baseline = [], []
    config = TrainConfig(max_epochs=epochs, patience=epochs + 1, batch_size=batch)
    utilisation: list[float] = []
    for _ in range(repeats):
        with GpuUtilisation() as gpu:
            result = fit(x, y, None, None, config, log=lambda _: None)
        utilisation += gpu.samples[2:]  # the first samples cover process start-up
        ours.append(result.samples_per_s)
        baseline.append(dataloader_samples_per_s(x, y, epochs, batch, device))
    name = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    print(f"## train.torch throughput ({rows:,} x {features}, batch {batch}, {epochs} epochs, "
          f"{name})")
    print(f"train.torch (resident tensors): median {statistics.median(ours):,.0f} samples/s")
    print(f"DataLoader(TensorDataset):      median {statistics.median(baseline):,.0f} samples/s")
    ratio = statistics.median(ours) / statistics.median(baseline)
    print(f"ratio:                          {ratio:.2f}x")
    if utilisation:
        print(f"GPU utilisation during train.torch: mean {statistics.mean(utilisation):.0f}%, "
              f"median {statistics.median(utilisation):.0f}% ({len(utilisation)} samples)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
