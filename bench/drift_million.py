"""Drift check of 1,000,000 rows x 20 numeric columns: Evidently's DataDriftPreset against
drift.evidently's path (statistics once per column, HTML report from a sample), with PSI on
both sides, in one process, and the numbers compared. `python bench/drift_million.py`
(`EVIDENTLY_RUNS=0` skips Evidently's minutes-long run)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loopline.integrations import evidently_report as drift_report
from loopline.ml.drift_decision import DriftRules, compare

ROWS, COLUMNS = 1_000_000, 20
REPORT_ROWS = 20_000


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current, 1M rows each; every fourth column shifted in current."""
    rng = np.random.default_rng(seed)
    names = [f"x{i:02d}" for i in range(COLUMNS)]
    reference = pd.DataFrame(rng.normal(size=(ROWS, COLUMNS)), columns=names)
    shift = np.array([0.3 if i % 4 == 0 else 0.0 for i in range(COLUMNS)])
    current = pd.DataFrame(rng.normal(size=(ROWS, COLUMNS)) + shift, columns=names)
    return reference, current


def ours(reference: pd.DataFrame, current: pd.DataFrame, report: Path | None) -> tuple[
        float, dict[str, float]]:
    started = time.perf_counter()
    columns = list(reference.columns)
    verdict = compare(reference, current, columns, DriftRules())
    if report is not None:
        drift_report.render(reference, current, columns, [],
                            {c.column: c.method for c in verdict.columns},
                            {c.column: c.threshold for c in verdict.columns}, report,
                            REPORT_ROWS)
    return time.perf_counter() - started, {c.column: c.score for c in verdict.columns}


def evidently(reference: pd.DataFrame, current: pd.DataFrame, report: Path) -> tuple[
        float, dict[str, float]]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    snapshot = Report([DataDriftPreset(method="psi")], include_tests=True).run(
        current_data=current, reference_data=reference)
    snapshot.save_html(str(report))
    seconds = time.perf_counter() - started
    scores = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"]
              if m["config"]["type"].endswith("ValueDrift")}
    return seconds, scores


def main() -> None:
    runs = int(os.environ.get("EVIDENTLY_RUNS", "1"))
    reference, current = frames()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours(reference.head(1000), current.head(1000), folder / "warm.html")  # imports
        stats_only = [ours(reference, current, None)[0] for _ in range(3)]
        with_report = []
        for _ in range(3):
            seconds, our_scores = ours(reference, current, folder / "ours.html")
            with_report.append(seconds)
        print(f"## Drift check, {ROWS:,} rows x {COLUMNS} numeric columns (PSI), "
              f"{os.cpu_count()} CPUs")
        print(f"ours, statistics only:            median {statistics.median(stats_only):.2f}s "
              f"(n={len(stats_only)})")
        print(f"ours, + Evidently HTML ({REPORT_ROWS:,}-row sample): median "
              f"{statistics.median(with_report):.2f}s (n={len(with_report)})")
        if runs:
            theirs = [evidently(reference, current, folder / "evidently.html")
                      for _ in range(runs)]
            seconds = [t[0] for t in theirs]
            their_scores = theirs[-1][1]
            worst = max(abs(our_scores[c] - their_scores[c]) for c in our_scores)
            print(f"Evidently DataDriftPreset + HTML: median {statistics.median(seconds):.2f}s "
                  f"(n={runs})")
            print(f"speed-up:                         "
                  f"{statistics.median(seconds) / statistics.median(with_report):.1f}x")
            print(f"largest |score difference|:       {worst:.2e} over {len(our_scores)} columns")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
