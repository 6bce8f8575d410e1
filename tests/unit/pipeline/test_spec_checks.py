"""validate-spec catches what used to fail only at run time (or never): each mistake is one
`FILE:LINE: field: problem` line and exit 2, before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import copy_example, run_cli


def _errors(spec: Path) -> list[str]:
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(str(spec)) or "pipelines/" in line for line in lines), err
    return lines


@pytest.fixture
def flights(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "p") / "pipelines" / "flights.yaml"


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("- {metric: roc_auc, min:", "- {metric: roc_aucc, min:", 93,
     "steps.evaluate.params.gates[0].metric: 'roc_aucc' is not a metric of a classification "
     "model (did you mean roc_auc?)"),
    ("primary_metric: roc_auc", "primary_metric: rmse", 91,
     "steps.evaluate.params.primary_metric: 'rmse' is not a metric of a classification model"),
    ('schedule: "@weekly"', "schedule: every monday", 5,
     "schedule: 'every monday' is not a cron expression: expected 5 fields"),
    ('schedule: "@weekly"', 'schedule: "@fortnightly"', 5, "'@fortnightly' is not a preset"),
    ('schedule: "@weekly"', 'schedule: "0 0 3 * * *"', 5, "expected 5 fields"),
    ('schedule: "@weekly"', 'schedule: "61 * * * *"', 5, "not a valid cron expression"),
    ("resources: {cpu: 2, memory: 4Gi}", "resources: {cpu: " + "1" + "0" * 40 + ", memory: 4Gi}",
     16, "cores is more than any node has"),
    ("retry_delay_s: 5", "retry_delay_s: .inf", 14, "defaults.retry_delay_s: "),
    ("name: flights\n", "name: " + "f" * 300 + "\n", 3, "name: String should have at most 63"),
])
def test_run_time_failures_are_spec_errors(flights: Path, old: str, new: str, line: int,
                                            expected: str) -> None:
    text = flights.read_text()
    assert old in text
    flights.write_text(text.replace(old, new, 1))
    errors = _errors(flights)
    assert any(f"flights.yaml:{line}: " in e and expected in e for e in errors), errors


def test_metrics_follow_the_trainers_task(small_project: Path) -> None:
    spec = small_project / "pipelines" / "train.yaml"
    text = spec.read_text()
    gate = '        - {metric: roc_auc, min: "${gate.min_roc_auc}", max_drop_vs_champion: 0.02}'
    assert gate in text and "      params: {max_iter: 500}" in text
    regression = text.replace("      params: {max_iter: 500}", "      task: regression\n"
                              "      params: {}")
    params = small_project / "params.yaml"
    params.write_text(params.read_text().replace("logistic_regression", "ridge"))
    spec.write_text(regression)  # a regressor gated on ROC AUC: refused
    assert any("'roc_auc' is not a metric of a regression model" in e for e in _errors(spec))
    spec.write_text(regression.replace(gate, "        - {metric: rmse, max: 100}"))
    code, _, err = run_cli("validate-spec", str(spec))
    assert code == 0, err


def test_two_specs_with_one_name_are_refused(flights: Path) -> None:
    twin = flights.with_name("flights_copy.yaml")
    shutil.copy(flights, twin)
    errors = _errors(twin)
    assert any("flights_copy.yaml:3: name: 'flights' is also the name of flights.yaml" in e
               for e in errors), errors
    twin.write_text(twin.read_text().replace("name: flights\n", "name: flights_copy\n"))
    assert run_cli("validate-spec", str(twin))[0] == 0


def test_a_numeric_only_drift_method_for_categories_is_a_spec_error(tmp_path: Path) -> None:
    spec = copy_example(tmp_path / "p") / "pipelines" / "flights_drift.yaml"
    code, _, err = run_cli("validate-spec", str(spec), "--set", "drift.method=ks")
    assert code == 2
    assert "flights_drift.yaml:20: steps.drift.params.rules.categorical_method: ks needs " \
           "numeric columns" in err, err
    assert run_cli("validate-spec", str(spec), "--set", "drift.method=jensenshannon")[0] == 0


def test_a_cpu_device_with_a_required_gpu_is_a_spec_error(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "p")
    spec = root / "pipelines" / "flights_torch.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("gpu: {count: 1, require: false}",
                                 "gpu: {count: 1, require: true}"))
    assert run_cli("validate-spec", str(spec))[0] == 0  # require alone is fine
    spec.write_text(text.replace("gpu: {count: 1, require: false}",
                                 "gpu: {count: 1, require: true}")
                    .replace("      seed: ${train.seed}\n", "      seed: ${train.seed}\n"
                             "      device: cpu\n", 1))
    (line,) = _errors(spec)
    assert line.endswith("steps.train.params.device: device: cpu contradicts "
                         "resources.gpu.require (a CPU run is refused)")
