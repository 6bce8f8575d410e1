"""The gate never scores the champion on rows it was trained on (issue: a champion retrained
on a moved window was judged in-sample, and a sound challenger was refused).

Real flights, real registry: v1 is trained on January to mid-February; the next runs judge on
all of February. Half of it is in v1's training rows, so only the other half may compare them —
and when too few unseen rows remain, the relative checks are refused, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.support import copy_example, run_cli, run_json

pytestmark = pytest.mark.slow
MODEL = "flights-late-arrival"


def _verdict(project: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((project / "artifacts/flights/evaluate/verdict.json").read_text())


def test_rows_the_champion_trained_on_never_judge_it(tmp_path: Path) -> None:
    flights_project = copy_example(tmp_path / "p", data__last_month=2,
                                   data__eval_from="2013-02-01", train__max_iter=30,
                                   gate__min_roc_auc=0.55)
    spec = flights_project / "pipelines" / "flights.yaml"
    # v1, the champion, is trained on January 1 - February 14 (judged on the rest of February).
    first = run_json(spec, "--set", "data.eval_from=2013-02-15")
    assert first["model"] == {"name": MODEL, "version": "1",
                              "aliases": ["challenger", "champion"]}

    # v2: too few unseen rows for this spec's minimum: refused, never a silent pass or fail.
    text = spec.read_text()
    spec.write_text(text.replace("      primary_metric: roc_auc\n",
                                 "      primary_metric: roc_auc\n"
                                 "      min_compare_rows: 1000000\n"))
    refused = run_json(spec)  # the window moved back: every step reruns
    drop = next(c for c in refused["gate"]["checks"] if c["check"] == "max_drop_vs_champion")
    assert not drop["passed"] and drop["detail"].startswith("refused: ")
    assert "in champion v1's training data and were left out" in drop["detail"]
    assert "min_compare_rows 1000000" in drop["detail"]
    assert refused["gate"]["passed"] is False and "champion" not in refused["model"]["aliases"]

    # v3, with the default minimum: compared on the second half of February only.
    spec.write_text(text)
    run_json(spec)  # only evaluate (its params changed) and what follows it rerun
    verdict = _verdict(flights_project)
    compared_on = verdict["champion"]["compared_on"]
    eval_rows = pd.read_parquet(flights_project / "artifacts/flights/feast/eval.parquet")
    unseen = eval_rows["time_hour"] >= pd.Timestamp("2013-02-15", tz="UTC")
    assert compared_on["checked"] is True
    assert compared_on["rows"] == int(unseen.sum())  # exactly the rows v1 never saw
    assert compared_on["excluded"] == int((~unseen).sum()) > 0
    # Both sides of the comparison are measured on those rows (not the challenger on all).
    from loopline.integrations.mlflow_registry import load_model

    champion = load_model(f"sqlite:///{flights_project / 'mlflow.db'}", f"models:/{MODEL}/1")
    rows = eval_rows[unseen]
    scores = champion.predict_proba(rows.drop(columns=["late"]))[:, 1]
    expected = roc_auc_score(rows["late"], scores)
    assert verdict["champion"]["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert verdict["champion"]["challenger_metrics"]["roc_auc"] != verdict["metrics"]["roc_auc"]
    drop = next(c for c in verdict["checks"] if c["check"] == "max_drop_vs_champion")
    assert drop["challenger"] == verdict["champion"]["challenger_metrics"]["roc_auc"]

    # Each version says what it was judged on.
    code, out, err = run_cli("models", "list", MODEL, "--json", "--tracking-uri",
                             f"sqlite:///{flights_project / 'mlflow.db'}")
    assert code == 0, err
    judged = {row["version"]: row["judged_on"] for row in json.loads(out)["versions"]}
    # time_hour is UTC: late February evening flights from New York fall on March 1st.
    assert judged["1"] == f"2013-02-15..2013-03-01 ({int(unseen.sum()):,} rows)"
    assert judged["3"] == f"2013-02-01..2013-03-01 ({len(eval_rows):,} rows)"
