"""`drift.evidently` with `current: log`: the current window is what the server answered
(its prediction log, errors left out), compared column for column as scored batches are,
with the labels `loopline feedback` kept joined for the metric check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from loopline.integrations import prediction_labels, prediction_log
from loopline.integrations.mlflow_registry import load_model
from tests.support import registry_client, run_cli
from tests.support.live_monitoring import MODEL, log_folder, sample, trained_project

pytestmark = pytest.mark.slow
FROM_LOG = """\
name: drift_live
registry: {model_name: my-model}
steps:
  drift:
    component: drift.evidently
    params: {current: log, log_window: 1h}
retrain:
  pipeline: pipelines/train.yaml
  step: drift
  cooldown: 1h
"""


def _serve(project: Path, flights: pd.DataFrame, errors: int) -> list[str]:
    """`flights` answered over the last 30 minutes by v1 with its real scores, `errors` more
    requests failed (500), all written as log files an hour partition each."""
    client = registry_client(project)
    model = load_model(client.tracking_uri, f"models:/{MODEL}/1")
    inputs = flights.drop(columns=["arr_delay"])
    scores = model.predict_proba(inputs)[:, 1]
    now = datetime.now(UTC)
    rows, ids = [], []
    for i, (_, flight) in enumerate(inputs.iterrows()):
        moment = now - timedelta(seconds=1800 * (1 - i / len(inputs)))
        ids.append(f"req-{i}")
        rows.append(prediction_log.row(ids[-1], moment, "1", "champion", 200, 5.0,
                                       float(scores[i]), values=flight.to_dict()))
    for i in range(errors):
        rows.append(prediction_log.row(f"err-{i}", now - timedelta(seconds=60), "1", "champion",
                                       500, 1.0, None, error="boom",
                                       values=inputs.iloc[i].to_dict()))
    by_hour: dict[str, list[dict]] = {}
    for row in rows:
        by_hour.setdefault(prediction_log.partition(row["time"]), []).append(row)
    for hour_rows in by_hour.values():
        prediction_log.write_file(log_folder(project), hour_rows)
    return ids


def test_drift_reads_the_prediction_log_with_its_labels(tmp_path: Path) -> None:
    project = trained_project(tmp_path / "project")
    (project / "pipelines" / "drift_live.yaml").write_text(FROM_LOG)
    flights = sample(project).assign(distance=lambda f: f["distance"] * 3)
    ids = _serve(project, flights, errors=50)
    late = (flights["arr_delay"] > 15).to_numpy()
    prediction_labels.write(prediction_labels.labels_folder(str(project / "artifacts"), MODEL),
                            pd.DataFrame({"request_id": ids, "label": late}))

    code, out, err = run_cli("drift", str(project / "pipelines" / "drift_live.yaml"),
                             "--json", "--dry-run")
    assert code == 0, err
    result = json.loads(out)
    assert result["rows"]["current"] == len(flights)  # the 50 failed requests are not data
    (window,) = result["window"]
    assert window.startswith(f"{log_folder(project)} ")
    # The same columns as scored batches: the model's inputs, none of the log's own.
    assert set(result["columns"]) == {"distance", "sched_dep_time", "carrier", "origin"}
    assert result["columns"]["distance"]["drifted"] is True
    performance = result["performance"]
    assert performance["labelled_rows"] == len(flights) and performance["metric"] == "roc_auc"
    assert result["action"] == "retrain" and "major drift in distance" in result["reasons"]
    assert result["trigger"]["retrain"] is True and result["trigger"]["dry_run"] is True

    # Nothing answered in the window: no decision, said so.
    for file in Path(log_folder(project)).glob("date=*/hour=*/*.parquet"):
        file.unlink()
    code, out, err = run_cli("drift", str(project / "pipelines" / "drift_live.yaml"), "--json",
                             "--dry-run")
    assert code == 0, err
    quiet = json.loads(out)
    assert quiet["action"] == "none" and quiet["trigger"]["retrain"] is False
    assert quiet["warnings"][0].startswith("the current window is empty")


def test_a_bad_log_window_is_a_spec_error(tmp_path: Path) -> None:
    from loopline.cli.init import create_project

    project = create_project(tmp_path / "project")
    spec = project / "pipelines" / "drift_live.yaml"
    spec.write_text(FROM_LOG.replace("log_window: 1h", "log_window: soon")
                    .replace("current: log", "current: stream"))
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2
    assert "drift_live.yaml:6: steps.drift.params.current: " in err and "'log'" in err
    assert "drift_live.yaml:6: steps.drift.params.log_window: " in err
    assert "'soon' is not a duration" in err
