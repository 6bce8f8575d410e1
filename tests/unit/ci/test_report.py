"""The report is read by people: the verdict first, every failed check with its numbers, the
champion beside this branch, and nothing that breaks a Markdown table."""

from __future__ import annotations

from pathlib import Path

from loopline.ci.outcome import FAILED, PASSED, CiOutcome, SpecOutcome
from loopline.ci.report import GRID, _resample, render
from loopline.runtime.ci_changes import MISSING, Change, SpecChanges

CHECKS = [
    {"metric": "roc_auc", "check": "min", "value": 0.61, "threshold": 0.65, "passed": False,
     "detail": "roc_auc 0.61 < min 0.65"},
    {"metric": "roc_auc", "check": "max_drop_vs_champion", "value": 0.12, "threshold": 0.01,
     "passed": False, "challenger": 0.61, "champion": 0.73,
     "detail": "roc_auc 0.61 vs champion 0.73: worse by 0.12 (over 0.01)"},
    {"metric": "data_quality", "check": "passed", "value": 1.0, "threshold": 1.0,
     "passed": True, "detail": "data validation passed"},
]


def spec(**extra: object) -> SpecOutcome:
    outcome = SpecOutcome(
        "pipelines/flights.yaml", "flights", model="flights-late-arrival", status=FAILED,
        run={"run_id": "r1", "steps": {}},
        verdict={"passed": False, "checks": CHECKS, "primary_metric": "roc_auc", "rows": 3449,
                 "metrics": {"roc_auc": 0.61, "log_loss": 0.55},
                 "champion": {"version": "4", "metrics": {"roc_auc": 0.73, "log_loss": 0.5},
                              "compared_on": {"rows": 3449}}},
        rows={"rows_in": 336776, "rows_sampled_from": 160678, "rows_train": 16551,
              "rows_eval": 3449}, sample="20,000 rows, seed 0",
        curves={"roc": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 1.0, "tpr": 1.0}]},
        failures=["gate: roc_auc 0.61 < min 0.65"])
    for key, value in extra.items():
        setattr(outcome, key, value)
    return outcome


def outcome(*specs: SpecOutcome, report_only: bool = False) -> CiOutcome:
    for spec_outcome in specs:
        spec_outcome.report_only = report_only
    return CiOutcome("pr", {"short": "abc1234", "branch": "feature", "dirty": False},
                     list(specs), 12.3, base_ref="origin/main")


def test_a_failed_gate_is_the_headline_and_names_its_numbers() -> None:
    text = render(outcome(spec()))
    assert text.startswith("## Loopline CI · pull request: ❌ 1 check failed\n")
    assert "* pipelines/flights.yaml: gate: roc_auc 0.61 < min 0.65" in text
    # The check row: this branch, the champion, the threshold, the verdict.
    assert "| roc_auc vs champion | 0.61 | 0.73 | drop ≤ 0.01 | ❌ roc_auc 0.61 vs champion" \
        in text
    assert "| roc_auc (min) | 0.61 | — | ≥ 0.65 | ❌ roc_auc 0.61 < min 0.65 |" in text
    assert "against champion v4 on the same 3,449 eval rows" in text
    assert "| log_loss | 0.55 | 0.5 | +0.05 worse |" in text  # lower is better for log loss
    assert "sampled 16,551 + 3,449" not in text and "sampled 20,000 of 160,678 rows" in text


def test_report_only_says_so_and_a_pass_is_a_pass() -> None:
    assert "⚠️ 1 check failed (report only: the job does not fail)" in render(
        outcome(spec(), report_only=True))
    passed = spec(status=PASSED, failures=[])
    assert render(outcome(passed)).startswith("## Loopline CI · pull request: ✅ passed")


def test_changes_vs_base_show_each_param_once() -> None:
    changes = SpecChanges(base_ref="origin/main", base_commit="1234567", note="",
                          params=[Change("train.max_iter", 200, 300),
                                  Change("notes", MISSING, "x")],
                          spec=[Change("steps.train.params.params.max_iter", 200, 300),
                                Change("steps.evaluate.params.threshold", 0.5, 0.4)],
                          files=["params.yaml"])
    text = render(outcome(spec(changes=changes)))
    assert "| `train.max_iter` | `200` | `300` |" in text
    assert "steps.train.params.params.max_iter" not in text  # the same change, via the param
    assert "| `steps.evaluate.params.threshold` | `0.5` | `0.4` |" in text
    assert "| `notes` | *(absent)* | `x` |" in text and "`params.yaml`" in text


def test_cells_never_break_the_table() -> None:
    broken = spec(failures=["step train failed: a | b\nsecond line"])
    text = render(outcome(broken))
    assert "a \\| b second line" in text


def test_images_are_linked_in_the_file_and_named_elsewhere(tmp_path: Path) -> None:
    image = tmp_path / "flights" / "evaluation.png"
    with_plot = spec(plots={"evaluation": image})
    assert "](flights/evaluation.png)" in render(outcome(with_plot), images=tmp_path)
    assert "`flights/evaluation.png` in the report folder" in render(outcome(with_plot))


def test_the_roc_chart_samples_the_curve_at_fixed_rates() -> None:
    assert _resample([0.0, 1.0], [0.0, 1.0]) == GRID  # the diagonal stays the diagonal
    steps = _resample([0.0, 0.0, 0.5, 1.0], [0.0, 0.8, 0.9, 1.0])
    assert steps[0] == 0.0 and abs(steps[10] - 0.9) < 1e-9 and steps[-1] == 1.0
    text = render(outcome(spec()))
    assert "```mermaid\nxychart-beta" in text and text.count("    line [") == 1
