"""What a registered PyTorch model is: the trained module plus its feature transform, so
`models:/NAME@champion` scores raw rows exactly as the sklearn bundle does."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class TabularModel(nn.Module):
    def __init__(self, net: nn.Module, transform: Any, task: str, classes: list[Any]) -> None:
        super().__init__()
        self.net = net
        self.transform = transform
        self.task = task
        self.classes_ = np.asarray(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def _outputs(self, frame: Any) -> torch.Tensor:
        self.eval()
        features = self.transform.transform(frame).to_numpy("float32")
        return self.net(torch.from_numpy(features))

    def predict_proba(self, frame: Any) -> np.ndarray:
        out = self._outputs(frame)
        if out.shape[-1] == 1:
            positive = torch.sigmoid(out.squeeze(-1)).numpy().astype("float64")
            return np.column_stack([1 - positive, positive])
        return torch.softmax(out, dim=-1).numpy().astype("float64")

    def predict(self, frame: Any) -> np.ndarray:
        if self.task == "regression":
            return self._outputs(frame).squeeze(-1).numpy().astype("float64")
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]
