"""What a trained model says about itself (model.json): every trainer writes the same keys,
and `registry.promote`, scoring and drift read them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def model_info(task: str, estimator: str, label: str, flavor: str, inputs: list[str],
               classes: Iterable[Any], **extra: Any) -> dict[str, Any]:
    """`classes` as plain JSON values (NumPy scalars unwrapped); `extra` keys follow."""
    return {"task": task, "estimator": estimator, "label": label, "flavor": flavor,
            "inputs": inputs,
            "classes": [value.item() if hasattr(value, "item") else value for value in classes],
            **extra}
