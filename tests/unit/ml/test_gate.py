"""Gate arithmetic: absolute bounds, drops and ratios against the champion."""

from __future__ import annotations

from loopline.ml.gate import GateCheck, evaluate_checks
from loopline.ml.metrics import HIGHER_IS_BETTER


def _checks(metrics, champion, *checks):  # type: ignore[no-untyped-def]
    return evaluate_checks(list(checks), metrics, champion, "no champion yet", HIGHER_IS_BETTER)


def test_absolute_bounds() -> None:
    result = _checks({"roc_auc": 0.70}, None, GateCheck(metric="roc_auc", min=0.72, max=0.99))
    assert [(r["check"], r["passed"]) for r in result] == [("min", False), ("max", True)]
    assert result[0]["value"] == 0.70 and result[0]["threshold"] == 0.72


def test_relative_checks_pass_without_champion_and_say_so() -> None:
    result = _checks({"roc_auc": 0.5}, None, GateCheck(metric="roc_auc", max_drop_vs_champion=0))
    assert result[0]["passed"] is True
    assert "no champion yet" in result[0]["detail"]


def test_drop_direction_follows_the_metric() -> None:
    higher = _checks({"roc_auc": 0.70}, {"roc_auc": 0.72},
                     GateCheck(metric="roc_auc", max_drop_vs_champion=0.01))[0]
    assert higher["passed"] is False and higher["value"] == pytest_approx(0.02)
    lower = _checks({"log_loss": 0.50}, {"log_loss": 0.48},
                    GateCheck(metric="log_loss", max_drop_vs_champion=0.01))[0]
    assert lower["passed"] is False and lower["value"] == pytest_approx(0.02)
    better = _checks({"log_loss": 0.40}, {"log_loss": 0.48},
                     GateCheck(metric="log_loss", max_drop_vs_champion=0.0))[0]
    assert better["passed"] is True and "better by" in better["detail"]


def test_ratio_vs_champion() -> None:
    slow = _checks({"latency_p95_single_ms": 12.0}, {"latency_p95_single_ms": 10.0},
                   GateCheck(metric="latency_p95_single_ms", max_ratio_vs_champion=1.1))[0]
    assert slow["passed"] is False and slow["value"] == pytest_approx(1.2)


def test_missing_metric_fails() -> None:
    result = _checks({}, None, GateCheck(metric="rmse", max=1.0))
    assert result[0]["passed"] is False and "not computed" in result[0]["detail"]


def pytest_approx(value: float):  # type: ignore[no-untyped-def]
    import pytest

    return pytest.approx(value, abs=1e-12)


def test_an_equal_champion_reads_equal_not_better_by_minus_zero() -> None:
    checks = [GateCheck(metric="roc_auc", max_drop_vs_champion=0.01)]
    result = evaluate_checks(checks, {"roc_auc": 0.75}, {"roc_auc": 0.75}, "", HIGHER_IS_BETTER)
    assert result[0]["passed"] and result[0]["detail"].endswith(": equal"), result[0]["detail"]
