"""`ingest.table` on a year column: the split works, filters see the years as stored, and a
wrong time_format is a located spec error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.support import run_cli, run_json

SPEC = """\
name: years
steps:
  ingest:
    component: ingest.table
    params:
      source: data/wine.csv
      time_column: vintage
      {extra}
      filter: vintage >= 1990
      split: {{by: time, eval_from: {eval_from}}}
"""


def _project(tmp_path: Path, eval_from: str = "2003", extra: str = "") -> Path:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "data").mkdir()
    years = list(range(1985, 2006)) * 3
    pd.DataFrame({"vintage": years, "score": range(len(years))}).to_csv(
        tmp_path / "data" / "wine.csv", index=False)
    spec = tmp_path / "pipelines" / "years.yaml"
    spec.write_text(SPEC.format(eval_from=eval_from, extra=extra))
    return spec


def test_integer_years_split_and_filter_as_written(tmp_path: Path) -> None:
    summary = run_json(_project(tmp_path, eval_from="2003"))  # a YAML int, as people write it
    assert summary["status"] == "succeeded", summary
    metrics = summary["steps"]["ingest"]["metrics"]
    # 1990..2005 kept by the filter on the raw years; 2003..2005 evaluate.
    assert (metrics["rows_train"], metrics["rows_eval"]) == (13 * 3, 3 * 3)
    train = pd.read_parquet(tmp_path / "artifacts/years/ingest/train.parquet")
    assert train["vintage"].min() == pd.Timestamp("1990-01-01", tz="UTC")


def test_a_bad_time_format_or_boundary_is_a_located_spec_error(tmp_path: Path) -> None:
    spec = _project(tmp_path, eval_from='"2003-13-01"', extra="time_format: weekly")
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2
    lines = err.strip().splitlines()
    assert any(":8: steps.ingest.params.time_format: 'weekly' is not one of" in line
               for line in lines), err
    assert any(":10: steps.ingest.params.split.eval_from: '2003-13-01' is not a date" in line
               for line in lines), err
