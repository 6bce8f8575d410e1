"""The model card is the one writer and reader of a version's `loopline.*` tags."""

from __future__ import annotations

import json

from loopline.integrations.model_card import ModelCard

VERDICT = {"passed": False, "primary_metric": "roc_auc",
           "metrics": {"roc_auc": 0.712345678, "latency_p95_single_ms": 1.5},
           "checks": [{"metric": "roc_auc", "check": "min", "value": 0.71, "threshold": 0.8,
                       "passed": False, "detail": "roc_auc 0.71 < min 0.8"}]}
INFO = {"task": "classification", "label": "late", "inputs": ["distance"], "classes": [0, 1],
        "flavor": "sklearn", "estimator": "hist_gradient_boosting", "history": [1, 2]}


def test_tags_are_what_promote_always_wrote() -> None:
    card = ModelCard.from_run({"git_commit": "abc", "run_id": "r1"}, VERDICT,
                              {"success": True, "expectations": 5, "failed": []}, INFO,
                              {"service": "flights", "repo": "feature_repo", "coverage": 1.0})
    tags = card.with_reference("runs:/x/reference/train.parquet").to_tags()
    assert tags == {
        "loopline.git_commit": "abc", "loopline.run_id": "r1", "loopline.verdict": "failed",
        "loopline.gate": json.dumps([{"metric": "roc_auc", "check": "min", "value": 0.71,
                                      "threshold": 0.8, "passed": False}]),
        "loopline.metrics": json.dumps({"roc_auc": 0.712346, "latency_p95_single_ms": 1.5}),
        "loopline.primary_metric": "roc_auc=0.7123",
        "loopline.validation": json.dumps({"success": True, "expectations": 5, "failed": 0}),
        "loopline.estimator": "hist_gradient_boosting",
        "loopline.model_info": json.dumps({"task": "classification", "label": "late",
                                           "inputs": ["distance"], "classes": [0, 1],
                                           "flavor": "sklearn"}),
        "loopline.feast": json.dumps({"service": "flights", "repo": "feature_repo"}),
        "loopline.reference": "runs:/x/reference/train.parquet",
    }


def test_read_back_gives_what_scoring_drift_and_models_list_need() -> None:
    card = ModelCard.from_run({"git_commit": "abc"}, VERDICT, None, INFO)
    tags = card.to_tags()
    assert ModelCard.from_tags(tags).verdict == "incomplete"  # not loaded back yet
    back = ModelCard.from_tags({**tags, "loopline.verified": "true", "loopline.event.1": "{}",
                                "other": "x"})
    assert back.passed is False and back.verdict == "failed" and back.verified
    assert back.primary_metric == "roc_auc" and back.primary_value == "roc_auc=0.7123"
    assert back.metrics["roc_auc"] == 0.712346
    assert back.info["inputs"] == ["distance"] and back.feast == {}
    assert back.lineage == {"git_commit": "abc"} and back.reference is None
    assert back.to_tags() == card.to_tags()


def test_a_version_registered_elsewhere_reads_as_unknown() -> None:
    card = ModelCard.from_tags({})
    assert card.verdict == "?" and card.passed is None and card.primary_value == ""


def test_values_are_cut_below_mlflows_limit_and_still_read() -> None:
    info = {**INFO, "inputs": [f"column_{i}" for i in range(2000)]}
    tags = ModelCard.from_run({}, VERDICT, None, info).to_tags()
    assert len(tags["loopline.model_info"]) == 4900
    assert ModelCard.from_tags(tags).info == {}  # cut JSON is not trusted
