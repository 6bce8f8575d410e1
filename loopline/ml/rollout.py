"""One look at a rollout: the two versions' figures from the prediction log, the gates, and
what to do (wait, advance, promote, roll back). Pure data in, a decision out.

The challenger's error rate and latency are judged on the current step's requests (a
version that starts failing at 50 % is caught at 50 %), against the champion's of the same
step (or of the whole rollout at 100 %, where it answers nothing new). The metric compares the
two step by step, so that a change in the traffic over the rollout is not read as a change of
model, with the always-valid test of `ml.sequential`, carrying its p-value from look to look,
so reading it at every look does not inflate wrong calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from loopline.ml import sequential
from loopline.ml.live_checks import LABEL, LATENCY_MS, MODEL_VERSION, PREDICTION, ROUTE, TIME
from loopline.ml.live_checks import status_codes as _status
from loopline.ml.routes import SHADOW
from loopline.spec.rollout import MetricGate, RolloutSpec

WAIT, ADVANCE, PROMOTE, ROLLBACK, HOLD = "wait", "advance", "promote", "rollback", "hold"

LOWER_IS_BETTER = {"brier": True, "abs_error": True, "squared_error": True, "accuracy": False}


@dataclass(frozen=True)
class ArmFigures:
    """One version's traffic in a window: what the gates and the picture read."""

    version: str
    requests: int
    errors: int
    p95_ms: float | None
    p99_ms: float | None
    labelled: int = 0
    outcome: float | None = None  # mean per-prediction outcome (brier, accuracy ...)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), 6)

        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": r(self.error_rate), "p95_ms": r(self.p95_ms),
                "p99_ms": r(self.p99_ms), "labelled": self.labelled, "outcome": r(self.outcome)}


@dataclass(frozen=True)
class Decision:
    action: str  # wait | advance | promote | rollback | hold
    reason: str
    champion: ArmFigures
    challenger: ArmFigures  # the current step's requests
    gates: list[dict[str, Any]] = field(default_factory=list)  # each: gate, value, limit, breached
    metric: dict[str, Any] | None = None  # the sequential comparison, p_value carried on

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason,
                "champion": self.champion.to_json(), "challenger": self.challenger.to_json(),
                "gates": self.gates, "metric": self.metric}


def outcome_kind(gate: MetricGate, task: str) -> str:
    if gate.outcome != "auto":
        return gate.outcome
    return "abs_error" if task == "regression" else "brier"


def outcomes(frame: pd.DataFrame, kind: str, positive: Any = True) -> np.ndarray:
    """Per labelled, answered prediction: its error (brier, abs_error, squared_error) or
    whether it was right (accuracy)."""
    if LABEL not in frame.columns or frame.empty:
        return np.empty(0)
    rows = frame[(_status(frame) == 200) & frame[LABEL].notna() & frame[PREDICTION].notna()]
    score = rows[PREDICTION].to_numpy(dtype="float64")
    label = rows[LABEL]
    if kind in ("brier", "accuracy"):
        truth = (label == positive) if label.dtype == object else label.astype(bool)
        y = truth.to_numpy(dtype="float64")
        return (score - y) ** 2 if kind == "brier" else ((score >= 0.5) == (y == 1)).astype(float)
    y = label.to_numpy(dtype="float64")
    return np.abs(score - y) if kind == "abs_error" else (score - y) ** 2


def figures(frame: pd.DataFrame, version: str, values: np.ndarray | None = None) -> ArmFigures:
    """`frame` holds one version's rows already (see `rows_of`)."""
    status = _status(frame)
    ok = frame[status == 200][LATENCY_MS].to_numpy(dtype="float64")
    p95, p99 = (float(np.percentile(ok, q)) for q in (95, 99)) if len(ok) else (None, None)
    labelled = 0 if values is None else len(values)
    return ArmFigures(version, len(frame), int((status >= 500).sum()), p95, p99, labelled,
                      float(values.mean()) if labelled else None)


def rows_of(frame: pd.DataFrame, version: str, answered: bool = False) -> pd.DataFrame:
    """`version`'s rows, by version rather than route: a KServe revision pinned to the canary
    logs its answers under `champion`. `answered`: leave its shadow rows out (the champion's
    own answers)."""
    if frame.empty:
        return frame
    mine = frame[MODEL_VERSION].astype(str) == str(version)
    if answered:
        mine &= frame[ROUTE] != SHADOW
    return frame[mine]


def decide(policy: RolloutSpec, *, champion: pd.DataFrame, challenger: pd.DataFrame,
           step_starts: list[pd.Timestamp], champion_version: str, challenger_version: str,
           step_age_s: float, task: str = "classification", positive: Any = True,
           previous_p: float = 1.0) -> Decision:
    """What to do now. `champion` and `challenger` are each version's rows since the rollout
    began (labels joined); `step_starts` when each step so far began (the last: this one).
    The gates read the challenger's rows of this step against the champion's of this step
    (or since the rollout began, when this step holds too few: at 100 % it answers none);
    the metric compares the two step by step (`sequential.compare_strata`)."""
    step = len(step_starts) - 1
    gate = policy.gates.metric
    kind = outcome_kind(gate, task) if gate else ""
    champ_steps = _by_step(champion, step_starts)
    chall_steps = _by_step(challenger, step_starts)
    champ_now = champ_steps[-1] if len(champ_steps[-1]) >= policy.min_requests else champion
    champ = figures(champ_now, champion_version)
    now = figures(chall_steps[-1], challenger_version)
    metric = None
    if gate is not None:
        strata = [(outcomes(a, kind, positive), outcomes(b, kind, positive))
                  for a, b in zip(champ_steps, chall_steps, strict=True)]
        metric = _metric(gate, kind, strata, previous_p)
        champ = _with_outcomes(champ, [a for a, _ in strata])
        now = _with_outcomes(now, [b for _, b in strata])
    gates = _gates(policy, champ, now)

    def decision(action: str, reason: str) -> Decision:
        return Decision(action, reason, champ, now, gates, metric)

    if breached := [g for g in gates if g["breached"]]:
        return decision(ROLLBACK, "; ".join(g["detail"] for g in breached))
    if metric and metric["verdict"] == "worse":
        return decision(ROLLBACK, f"{kind} worse than the champion's: {metric['reason']}")
    last = step == len(policy.steps) - 1
    share = policy.steps[step]
    if now.requests < policy.min_requests or step_age_s < policy.min_duration_s:
        if step_age_s >= policy.max_duration_s:
            return decision(ROLLBACK, f"{now.requests} requests in {step_age_s:.0f}s at "
                            f"{share}% (max_duration): too little traffic to judge; "
                            "champion kept")
        return decision(WAIT, f"{now.requests}/{policy.min_requests} requests, "
                        f"{step_age_s:.0f}/{policy.min_duration_s:.0f}s at {share}%")
    if policy.mode == "ab" and last:
        verdict = metric["verdict"] if metric else "undecided"
        if verdict == "better":
            return decision(PROMOTE if policy.promote == "auto" else HOLD,
                            f"{kind} better than the champion's: {metric['reason']}")  # type: ignore[index]
        if step_age_s >= policy.max_duration_s:
            return decision(ROLLBACK, f"no significant difference after {step_age_s:.0f}s "
                            f"(max_duration): champion kept; {metric['reason'] if metric else ''}")
        return decision(WAIT, f"gates hold; the metric has not decided: "
                        f"{metric['reason'] if metric else 'no metric'}")
    if last and gate is not None and gate.required and metric and \
            min(metric["champion_labelled"], metric["challenger_labelled"]) < gate.min_labels:
        short = f"{metric['challenger_labelled']} labelled predictions of the challenger and " \
                f"{metric['champion_labelled']} of the champion (min_labels {gate.min_labels})"
        if step_age_s >= policy.max_duration_s:
            return decision(HOLD, f"gates held, but {short} by max_duration: the metric was "
                            "never judged; promote or abort by hand")
        return decision(WAIT, f"gates held; promotion waits for labels: {short}")
    if last:
        return decision(PROMOTE if policy.promote == "auto" else HOLD,
                        f"gates held at {share}% over {now.requests} requests")
    return decision(ADVANCE, f"gates held at {share}% over {now.requests} requests")


def _with_outcomes(arm: ArmFigures, values: list[np.ndarray]) -> ArmFigures:
    """The arm's labelled count and mean outcome over the whole rollout (for people)."""
    joined = np.concatenate(values) if values else np.empty(0)
    return replace(arm, labelled=len(joined),
                   outcome=float(joined.mean()) if len(joined) else None)


def _by_step(frame: pd.DataFrame, step_starts: list[pd.Timestamp]) -> list[pd.DataFrame]:
    """`frame` cut at each step's start: one frame per step, in order."""
    if frame.empty:
        return [frame] * len(step_starts)
    times = pd.to_datetime(frame[TIME], utc=True)
    bounds = [*step_starts[1:], None]
    return [frame[(times >= start) & (times < end if end is not None else True)]
            for start, end in zip(step_starts, bounds, strict=True)]


def _gates(policy: RolloutSpec, champ: ArmFigures, now: ArmFigures) -> list[dict[str, Any]]:
    """Each gate with a verdict once the challenger has `min_requests` at this step (and the
    champion as many, for the relative ones); too few: listed, not judged."""
    g = policy.gates
    out: list[dict[str, Any]] = []
    judged = now.requests >= policy.min_requests
    vs_champion = judged and champ.requests >= policy.min_requests

    def add(name: str, value: float | None, limit: float | None, can: bool, detail: str) -> None:
        breached = bool(can and value is not None and limit is not None and value > limit)
        out.append({"gate": name, "value": None if value is None else round(value, 6),
                    "limit": None if limit is None else round(limit, 6),
                    "breached": breached if can and value is not None else None,
                    "detail": detail})

    rate, base = now.error_rate, champ.error_rate or 0.0
    if g.error_rate is not None:
        # More errors than the limit allows in `min_requests`: the breach is certain before
        # the sample is full, so a broken canary goes after a handful of requests.
        certain = now.errors > g.error_rate * policy.min_requests
        add("error_rate", rate, g.error_rate, judged or certain,
            f"errors {_pct(rate)} of {now.requests} requests (limit {g.error_rate:.1%})"
            + ("" if judged or not certain else f": {now.errors} errors already exceed "
               f"{g.error_rate:.1%} of min_requests {policy.min_requests}"))
    if g.error_rate_over_champion is not None:
        add("error_rate_vs_champion", None if rate is None else rate - base,
            g.error_rate_over_champion, vs_champion,
            f"errors {_pct(rate)} vs the champion's {base:.1%} (limit +"
            f"{g.error_rate_over_champion:.1%})")
    for name, ratio, mine, theirs in (("p95_ratio", g.p95_ratio, now.p95_ms, champ.p95_ms),
                                      ("p99_ratio", g.p99_ratio, now.p99_ms, champ.p99_ms)):
        if ratio is None:
            continue
        value = mine / theirs if mine is not None and theirs else None
        add(name, value, ratio, vs_champion,
            f"{name[:3]} {_ms(mine)} vs the champion's {_ms(theirs)} (limit {ratio:g}x)")
    if g.p99_ms is not None:
        add("p99_ms", now.p99_ms, g.p99_ms, judged, f"p99 {_ms(now.p99_ms)} (limit "
            f"{g.p99_ms:g} ms)")
    return out


def _metric(gate: MetricGate, kind: str, strata: list[tuple[np.ndarray, np.ndarray]],
            previous_p: float) -> dict[str, Any]:
    compared = sequential.compare_strata(
        [(sequential.Arm.of(a), sequential.Arm.of(b)) for a, b in strata], alpha=gate.alpha,
        tau=gate.tau, higher_is_better=not LOWER_IS_BETTER[kind], min_samples=gate.min_labels,
        previous_p=previous_p)
    return {"outcome": kind, "verdict": compared.verdict,
            "difference": round(compared.difference, 6),
            "p_value": round(compared.p_value, 6), "reason": compared.reason,
            "champion_labelled": sum(len(a) for a, _ in strata),
            "challenger_labelled": sum(len(b) for _, b in strata)}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
