"""Features are learned on train only and applied identically to any later rows."""

from __future__ import annotations

import pandas as pd
import pytest

from loopline.builtin.features_transform import FeatureParams, build_transform

TRAIN = pd.DataFrame({
    "x": [1.0, 2.0, 3.0, None], "carrier": ["AA", "AA", "UA", "DL"],
    "dest": ["BOS", "LAX", "BOS", "SFO"], "t": pd.to_datetime(
        ["2013-01-05 10:00", "2013-01-06 11:00", "2013-01-07 12:00", "2013-01-08 13:00"], utc=True),
    "dep": [515, 1230, 2359, 600], "y": [0, 1, 0, 1],
})


def _transform():  # type: ignore[no-untyped-def]
    params = FeatureParams(label="y", numeric={"x": "standard"},
                           categorical={"carrier": "onehot", "dest": "ordinal"},
                           date_parts={"t": ["dayofweek", "hour", "is_weekend"]},
                           derived={"dep_hour": "dep // 100"})
    return build_transform(params).fit(TRAIN)


def test_statistics_come_from_train_only() -> None:
    transform = _transform()
    out = transform.transform(TRAIN)
    # x: median fill of the missing value (2.0), then standardised with train mean/std.
    filled = pd.Series([1.0, 2.0, 3.0, 2.0])
    expected = (filled - filled.mean()) / filled.std(ddof=0)
    assert out["x"].tolist() == pytest.approx(expected.tolist(), rel=1e-6)
    later = TRAIN.assign(x=[100.0, 100.0, 100.0, 100.0])
    assert transform.transform(later)["x"].iloc[0] == pytest.approx(
        (100 - filled.mean()) / filled.std(ddof=0), rel=1e-6)


def test_unknown_categories_are_handled() -> None:
    transform = _transform()
    unseen = TRAIN.assign(carrier=["ZZ"] * 4, dest=["XXX"] * 4)
    out = transform.transform(unseen)
    onehot = [c for c in out.columns if c.startswith("carrier=")]
    assert sorted(onehot) == ["carrier=AA", "carrier=DL", "carrier=UA"]
    assert (out[onehot].to_numpy() == 0).all()
    assert (out["dest"] == -1).all()


def test_date_parts_derived_and_label_kept_out() -> None:
    transform = _transform()
    out = transform.transform(TRAIN)
    assert out["t_dayofweek"].tolist() == [5, 6, 0, 1]
    assert out["t_is_weekend"].tolist() == [1, 1, 0, 0]
    assert out["dep_hour"].tolist() == [5, 12, 23, 6]
    assert "y" not in out.columns
    assert transform.input_columns() == ["carrier", "dep", "dest", "t", "x"]


def test_round_trips_through_pickle() -> None:
    import pickle

    transform = _transform()
    again = pickle.loads(pickle.dumps(transform))
    pd.testing.assert_frame_equal(transform.transform(TRAIN), again.transform(TRAIN))
