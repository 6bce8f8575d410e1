"""What a request must carry: the model's raw inputs minus what the feature store supplies.

Read from the model's own fitted transform (numeric, categorical, date columns, the columns
its derived expressions read) and its card's Feast recipe, so the schema cannot disagree with
what the model was trained on. Validation names every bad field at once, as the spec checks
do; a request is never half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NUMBER, TEXT, TIME = "number", "string", "timestamp"


@dataclass(frozen=True)
class FieldError:
    field: str
    problem: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass(frozen=True)
class InputSchema:
    """`fields`: request field -> kind; `keys`: entity keys (required, never null);
    `features`: what the online store supplies (a request may not carry them)."""

    fields: dict[str, str]
    keys: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    nullable: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        return {"fields": [{"name": name, "type": kind, "required": True,
                            "nullable": name in self.nullable,
                            "entity_key": name in self.keys}
                           for name, kind in self.fields.items()],
                "features_from_store": list(self.features)}

    def check(self, row: Any, where: str) -> tuple[dict[str, Any], list[FieldError]]:
        """The row with timestamps parsed, or every problem with it."""
        if not isinstance(row, Mapping):
            return {}, [FieldError(where, f"expected an object of fields, got "
                                          f"{type(row).__name__}")]
        errors: list[FieldError] = []
        clean: dict[str, Any] = {}
        for name, kind in self.fields.items():
            if name not in row:
                errors.append(FieldError(f"{where}.{name}", f"required ({kind})"))
                continue
            value, problem = _coerce(row[name], kind, name in self.nullable)
            if problem:
                errors.append(FieldError(f"{where}.{name}", problem))
            else:
                clean[name] = value
        for name in row:
            if name in self.fields:
                continue
            problem = ("comes from the feature store, not the request" if name in self.features
                       else "unknown field" + _suggest(str(name), self.fields))
            errors.append(FieldError(f"{where}.{name}", problem))
        return clean, errors


def _coerce(value: Any, kind: str, nullable: bool) -> tuple[Any, str | None]:
    if value is None:
        return (None, None) if nullable else (None, f"must not be null ({kind})")
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {_shown(value)}"
        return value, None
    if kind == TEXT:
        if not isinstance(value, str) or not value:
            return None, f"expected a non-empty string, got {_shown(value)}"
        return value, None
    if not isinstance(value, str):
        return None, f"expected an ISO 8601 time such as 2013-07-01T14:00:00Z, got " \
                     f"{_shown(value)}"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"{_shown(value)} is not an ISO 8601 time (2013-07-01T14:00:00Z)"
    if moment.tzinfo is None:
        return None, f"{_shown(value)} has no time zone; add Z or +00:00"
    return moment, None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _suggest(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def schema_for(model: Any, info: Mapping[str, Any], feast: Mapping[str, Any],
               keys: Iterable[str] = ()) -> InputSchema:
    """The schema of a loaded model: its transform's columns minus the Feast features."""
    features = tuple(feast.get("features") or ())
    transform = fitted_transform(model)
    kinds: dict[str, str] = {}
    if transform is not None:
        from loopline.ml import expressions

        derived = set(getattr(transform, "derived", {}))
        for text in getattr(transform, "derived", {}).values():
            kinds.update({c: NUMBER for c in expressions.columns(text)})
        kinds.update({c: NUMBER for c in getattr(transform, "numeric", {}) if c not in derived})
        kinds.update({c: TIME for c in getattr(transform, "date_parts", {})})
        kinds.update({c: TEXT for c in getattr(transform, "categorical", {})})
    else:  # a model without Loopline's transform: its card's raw inputs, taken as numbers
        kinds.update({c: NUMBER for c in info.get("inputs") or []})
    keys = tuple(keys)
    fields = {name: kinds.get(name, TEXT) for name in sorted(set(kinds) - set(features))}
    fields.update({key: fields.get(key, TEXT) for key in keys})
    nullable = frozenset(n for n, k in fields.items() if k == NUMBER and n not in keys)
    return InputSchema(fields, keys, features, nullable)


def fitted_transform(model: Any) -> Any:
    """The fitted FeatureTransform inside a sklearn Pipeline or a torch bundle, or None."""
    steps = getattr(model, "named_steps", None)
    if steps is not None and "features" in steps:
        return steps["features"]
    transform = getattr(model, "transform", None)
    return transform if hasattr(transform, "numeric_stats_") else None
