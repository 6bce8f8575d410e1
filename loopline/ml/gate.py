"""Gate checks: absolute bounds, bounds relative to the champion, and data quality.

Kept free of ML imports so the verdict logic is plain, testable arithmetic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HIGHER_IS_BETTER_DEFAULT = True
# The checks made against the champion (the others are absolute bounds and data quality).
RELATIVE_CHECKS = ("max_drop_vs_champion", "max_ratio_vs_champion")


class GateCheck(BaseModel):
    # No docstring: it would become the JSON Schema's description of every gate entry.
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    min: float | None = None
    max: float | None = None
    max_drop_vs_champion: float | None = Field(
        None, ge=0, description="Worst allowed worsening vs the champion, in metric units.")
    max_ratio_vs_champion: float | None = Field(
        None, gt=0, description="Challenger / champion must stay at or below this.")


def worsening(before: float, after: float, higher_is_better: bool) -> float:
    """How much worse `after` is than `before` (negative: better), in metric units."""
    return (before - after) if higher_is_better else (after - before)


def evaluate_checks(checks: list[GateCheck], metrics: dict[str, float],
                    champion: dict[str, float] | None, champion_note: str,
                    higher_is_better: dict[str, bool],
                    compared: dict[str, float] | None = None,
                    refused: str | None = None) -> list[dict[str, Any]]:
    """Every check with its value, threshold, pass/fail and a sentence saying why.

    `compared`: the challenger's metrics on the rows both models were scored on, when that is
    not the whole eval set (rows the champion was trained on are left out). `refused`: why a
    relative check cannot be made honestly (it then fails, saying so, instead of passing)."""
    results: list[dict[str, Any]] = []
    for check in checks:
        value = metrics.get(check.metric)
        if value is None:
            results.append(_result(check.metric, "present", None, None, False,
                                   f"metric {check.metric!r} was not computed"))
            continue
        if check.min is not None:
            ok = value >= check.min
            results.append(_result(check.metric, "min", value, check.min, ok,
                                   f"{check.metric} {value:.4g} {'>=' if ok else '<'}"
                                   f" min {check.min:.4g}"))
        if check.max is not None:
            ok = value <= check.max
            results.append(_result(check.metric, "max", value, check.max, ok,
                                   f"{check.metric} {value:.4g} {'<=' if ok else '>'}"
                                   f" max {check.max:.4g}"))
        relative = [(k, t) for k, t in (("max_drop_vs_champion", check.max_drop_vs_champion),
                                        ("max_ratio_vs_champion", check.max_ratio_vs_champion))
                    if t is not None]
        for kind, threshold in relative:
            base = (champion or {}).get(check.metric)
            if base is None and refused:
                results.append(_result(check.metric, kind, None, threshold, False,
                                       f"refused: {refused}", challenger=value))
                continue
            if base is None:
                results.append(_result(check.metric, kind, None, threshold, True,
                                       f"passes: {champion_note}", challenger=value))
                continue
            mine = (compared or {}).get(check.metric, value)  # on the rows both saw
            if kind == "max_drop_vs_champion":
                drop = worsening(base, mine, higher_is_better.get(
                    check.metric, HIGHER_IS_BETTER_DEFAULT))
                results.append(_result(
                    check.metric, kind, drop, threshold, drop <= threshold,
                    f"{check.metric} {mine:.4g} vs champion {base:.4g}: "
                    + (f"worse by {drop:.4g} ({'within' if drop <= threshold else 'over'} "
                       f"{threshold:.4g})" if drop > 0 else
                       f"better by {-drop:.4g}" if drop < 0 else "equal"),
                    challenger=mine, champion=base))
            else:
                ratio = mine / base if base else float("inf")
                results.append(_result(
                    check.metric, kind, ratio, threshold, ratio <= threshold,
                    f"{check.metric} {mine:.4g} vs champion {base:.4g}: ratio {ratio:.3f}"
                    f" ({'within' if ratio <= threshold else 'over'} {threshold:.3g})",
                    challenger=mine, champion=base))
    return results


def _result(metric: str, kind: str, value: float | None, threshold: float | None, passed: bool,
            detail: str, **extra: float) -> dict[str, Any]:
    return {"metric": metric, "check": kind, "value": value, "threshold": threshold,
            "passed": bool(passed), "detail": detail, **extra}
