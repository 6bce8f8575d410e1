"""The example's `train.torch` step on its real data, on the GPU when there is one, the CPU
beside it: the same arrays (`training_arrays`), the same `fit`, the params of params.yaml.

Here: `python bench/torch_example.py --export DIR` copies the features step's outputs of
`pipelines/flights_torch.yaml` (run it first) to DIR. On a GPU machine, where only torch,
numpy, pandas and scikit-learn are needed: `python bench/torch_example.py DIR`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export(target: Path) -> None:
    """The latest features outputs of the torch example (train and eval, transformed)."""
    source = ROOT / "artifacts" / "flights_torch" / "features"
    if not (source / "train.parquet").exists():
        raise SystemExit("no features outputs: run `loopline run pipelines/flights_torch.yaml`")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("train.parquet", "eval.parquet"):
        shutil.copy(source / name, target / name)
    print(f"exported {source} -> {target}")


def train(folder: Path, device: str, repeats: int, batch: int | None) -> None:
    import pandas as pd
    import torch
    import yaml
    from sklearn.metrics import roc_auc_score
    from torch_throughput import GpuUtilisation

    from loopline.ml.torch_trainer import TrainConfig, fit, label_classes, training_arrays

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train_frame = pd.read_parquet(folder / "train.parquet")
    eval_frame = pd.read_parquet(folder / "eval.parquet")
    label = "late"
    classes = label_classes(train_frame, label, "classification")
    x, y = training_arrays(train_frame, label, "classification", classes)
    xe, ye = training_arrays(eval_frame, label, "classification", classes)
    config = TrainConfig(batch_size=batch or params["torch"]["batch_size"],
                         max_epochs=params["torch"]["max_epochs"],
                         learning_rate=params["torch"]["learning_rate"],
                         seed=params["train"]["seed"], device=device)
    name = torch.cuda.get_device_name() if device == "cuda" else \
        f"cpu, {torch.get_num_threads()} threads"
    speeds, seconds, utilisation = [], [], []
    for _ in range(repeats):
        with GpuUtilisation() as gpu:
            result = fit(x, y, xe, ye, config, log=lambda _: None)
        utilisation += gpu.samples[2:]
        # The first epoch pays torch.compile; the steady state is the later epochs.
        speeds.append(statistics.median(h["samples_per_s"] for h in result.history[1:]))
        seconds.append(sum(len(x) / h["samples_per_s"] for h in result.history))
    with torch.no_grad():
        scores = torch.sigmoid(result.model(torch.from_numpy(xe)).squeeze(-1)).numpy()
    auc = roc_auc_score(ye, scores)
    print(f"## train.torch on the example ({len(x):,} x {x.shape[1]} train, {len(xe):,} eval, "
          f"batch {config.batch_size}, {name})")
    print(f"samples/s (median epoch after the first, median of {repeats} fits): "
          f"{statistics.median(speeds):,.0f}")
    print(f"training time per fit (all epochs): median {statistics.median(seconds):.1f} s; "
          f"{len(result.history)} epochs, best {result.best_epoch}; eval ROC AUC {auc:.4f}")
    if utilisation:
        print(f"GPU utilisation while training: mean {statistics.mean(utilisation):.0f}%, "
              f"median {statistics.median(utilisation):.0f}% ({len(utilisation)} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--export", action="store_true", help="write the example's arrays")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, action="append",
                        help="batch sizes to try (default: params.yaml torch.batch_size)")
    parser.add_argument("--device", action="append", choices=["cuda", "cpu"],
                        help="default: cuda when there is one, and cpu")
    args = parser.parse_args()
    if args.export:
        export(args.folder)
        return
    import torch

    devices = args.device or (["cuda"] if torch.cuda.is_available() else []) + ["cpu"]
    for device in devices:
        for batch in args.batch or [None]:
            train(args.folder, device, args.repeats, batch)


if __name__ == "__main__":
    main()
