"""The `rollout:` block: how a challenger that passed its offline gate reaches all traffic.

Spec objects only (immutable, no I/O). `runtime.rollout` is the controller that walks the
steps; `ml.rollout` decides at each look; the server routes by the state it writes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loopline.spec.durations import Duration, duration_seconds

OUTCOMES = ("auto", "brier", "accuracy", "abs_error", "squared_error")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricGate(_Frozen):
    """The model's quality on labelled predictions, challenger vs champion, by an always-valid
    sequential test (mSPRT): the controller looks at every step, and a fixed-sample test read
    that often calls a difference between identical models far more often than `alpha`."""

    outcome: str = Field(
        "auto", pattern="^(" + "|".join(OUTCOMES) + ")$",
        description="What is compared per labelled prediction. auto: brier (squared error of "
                    "the probability, lower is better) for classifiers, abs_error for "
                    "regressors; accuracy: correct at 0.5.")
    alpha: float = Field(0.05, gt=0, lt=0.5,
                         description="Chance of any wrong 'better'/'worse' call over all looks.")
    tau: float = Field(0.02, gt=0, description="The size of difference the test is most "
                                               "sensitive to, in the outcome's units.")
    min_labels: int = Field(200, ge=10, description="Labelled predictions per version before "
                                                    "the test may decide.")
    required: bool = Field(
        True, description="Promotion waits until both versions have `min_labels` (the "
                          "quality was looked at, not assumed); still short at max_duration: "
                          "the rollout holds for a person.")


class RolloutGates(_Frozen):
    """Checked at every look; any breach rolls the challenger back at once."""

    error_rate: float | None = Field(
        0.05, ge=0, le=1, description="The challenger's share of 5xx answers above this.")
    error_rate_over_champion: float | None = Field(
        0.02, ge=0, le=1, description="...or above the champion's share plus this.")
    p95_ratio: float | None = Field(
        2.0, gt=1, description="The challenger's p95 latency above this multiple of the "
                               "champion's.")
    p99_ratio: float | None = Field(2.0, gt=1, description="The same for p99.")
    p99_ms: float | None = Field(None, gt=0, description="An absolute p99 ceiling (ms).")
    metric: MetricGate | None = Field(
        default_factory=MetricGate,
        description="Worse by the sequential test: rolled back. null: no metric gate.")


class RolloutSpec(_Frozen):
    """A challenger with the registry's `canary` alias walks `steps`, gated at each.

    canary: each step sends that share of requests (sticky by `sticky_by`) to the challenger;
    at the last step (100) it is promoted. shadow: the champion answers every request, the
    step's share is also sent to the challenger after the answer, logged, never returned.
    ab: the split is held until the metric test says which is better (or `max_duration`
    ends it with the champion kept)."""

    mode: Literal["canary", "shadow", "ab"] = Field("canary", description="canary | shadow | ab")
    steps: list[int] = Field(
        default_factory=lambda: [5, 25, 50, 100], min_length=1, max_length=20,
        description="Share of traffic (%) on the challenger at each step, increasing; "
                    "canary ends at 100.")
    min_requests: int = Field(
        200, ge=1, description="The challenger's requests at a step before any decision.")
    min_duration: Duration = Field("1m", description="A step lasts at least this long.")
    max_duration: Duration = Field(
        "1h", description="A step that has not decided by then: rolled back when it saw too "
                          "little traffic to judge; ab ends with the champion kept; a last "
                          "step still waiting for labels holds for a person.")
    every: Duration = Field("10s", description="How often the controller looks.")
    sticky_by: str | list[str] = Field(
        "request", description="What keeps a caller on one version: request (the "
                               "`x-routing-key` header, else each request on its own), entity "
                               "(the model's entity keys: right when they are many, such as "
                               "users; wrong for a few airports), or a list of input fields.")
    promote: Literal["auto", "manual"] = Field(
        "auto", description="manual: hold at the last step until `loopline rollout promote`.")
    gates: RolloutGates = Field(default_factory=RolloutGates)

    @model_validator(mode="after")
    def _steps(self) -> RolloutSpec:
        if any(not 1 <= share <= 100 for share in self.steps):
            raise ValueError("steps: every share is a percentage from 1 to 100")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps: {self.steps} must increase")
        if self.mode == "canary" and self.steps[-1] != 100:
            raise ValueError("steps: a canary ends at 100 (all traffic) before it is promoted")
        if self.mode == "canary" and len(self.steps) < 2:
            raise ValueError("steps: a canary needs a step below 100, where the champion "
                             "still answers, to be compared with it (or use mode: shadow)")
        if self.mode == "ab" and self.gates.metric is None:
            raise ValueError("mode ab decides on the metric: gates.metric cannot be null")
        if isinstance(self.sticky_by, str) and self.sticky_by not in ("request", "entity"):
            raise ValueError("sticky_by: request, entity, or a list of input fields")
        if duration_seconds(self.max_duration) < duration_seconds(self.min_duration):
            raise ValueError("max_duration is shorter than min_duration")
        return self

    @property
    def min_duration_s(self) -> float:
        return duration_seconds(self.min_duration)

    @property
    def max_duration_s(self) -> float:
        return duration_seconds(self.max_duration)

    @property
    def every_s(self) -> float:
        return duration_seconds(self.every)
