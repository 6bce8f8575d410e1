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
from typing import Any

from loopline.components import model_registry as reg
from loopline.spec.load import LoadedSpec

KIND = "retrain"


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


def _past_triggers(client: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in reg.history(client, name) if e.get("kind") == KIND]


def decide(loaded: LoadedSpec, summary: dict[str, Any], tracking_uri: str,
           registry_uri: str, orchestrator: str, run_ref: str, now: float | None = None,
           ) -> Trigger:
    """Turn a drift summary into a trigger, or say why not; `record` it once acted on."""
    retrain = loaded.spec.retrain
    if retrain is None:
        return Trigger(False, "the spec declares no `retrain:`")
    if summary.get("action") != "retrain":
        why = "; ".join(summary.get("reasons") or summary.get("warnings") or []) or "no drift"
        return Trigger(False, f"action is {summary.get('action', 'none')}: {why}",
                       retrain.pipeline)
    assert loaded.spec.registry is not None  # a drift step needs one to find the champion
    name = loaded.spec.registry.model_name
    client = reg.client(tracking_uri, registry_uri)
    reason = "; ".join(summary.get("reasons", [])) or "drift"
    key = event_key(summary)
    now = time.time() if now is None else now
    for past in reversed(_past_triggers(client, name)):
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


def record(loaded: LoadedSpec, trigger: Trigger, tracking_uri: str, registry_uri: str,
           **facts: Any) -> dict[str, Any]:
    """Write the trigger into the model's history; later drift events see it (cooldown)."""
    assert trigger.retrain and loaded.spec.registry is not None
    client = reg.client(tracking_uri, registry_uri)
    return reg.record_event(client, loaded.spec.registry.model_name, **trigger.event, **facts)


def training_spec(loaded: LoadedSpec) -> Any:
    """The training pipeline the drift spec names, resolved against the project root."""
    assert loaded.spec.retrain is not None
    return loaded.project_root / loaded.spec.retrain.pipeline


def drift_summary(loaded: LoadedSpec) -> dict[str, Any]:
    """The drift step's last committed summary, from the spec's artifact store."""
    from loopline.runtime.store import open_store

    assert loaded.spec.retrain is not None
    step, pipeline = loaded.spec.retrain.step, loaded.spec.name
    store = open_store(loaded.spec.artifacts.root, loaded.project_root)
    manifest = store.read_manifest(pipeline, step) or {}
    entry = manifest.get("outputs", {}).get("summary")
    if entry is None:
        raise FileNotFoundError(f"step {step!r} of {pipeline} has no committed drift summary; "
                                "run the drift step first")
    summary = json.loads(store.local_path(pipeline, step, entry["path"],
                                          entry["hash"]).read_text())
    summary["report"] = store.uri(pipeline, step, manifest["outputs"]["report"]["path"])
    return dict(summary)


def uris(loaded: LoadedSpec) -> tuple[str, str]:
    """(tracking, registry) URIs as the runtime resolves them for this spec."""
    from loopline.runtime.tracking import default_tracking_uri, registry_uri

    tracking = default_tracking_uri(loaded.spec, loaded.project_root)
    return tracking, registry_uri(loaded.spec, tracking)
