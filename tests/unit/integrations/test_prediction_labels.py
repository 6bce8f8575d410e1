"""Labels kept beside the prediction log, on a local folder and on an object store (fsspec's
memory://), and the join that gives each logged prediction its label."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from loopline.integrations import prediction_labels as pl
from loopline.runtime.monitoring import read_state, write_state

LOG = pd.DataFrame({
    "request_id": ["a", "b", "c", "d"],
    "carrier": ["UA", "UA", "DL", "AA"],
    "flight": [1, 1, 7, 3],
    "time_hour": pd.to_datetime(["2013-07-01T08:00Z", "2013-07-02T08:00Z",
                                 "2013-07-01T08:00Z", "2013-07-01T09:00Z"], utc=True),
    "prediction": [0.1, 0.2, 0.3, 0.4],
})


@pytest.mark.parametrize("where", ["local", "memory"])
def test_written_whole_and_read_back_in_order(tmp_path: Path, where: str) -> None:
    root = str(tmp_path) if where == "local" else f"memory://labels-{uuid.uuid4().hex}"
    folder = pl.labels_folder(root, "my-model")
    assert folder == f"{root}/predictions/my-model/labels"
    assert pl.read(folder) == []
    first = pl.write(folder, pd.DataFrame({"request_id": ["a"], "label": [True]}))
    second = pl.write(folder, pd.DataFrame({"request_id": ["a"], "label": [False]}))
    assert first != second and first.startswith(folder)
    frames = pl.read(folder)
    assert [f["label"].tolist() for f in frames] == [[True], [False]]
    if where == "local":
        assert sorted(p.name for p in Path(folder).iterdir()) == sorted(
            [Path(first).name, Path(second).name])  # no staging file left


def test_join_by_request_id_and_by_entity_keys_with_text_times() -> None:
    by_id = pd.DataFrame({"request_id": ["a", "zz"], "label": [True, False]})
    # An arrivals feed: flight numbers as text, the hour as ISO text.
    by_flight = pd.DataFrame({"carrier": ["UA", "DL"], "flight": ["1", "7"],
                              "time_hour": ["2013-07-02T08:00:00Z", "2013-07-01 08:00:00+00:00"],
                              "label": [True, True]})
    joined = pl.join(LOG, [by_id, by_flight])
    assert _labels(joined["label"]) == [True, True, True, None]
    assert joined.index.equals(LOG.index) and list(joined.columns) == [*LOG.columns, "label"]
    assert pl.matched(LOG, by_flight, ["carrier", "flight", "time_hour"]) == 2
    assert pl.matched(LOG, by_id, ["request_id"]) == 1


def test_a_later_file_corrects_and_unknown_keys_are_skipped() -> None:
    earlier = pd.DataFrame({"request_id": ["a", "b"], "label": [True, True]})
    later = pd.DataFrame({"request_id": ["a"], "label": [False]})
    other = pd.DataFrame({"tailnum": ["N1"], "label": [True]})  # the log has no tailnum
    assert _labels(pl.join(LOG, [earlier, later, other])["label"]) == [False, True, None, None]
    # Two labels for one key in one file: the last one.
    twice = pd.DataFrame({"request_id": ["c", "c"], "label": [False, True]})
    assert _labels(pl.match(LOG, twice, ["request_id"])) == [None, None, True, None]


def _labels(column: pd.Series) -> list[object]:
    return [None if pd.isna(v) else bool(v) for v in column]


def test_keys_for() -> None:
    assert pl.keys_for("request_id") == ["request_id"]
    assert pl.keys_for(" carrier, flight ,time_hour") == ["carrier", "flight", "time_hour"]
    with pytest.raises(ValueError, match="names no column"):
        pl.keys_for(" , ")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_live_state_is_written_whole(tmp_path: Path, where: str) -> None:
    root = str(tmp_path) if where == "local" else f"memory://state-{uuid.uuid4().hex}"
    uri = f"{root}/monitoring/my-model/live_state.json"
    assert read_state(uri) == {}
    moment = datetime(2026, 11, 26, tzinfo=UTC)
    write_state(uri, {"checks": {"error_rate": {"state": "breached"}}, "at": moment})
    write_state(uri, {"checks": {"error_rate": {"state": "healthy"}}, "at": moment})
    assert read_state(uri) == {"checks": {"error_rate": {"state": "healthy"}},
                               "at": "2026-11-26 00:00:00+00:00"}
    if where == "local":
        assert [p.name for p in Path(uri).parent.iterdir()] == ["live_state.json"]
