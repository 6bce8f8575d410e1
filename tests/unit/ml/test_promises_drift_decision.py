"""`decide` with reasons from outside the columns (issue #12 §10): a live metric drop alone
retrains, naming itself; a warning-level reason alone only alerts; "none" adds nothing."""

from __future__ import annotations

from loopline.ml.drift_decision import DriftRules, decide
from loopline.ml.drift_stats import ColumnDrift

QUIET = [ColumnDrift("distance", "psi", 0.01, 0.1, False, 0.25),
         ColumnDrift("carrier", "psi", 0.02, 0.1, False, 0.25)]
DROP = "roc_auc 0.340 vs 0.640 at evaluation"


def test_a_metric_drop_alone_retrains_with_its_reason() -> None:
    verdict = decide(QUIET, DriftRules(), {DROP: "retrain"})
    assert (verdict.action, verdict.reasons, verdict.share_drifted) == ("retrain", [DROP], 0.0)


def test_without_the_drop_quiet_columns_decide_nothing() -> None:
    verdict = decide(QUIET, DriftRules(), {"prediction drift (PSI 0.001)": "none"})
    assert (verdict.action, verdict.reasons) == ("none", [])


def test_a_warning_reason_alone_alerts() -> None:
    verdict = decide(QUIET, DriftRules(), {"prediction drift (PSI 0.150)": "warn"})
    assert (verdict.action, verdict.reasons) == ("alert", ["prediction drift (PSI 0.150)"])


def test_column_reasons_come_first_then_the_metric() -> None:
    drifted = [ColumnDrift("distance", "psi", 0.4, 0.1, True, 0.25), QUIET[1]]
    verdict = decide(drifted, DriftRules(), {DROP: "retrain"})
    assert verdict.action == "retrain"
    assert verdict.reasons == ["major drift in distance", "50% of columns drifted (retrain at "
                               "50%)", DROP]
