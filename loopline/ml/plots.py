"""ROC, PR and confusion-matrix plots: PNGs for people, JSON for `dvc plots`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

MAX_POINTS = 200


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    if len(arrays[0]) <= MAX_POINTS:
        return list(arrays)
    keep = np.unique(np.linspace(0, len(arrays[0]) - 1, MAX_POINTS).astype(int))
    return [a[keep] for a in arrays]


def classification_plots(folder: Path, actual: np.ndarray, scores: np.ndarray,
                         threshold: float, champion_scores: np.ndarray | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(actual, scores)
    precision, recall, _ = precision_recall_curve(actual, scores)
    fpr, tpr = _thin(fpr, tpr)
    recall, precision = _thin(recall, precision)
    _dump(folder / "roc.json", [{"fpr": float(a), "tpr": float(b)}
                                for a, b in zip(fpr, tpr, strict=True)])
    _dump(folder / "pr.json", [{"recall": float(a), "precision": float(b)}
                               for a, b in zip(recall, precision, strict=True)])
    predicted = (scores >= threshold).astype(int)
    matrix = confusion_matrix(actual, predicted, labels=[0, 1])
    _dump(folder / "confusion.json", [{"actual": int(a), "predicted": int(p), "count": int(n)}
                                      for a in (0, 1) for p in (0, 1)
                                      for n in [matrix[a, p]]])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].plot(fpr, tpr, label="challenger")
    axes[1].plot(recall, precision, label="challenger")
    if champion_scores is not None:
        c_fpr, c_tpr, _ = roc_curve(actual, champion_scores)
        c_precision, c_recall, _ = precision_recall_curve(actual, champion_scores)
        _dump(folder / "roc_champion.json", [{"fpr": float(a), "tpr": float(b)} for a, b
                                             in zip(*_thin(c_fpr, c_tpr), strict=True)])
        axes[0].plot(*_thin(c_fpr, c_tpr), label="champion", linestyle="--")
        axes[1].plot(*_thin(c_recall, c_precision), label="champion", linestyle="--")
    axes[0].plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    for ax in axes[:2]:
        ax.legend(loc="best")
    image = axes[2].imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axes[2].text(col, row, f"{count:,}", ha="center", va="center",
                     color="white" if dark else "black")
    axes[2].set(title=f"Confusion (threshold {threshold})", xlabel="predicted", ylabel="actual",
                xticks=[0, 1], yticks=[0, 1])
    fig.colorbar(image, ax=axes[2])
    fig.tight_layout()
    fig.savefig(folder / "evaluation.png", dpi=90)
    plt.close(fig)


def regression_plots(folder: Path, actual: np.ndarray, predicted: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    index = np.linspace(0, len(actual) - 1, min(len(actual), 2000)).astype(int)
    _dump(folder / "predictions.json", [{"actual": float(actual[i]),
                                         "predicted": float(predicted[i])} for i in index])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual[index], predicted[index], s=3, alpha=0.5)
    ax.set(title="Predicted vs actual", xlabel="actual", ylabel="predicted")
    fig.savefig(folder / "evaluation.png", dpi=90)
    plt.close(fig)


def _dump(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(records))
