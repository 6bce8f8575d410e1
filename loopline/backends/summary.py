"""The run summary every backend reports: the `loopline run --json` contract."""

from __future__ import annotations

from typing import Any

from loopline.runtime.executor import StepOutcome


def run_summary(run_id: str, outcomes: dict[str, StepOutcome]) -> dict[str, Any]:
    failed = any(o.status == "failed" for o in outcomes.values())
    steps = {name: {"status": o.status, "duration_s": o.duration_s, "outputs": o.outputs,
                    "metrics": o.metrics, **({"error": o.error} if o.error else {}),
                    **({"note": o.note} if o.note else {})}
             for name, o in outcomes.items()}
    gate = next((o.facts["gate"] for o in outcomes.values() if "gate" in o.facts), None)
    model = next((o.facts["model"] for o in outcomes.values() if "model" in o.facts), None)
    return {"run_id": run_id, "status": "failed" if failed else "succeeded", "steps": steps,
            "gate": gate, "model": model}
