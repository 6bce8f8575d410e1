"""The fitted feature transform: learned on train only, then applied identically everywhere.

It is a scikit-learn transformer so a registered model is `Pipeline([features, estimator])`
and `models:/NAME@champion` scores raw rows with exactly the transform it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from loopline.ml import expressions

DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "is_weekend")


@dataclass
class _Categorical:
    encoding: str
    categories: list[Any] = field(default_factory=list)


class FeatureTransform(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Numeric scaling, one-hot/ordinal categoricals, date parts and derived columns."""

    def __init__(self, numeric: dict[str, str] | None = None,
                 categorical: dict[str, dict[str, Any]] | None = None,
                 date_parts: dict[str, list[str]] | None = None,
                 derived: dict[str, str] | None = None, label: str | None = None) -> None:
        self.numeric = numeric or {}
        self.categorical = categorical or {}
        self.date_parts = date_parts or {}
        self.derived = derived or {}
        self.label = label

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, y: Any = None) -> FeatureTransform:
        frame = self._with_derived(frame)
        self.numeric_stats_: dict[str, tuple[float, float, float]] = {}
        for column in self._numeric_columns():
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            fill = float(values.median()) if values.notna().any() else 0.0
            values = values.fillna(fill)
            scaling = self._scaling(column)
            if scaling == "standard":
                centre, scale = float(values.mean()), float(values.std(ddof=0)) or 1.0
            elif scaling == "minmax":
                centre, scale = float(values.min()), float(values.max() - values.min()) or 1.0
            else:
                centre, scale = 0.0, 1.0
            self.numeric_stats_[column] = (fill, centre, scale)
        self.categories_: dict[str, _Categorical] = {}
        for column, options in self.categorical.items():
            counts = frame[column].astype("string").value_counts(dropna=True)
            minimum = options.get("min_frequency", 0.0) * len(frame)
            counts = counts[counts >= minimum].head(options.get("max_categories", 50))
            self.categories_[column] = _Categorical(options["encoding"], list(counts.index))
        self.feature_names_out_ = self._names()
        return self

    def _numeric_columns(self) -> list[str]:
        return list(dict.fromkeys([*self.numeric, *self.derived]))

    def _scaling(self, column: str) -> str:
        return self.numeric.get(column, "none")

    def _with_derived(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self.derived:
            return frame
        frame = frame.copy()
        for name, text in self.derived.items():
            frame[name] = expressions.evaluate(text, frame)
        return frame

    def _names(self) -> list[str]:
        names = list(self._numeric_columns())
        for column, parts in self.date_parts.items():
            names += [f"{column}_{part}" for part in parts]
        for column, cat in self.categories_.items():
            if cat.encoding == "onehot":
                names += [f"{column}={value}" for value in cat.categories]
            else:
                names.append(column)
        return names

    # -- applying --------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = self._with_derived(frame)
        out: dict[str, np.ndarray] = {}
        for column, (fill, centre, scale) in self.numeric_stats_.items():
            numbers = pd.to_numeric(frame[column], errors="coerce")
            values = numbers.to_numpy("float64", na_value=fill)
            out[column] = ((values - centre) / scale).astype("float32")
        for column, parts in self.date_parts.items():
            times = pd.to_datetime(frame[column], utc=True)
            for part in parts:
                value = times.dt.dayofweek >= 5 if part == "is_weekend" else getattr(times.dt, part)
                out[f"{column}_{part}"] = value.to_numpy("float32", na_value=-1)
        for column, cat in self.categories_.items():
            values = frame[column].astype("string")
            if cat.encoding == "onehot":
                for value in cat.categories:
                    out[f"{column}={value}"] = (values == value).to_numpy("float32", na_value=0)
            else:
                codes = pd.Categorical(values, categories=cat.categories).codes  # unknown -> -1
                out[column] = codes.astype("float32")
        return pd.DataFrame(out, index=frame.index, columns=self.feature_names_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def input_columns(self) -> list[str]:
        """Raw columns a scoring request must carry."""
        used: set[str] = set(self.numeric) - set(self.derived)
        for text in self.derived.values():
            used |= expressions.columns(text)
        used |= set(self.date_parts) | set(self.categorical)
        return sorted(used)
