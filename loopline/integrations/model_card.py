"""What a registered model version says about itself: lineage, gate verdict, validation, the
model's inputs, its Feast join and its training rows — written as version tags by
`registry.promote`, read back by scoring, drift, the gate and `loopline models`.

One type, `to_tags` and `from_tags`, so the writer and the readers cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loopline.integrations import mlflow_tags as tag

# What scoring and drift need to know about the model without loading it.
INFO_KEYS = ("task", "label", "inputs", "classes", "flavor")
FEAST_KEYS = ("service", "repo", "timestamp_column", "assume_utc", "features")
CHECK_KEYS = ("metric", "check", "value", "threshold", "passed")


@dataclass(frozen=True)
class ModelCard:
    lineage: Mapping[str, str] = field(default_factory=dict)
    passed: bool | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    metrics: Mapping[str, float] = field(default_factory=dict)
    primary_metric: str | None = None
    validation: Mapping[str, Any] | None = None
    estimator: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    feast: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None  # runs:/… URI of the training rows
    primary_text: str = ""  # as recorded, when read back from tags
    verified: bool = False  # read back only: `registry.promote` sets it last (mark_verified)
    judged_on: Mapping[str, Any] = field(default_factory=dict)  # rows, time window

    @classmethod
    def from_run(cls, lineage: Mapping[str, str], verdict: Mapping[str, Any],
                 validation: Mapping[str, Any] | None, info: Mapping[str, Any],
                 feast: Mapping[str, Any] | None = None) -> ModelCard:
        """From the step inputs of `registry.promote` (verdict.json, model.json, …)."""
        return cls(lineage=dict(lineage), passed=bool(verdict["passed"]),
                   checks=[{k: c[k] for k in CHECK_KEYS} for c in verdict["checks"]],
                   metrics=dict(verdict["metrics"]),
                   primary_metric=verdict.get("primary_metric"),
                   judged_on=dict(verdict.get("judged_on") or {}),
                   validation=None if validation is None else {
                       "success": validation["success"],
                       "expectations": validation.get("expectations"),
                       "failed": len(validation["failed"])},
                   estimator=str(info.get("estimator")),
                   info={k: info.get(k) for k in INFO_KEYS},
                   feast={k: v for k, v in (feast or {}).items() if k in FEAST_KEYS})

    def with_reference(self, uri: str) -> ModelCard:
        return replace(self, reference=uri)

    @property
    def verdict(self) -> str:
        """`passed`/`failed`; `incomplete` when registration stopped before the load-back
        check; `?` for a version registered outside Loopline."""
        if self.passed is None:
            return "?"
        if not self.verified:
            return "incomplete"
        return "passed" if self.passed else "failed"

    @property
    def primary_value(self) -> str:
        """`roc_auc=0.7123`, as `loopline models list` shows it; "" when unknown."""
        if self.primary_text:
            return self.primary_text
        if self.primary_metric and self.primary_metric in self.metrics:
            return f"{self.primary_metric}={self.metrics[self.primary_metric]:.4f}"
        return ""

    @property
    def judged_on_text(self) -> str:
        """`2013-03-01..2013-03-31 (28,293 rows)`, or the row count alone; "" when unknown."""
        if not self.judged_on:
            return ""
        rows = f"{self.judged_on.get('rows', 0):,} rows"
        if "from" in self.judged_on:
            return f"{self.judged_on['from'][:10]}..{self.judged_on['to'][:10]} ({rows})"
        return rows

    def to_tags(self) -> dict[str, str]:
        tags = {tag.lineage(k): str(v) for k, v in self.lineage.items()}
        if self.passed is not None:
            tags[tag.VERDICT] = "passed" if self.passed else "failed"
            tags[tag.GATE] = _json(self.checks, default=str)
            tags[tag.METRICS] = _json({k: round(v, 6) for k, v in self.metrics.items()})
        if self.primary_value:
            tags[tag.PRIMARY_METRIC] = self.primary_value
        if self.judged_on:
            tags[tag.JUDGED_ON] = _json(dict(self.judged_on))
        if self.validation is not None:
            tags[tag.VALIDATION] = json.dumps(dict(self.validation))
        if self.estimator is not None:
            tags[tag.ESTIMATOR] = self.estimator
        if self.info:
            tags[tag.MODEL_INFO] = _json(dict(self.info))
        if self.feast:
            tags[tag.FEAST] = _json(dict(self.feast))
        if self.reference:
            tags[tag.REFERENCE] = self.reference
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ModelCard:
        verdict = tags.get(tag.VERDICT)
        primary_text = tags.get(tag.PRIMARY_METRIC, "")
        known = {tag.VERDICT, tag.GATE, tag.METRICS, tag.PRIMARY_METRIC, tag.JUDGED_ON,
                 tag.VALIDATION,
                 tag.ESTIMATOR, tag.MODEL_INFO, tag.FEAST, tag.REFERENCE, tag.VERIFIED}
        return cls(
            lineage={k.removeprefix(tag.PREFIX): v for k, v in tags.items()
                     if k.startswith(tag.PREFIX) and k not in known
                     and not k.startswith(tag.EVENT_PREFIX)},
            passed=None if verdict is None else verdict == "passed",
            checks=_parse(tags.get(tag.GATE), []), metrics=_parse(tags.get(tag.METRICS), {}),
            primary_metric=primary_text.split("=", 1)[0] or None, primary_text=primary_text,
            validation=_parse(tags.get(tag.VALIDATION), None),
            estimator=tags.get(tag.ESTIMATOR), info=_parse(tags.get(tag.MODEL_INFO), {}),
            feast=_parse(tags.get(tag.FEAST), {}), reference=tags.get(tag.REFERENCE) or None,
            verified=tags.get(tag.VERIFIED) == "true",
            judged_on=_parse(tags.get(tag.JUDGED_ON), {}))


def _json(value: Any, **options: Any) -> str:
    return json.dumps(value, **options)[:tag.MAX_VALUE]


def _parse(value: str | None, empty: Any) -> Any:
    if not value:
        return empty
    try:
        return json.loads(value)
    except ValueError:  # cut at MAX_VALUE: no longer JSON
        return empty
