"""The drift methods by name, and which way each score points. Light (no NumPy): the spec
model of `drift.evidently` reads it when a spec is validated."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["psi", "ks", "wasserstein", "jensenshannon"]
METHODS: tuple[str, ...] = get_args(Method)
# Higher scores mean drift, except KS whose score is a p-value (lower means drift).
P_VALUE_METHODS = frozenset({"ks"})
NUMERIC_ONLY = frozenset({"ks", "wasserstein"})


def is_drift(method: str, value: float, threshold: float) -> bool:
    return value <= threshold if method in P_VALUE_METHODS else value >= threshold
