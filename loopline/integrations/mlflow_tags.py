"""Every MLflow tag key Loopline writes, in one place (no MLflow import: plain strings)."""

from __future__ import annotations

PREFIX = "loopline."

# Runs: the pipeline run and its nested step runs.
RUN_ID = "loopline.run_id"
LEVEL = "loopline.level"  # "pipeline" | "step"
STEP = "loopline.step"
SPEC_HASH = "loopline.spec_hash"
PIPELINE = "loopline.pipeline"
ORCHESTRATOR = "loopline.orchestrator"
HOST = "loopline.host"  # the process holding a run open: lets a later run close it when
PID = "loopline.pid"    # that process was killed

# Model versions: what `registry.promote` records (see model_card.ModelCard).
VERDICT = "loopline.verdict"
GATE = "loopline.gate"
METRICS = "loopline.metrics"
PRIMARY_METRIC = "loopline.primary_metric"
JUDGED_ON = "loopline.judged_on"  # eval rows and time window the gate judged the version on
VALIDATION = "loopline.validation"
ESTIMATOR = "loopline.estimator"
MODEL_INFO = "loopline.model_info"
FEAST = "loopline.feast"
REFERENCE = "loopline.reference"
# Written last, once the registered copy loaded back and reproduced the trained model: only a
# verified version may become champion (a crash before it leaves an "incomplete" version).
VERIFIED = "loopline.verified"

# Registered models: one tag per alias move or retrain trigger, newest last.
EVENT_PREFIX = "loopline.event."

# MLflow caps a tag value at 5000 characters; JSON values are cut below that.
MAX_VALUE = 4900


def lineage(key: str) -> str:
    """`git_commit` -> `loopline.git_commit`: lineage facts keep their own names."""
    return PREFIX + key
