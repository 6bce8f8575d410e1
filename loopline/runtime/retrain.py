"""One drift event, one retraining: the trigger decision every backend shares.

A drift summary that says `retrain` becomes a trigger unless the same event (champion
version + current window) already triggered, or another trigger for the model happened within
the spec's cooldown. Triggers are recorded in the registry's history (`loopline models list`),
which every orchestrator's workers can reach, so the rule holds across backends.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.integrations import mlflow_registry as reg
from loopline.runtime import alerting
from loopline.runtime.tracking import resolve_uris
from loopline.spec.load import LoadedSpec

KIND = "retrain"
# A retraining that ran here and failed: its drift event may start retraining again.
FAILED_KIND = "retrain_failed"


@dataclass(frozen=True)
class Trigger:
    retrain: bool
    reason: str
    pipeline: str | None = None
    suppressed: str | None = None
    event: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "reason": self.reason, "pipeline": self.pipeline,
                "suppressed": self.suppressed}


def event_key(summary: dict[str, Any]) -> str:
    """Same champion, same window of scored batches: the same drift event."""
    material = {"champion": summary.get("champion"), "window": summary.get("window")}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _client(loaded: LoadedSpec) -> tuple[Any, str]:
    """A client on the spec's registry, and the model name (a drift spec needs both)."""
    assert loaded.spec.registry is not None
    return reg.client(*resolve_uris(loaded.spec, loaded.project_root)), \
        loaded.spec.registry.model_name


def decide(loaded: LoadedSpec, summary: dict[str, Any], orchestrator: str, run_ref: str,
           now: float | None = None) -> Trigger:
    """Turn a drift summary into a trigger, or say why not; `record` it once acted on."""
    retrain = loaded.spec.retrain
    assert retrain is not None  # backends act only for specs with a `retrain:` block
    if summary.get("action") != "retrain":
        why = "; ".join(summary.get("reasons") or summary.get("warnings") or []) or "no drift"
        return Trigger(False, f"action is {summary.get('action', 'none')}: {why}",
                       retrain.pipeline)
    client, name = _client(loaded)
    reason = "; ".join(summary.get("reasons", [])) or "drift"
    key = event_key(summary)
    now = time.time() if now is None else now
    events = reg.history(client, name)
    failed = {e.get("key") for e in events if e.get("kind") == FAILED_KIND}
    past_triggers = [e for e in events if e.get("kind") == KIND and e.get("key") not in failed]
    for past in reversed(past_triggers):
        if past.get("key") == key:
            return Trigger(False, reason, retrain.pipeline,
                           f"this drift event already started retraining at {past['time']}")
        age = now - float(past.get("epoch", 0))
        if age < retrain.cooldown_s:
            return Trigger(False, reason, retrain.pipeline,
                           f"cooldown: retraining was triggered at {past['time']} "
                           f"({age / 60:.0f} min ago, cooldown {retrain.cooldown})")
    event = {"kind": KIND, "key": key, "reason": reason, "pipeline": retrain.pipeline,
             "drift_pipeline": loaded.spec.name, "orchestrator": orchestrator,
             "run": run_ref, "epoch": now,
             "champion": (summary.get("champion") or {}).get("version")}
    return Trigger(True, reason, retrain.pipeline, event=event)


def record(loaded: LoadedSpec, trigger: Trigger, **facts: Any) -> dict[str, Any]:
    """Write the trigger into the model's history; later drift events see it (cooldown).
    Every backend records here, so this is where `retrain.started` is raised."""
    assert trigger.retrain
    client, name = _client(loaded)
    recorded = reg.record_event(client, name, **trigger.event, **facts)
    alerting.emit(loaded, alerting.retrain_started(loaded, {**trigger.event, **facts}))
    return recorded


def record_failure(loaded: LoadedSpec, trigger: Trigger, run_id: str, error: str) -> None:
    """The retraining this trigger started failed: neither its event nor its cooldown should
    stop the next drift run from trying again."""
    client, name = _client(loaded)
    reg.record_event(client, name, kind=FAILED_KIND, key=trigger.event.get("key"),
                     pipeline=trigger.pipeline, run=run_id, reason=error)


def training_spec(loaded: LoadedSpec) -> Path:
    """The training pipeline the drift spec names, resolved against the project root."""
    assert loaded.spec.retrain is not None
    return loaded.project_root / loaded.spec.retrain.pipeline


def drift_summary(loaded: LoadedSpec) -> dict[str, Any]:
    """The drift step's last committed summary, from the spec's artifact store."""
    from loopline.runtime.store import open_store

    assert loaded.spec.retrain is not None
    step, pipeline = loaded.spec.retrain.step, loaded.spec.name
    store = open_store(loaded.spec.artifacts.root, loaded.project_root)
    path = store.output(pipeline, step, "summary")
    if path is None:
        raise FileNotFoundError(f"step {step!r} of {pipeline} has no committed drift summary; "
                                "run the drift step first")
    summary = json.loads(path.read_text())
    manifest = store.read_manifest(pipeline, step) or {}
    summary["report"] = store.uri(pipeline, step, manifest["outputs"]["report"]["path"])
    return dict(summary)


def drift_specs_retraining(loaded: LoadedSpec) -> list[LoadedSpec]:
    """The specs beside `loaded` (in its folder) whose `retrain.pipeline` names it: where its
    drift summaries come from, and the trigger its live checks share with drift."""
    from loopline.spec.errors import SpecError
    from loopline.spec.load import load_spec

    found = []
    mine = loaded.path.resolve()
    for path in sorted(loaded.path.parent.glob("*.y*ml")):
        if path.resolve() == mine:
            continue
        try:
            other = load_spec(path)
        except (SpecError, OSError, ValueError):
            continue
        rule = other.spec.retrain
        if rule is not None and other.resolve_path(rule.pipeline).resolve() == mine:
            found.append(other)
    return found
