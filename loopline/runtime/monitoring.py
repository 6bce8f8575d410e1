"""One evaluation of the live checks over the prediction log (`loopline monitor`, and
`loopline serve` every `serve.monitoring.every`).

Reads the log's latest window, joins the labels `loopline feedback` kept, runs the checks
(`ml.live_checks`) and applies the hold rule to the state kept between evaluations:

    <artifacts root>/monitoring/<model>/live_state.json

A check that flips (breached after `hold` bad evaluations in a row, healthy after `hold` good
ones) is recorded in the model's registry history (kind `monitor`, so `loopline models list`
shows it) and sent through the spec's `alerts:`. While a check named in `retrain_on` is
breached, the breach goes through the same trigger as drift (`runtime.retrain.decide`): one
breach episode starts at most one retraining, and the cooldown is shared with drift jobs.

One evaluator per model: two processes evaluating the same model would each count towards
`hold` (`if_due` makes the server's workers skip an evaluation another one just made).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.integrations import prediction_labels, prediction_log
from loopline.integrations.filesystems import filesystem, is_object_store, write_text_whole
from loopline.runtime import retrain
from loopline.runtime.environment import applied, step_environment
from loopline.spec.load import LoadedSpec
from loopline.spec.paths import location

if TYPE_CHECKING:
    import pandas as pd

    from loopline.integrations.model_versions import ModelVersion
    from loopline.ml import live_checks
    from loopline.spec.serving import MonitoringSpec, ServeSpec

STATE_FOLDER = "monitoring"
STATE_FILE = "live_state.json"
EVENT_KIND = "monitor"  # in the registry history
# Which alert severity a breach of each check raises.
SEVERITY = {"error_rate": "critical", "latency": "warning", "feature_missing": "warning",
            "metric": "warning"}

# What acts on a retraining trigger: records it (retrain.record) and starts the training
# pipeline, or says why it did not; returns facts for the result.
Starter = Callable[[LoadedSpec, retrain.Trigger], dict[str, Any]]


class MonitoringError(ValueError):
    """A spec that cannot be monitored; the message says why and what to do."""


def artifacts_root(loaded: LoadedSpec) -> str:
    return location(loaded.spec.artifacts.root, loaded.project_root)


def model_name(loaded: LoadedSpec) -> str:
    if loaded.spec.registry is None:
        raise MonitoringError(f"{loaded.display} has no registry.model_name: no served model "
                              "to monitor")
    return loaded.spec.registry.model_name


def serve_spec(loaded: LoadedSpec) -> ServeSpec:
    if loaded.spec.serve is None:
        raise MonitoringError(f"{loaded.display} has no `serve:` block: nothing is served "
                              "from it, so there is no prediction log to check")
    return loaded.spec.serve


def state_folder(loaded: LoadedSpec) -> str:
    """Where a served model's live state lives (the live checks', the rollout's)."""
    return f"{artifacts_root(loaded).rstrip('/')}/{STATE_FOLDER}/{model_name(loaded)}"


def state_uri(loaded: LoadedSpec) -> str:
    return f"{state_folder(loaded)}/{STATE_FILE}"


def read_state(uri: str) -> dict[str, Any]:
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return {}
    with fs.open(path, "r") as handle:
        return dict(json.loads(handle.read()))


def write_state(uri: str, state: dict[str, Any]) -> None:
    """Whole or not at all: a reader (the dashboard, the next evaluation) never sees half."""
    write_text_whole(uri, json.dumps(state, indent=2, default=str))


def evaluate(loaded: LoadedSpec, now: datetime | None = None, *,
             window_s: float | None = None, start: Starter | None = None,
             if_due: bool = False) -> dict[str, Any]:
    """Evaluate every enabled check once; returns a JSON-able result (per check value,
    threshold, breached and state; transitions; the retraining decision).

    `window_s` overrides `serve.monitoring.window`; `start` acts on a retraining trigger
    (default: `start_in_background`); `if_due` skips the evaluation when the last one is
    more recent than `serve.monitoring.every`."""
    serve = serve_spec(loaded)
    name = model_name(loaded)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with applied(step_environment(loaded)):  # the registry's URIs, the artifact store's keys
        return _evaluate(loaded, serve, name, now, window_s, start, if_due)


def _evaluate(loaded: LoadedSpec, serve: ServeSpec, name: str, now: datetime,
              window_s: float | None, start: Starter | None, if_due: bool) -> dict[str, Any]:
    from loopline.integrations.model_versions import NoChampion, resolve
    from loopline.ml import live_checks
    from loopline.runtime.tracking import resolve_uris

    spec = serve.monitoring
    uri = state_uri(loaded)
    state = read_state(uri)
    if if_due and (last := state.get("evaluated_at")) and \
            now - datetime.fromisoformat(last) < timedelta(seconds=0.9 * spec.every_s):
        return {"model": name, "skipped": f"evaluated at {last}, less than {spec.every} ago"}
    window_s = window_s or spec.window_s
    result: dict[str, Any] = {"model": name, "alias": serve.model, "version": None,
                              "evaluated_at": now.isoformat(), "hold": spec.hold,
                              "checks": {}, "transitions": [], "retrain": None}
    tracking, registry = resolve_uris(loaded.spec, loaded.project_root)
    try:
        served = resolve(tracking, registry, name, serve.model)
    except NoChampion as exc:
        result["note"] = f"{exc}; nothing checked"
        return result
    result["version"] = served.version
    root = artifacts_root(loaded)
    folder = prediction_log.log_folder(root, name)
    labels = prediction_labels.read(prediction_labels.labels_folder(root, name))
    window = prediction_labels.join(_answered_by_champion(
        prediction_log.recent(folder, window_s, now)), labels)
    labelled = _labelled(folder, labels, spec.metric_window_s, window, window_s, now) \
        if spec.metric_max_drop is not None else window.iloc[0:0]
    baseline = _baseline(spec, state, served, folder, registry, tracking, now)
    checks = _checks(spec, window, labelled, served, baseline)
    previous = state.get("checks") or {}
    held, transitions = live_checks.apply_hold(
        {c: previous.get(c, {}) for c in checks}, {c: r.breached for c, r in checks.items()},
        spec.hold, now.isoformat())
    for check, outcome in checks.items():
        result["checks"][check] = {**outcome.to_json(), **held[check]}
    result["window"] = {"since": (now - timedelta(seconds=window_s)).isoformat(),
                        "until": now.isoformat(), "seconds": window_s,
                        "requests": len(window), "log": folder,
                        "labelled": int(window[prediction_labels.LABEL].notna().sum())}
    if spec.metric_max_drop is not None:
        result["metric_window"] = {
            "since": (now - timedelta(seconds=spec.metric_window_s)).isoformat(),
            "seconds": spec.metric_window_s, "requests": len(labelled),
            "labelled": int(labelled[prediction_labels.LABEL].notna().sum())}
    result["baseline"] = baseline
    for transition in transitions:
        result["transitions"].append(_announce(loaded, name, served, transition,
                                               result["checks"][transition["check"]], tracking,
                                               registry))
    _still_breached(loaded, name, served, result["checks"], {t["check"] for t in transitions})
    result["retrain"] = _retrain(loaded, spec, served, result, now, start)
    write_state(uri, {
        "model": name, "version": served.version, "evaluated_at": now.isoformat(),
        "window_s": window_s, "hold": spec.hold, "checks": result["checks"],
        "baselines": state.get("baselines", {}) | (
            {served.version: baseline} if baseline.get("measured") else {}),
        "last_transitions": result["transitions"] or state.get("last_transitions", [])})
    return result


def _answered_by_champion(frame: pd.DataFrame) -> pd.DataFrame:
    """The champion's own answers: a rollout's canary and shadow rows are the rollout
    controller's to judge (a failing shadow must not page anyone about the champion)."""
    from loopline.ml.routes import CANARY, SHADOW

    if frame.empty or prediction_log.ROUTE not in frame.columns:
        return frame
    return frame[~frame[prediction_log.ROUTE].isin((CANARY, SHADOW))]


def _labelled(folder: str, labels: list[pd.DataFrame], metric_window_s: float,
              window: pd.DataFrame, window_s: float, now: datetime) -> pd.DataFrame:
    """The predictions the metric judges, labels joined: the last `metric_window` of the
    log (labels come late, so usually longer than `window`), read with only the columns the
    metric and the labels' keys need."""
    import pandas as pd

    since = now - timedelta(seconds=metric_window_s)
    if metric_window_s <= window_s:
        return window[pd.to_datetime(window[prediction_log.TIME], utc=True) >= since]
    if not labels:  # nothing to judge with: no need to read a day of log
        return window.iloc[0:0]
    logged = _log_columns(folder, since, now)
    wanted = [prediction_log.TIME, prediction_log.MODEL_VERSION, prediction_log.STATUS,
              prediction_log.PREDICTION, *(c for f in labels for c in f.columns)]
    columns = [c for c in dict.fromkeys(wanted) if c in logged]
    return prediction_labels.join(prediction_log.read(folder, since, now, columns), labels)


def _log_columns(folder: str, since: datetime, until: datetime) -> list[str]:
    """The columns of the newest log file in the range (every file has the log's own)."""
    import pyarrow.parquet as pq

    found = prediction_log.files(folder, since, until)
    if not found:
        return list(prediction_log.LOG_COLUMNS)
    fs, path = filesystem(found[-1])
    with fs.open(path, "rb") as handle:
        return list(pq.read_schema(handle).names)


def _baseline(spec: MonitoringSpec, state: dict[str, Any], served: ModelVersion, folder: str,
              registry: str, tracking: str, now: datetime) -> dict[str, Any]:
    """The p99 the latency check compares with: the spec's figure, else the served
    version's own p99 over its first window of traffic (measured once, then kept)."""
    from loopline.integrations import mlflow_registry as reg
    from loopline.ml import live_checks

    if spec.p99_baseline_ms is not None:
        return {"p99_ms": spec.p99_baseline_ms, "source": "serve.monitoring.p99_baseline_ms"}
    kept = (state.get("baselines") or {}).get(served.version)
    if kept:
        return dict(kept)
    # The version cannot have served before it was registered: read from there on.
    created = reg.client(tracking, registry).get_model_version(
        served.name, served.version).creation_timestamp
    since = datetime.fromtimestamp(created / 1000, UTC) - timedelta(minutes=1)
    frame = prediction_log.read(folder, since, now, columns=[
        prediction_log.TIME, prediction_log.MODEL_VERSION, prediction_log.STATUS,
        prediction_log.LATENCY_MS])
    found = live_checks.latency_baseline(frame, served.version, spec.window_s,
                                         spec.min_requests, now)
    if found is None:
        return {"p99_ms": None, "source": f"v{served.version}'s first {spec.window} of "
                                          "traffic is not over yet"}
    source = f"v{served.version}'s first {spec.window} of traffic ({found['requests']} " \
             f"requests from {found['first_seen']})"
    if found["p99_ms"] is None:
        source += f": fewer than min_requests {spec.min_requests}, so no baseline; set " \
                  "serve.monitoring.p99_baseline_ms"
    return {**found, "source": source, "measured": True}


def _checks(spec: MonitoringSpec, window: pd.DataFrame, labelled: pd.DataFrame,
            served: ModelVersion, baseline: dict[str, Any]) -> dict[str, live_checks.CheckResult]:
    from loopline.ml import live_checks as lc
    from loopline.ml.metrics import HIGHER_IS_BETTER

    checks: dict[str, Any] = {}
    if spec.error_rate is not None:
        checks["error_rate"] = lc.error_rate(window, spec.error_rate, spec.min_requests)
    if spec.p99_ratio is not None:
        checks["latency"] = lc.latency(window, served.version, spec.p99_ratio,
                                       baseline.get("p99_ms"), spec.min_requests)
    if spec.feature_missing is not None:
        checks["feature_missing"] = lc.feature_missing(window, spec.feature_missing,
                                                       spec.min_requests, _features(served,
                                                                                    window))
    if spec.metric_max_drop is not None:
        metric = served.primary_metric
        if not metric or metric not in served.eval_metrics:
            checks["metric"] = lc.CheckResult(
                "metric", None, None, None, f"v{served.version}'s model card has no "
                "evaluation of a primary metric: no verdict")
        else:
            checks["metric"] = lc.metric(
                labelled, served.version, served.info.get("task") or "classification", metric,
                served.eval_metrics[metric], spec.metric_max_drop, spec.min_labels,
                served.info.get("classes"), HIGHER_IS_BETTER.get(metric, True))
    return checks


def _features(served: ModelVersion, window: pd.DataFrame) -> list[str] | None:
    """The model's inputs and Feast features that the log holds (a raw field the model
    never reads may be null without harm); None: every column the log holds."""
    named = [*(served.info.get("inputs") or []), *(served.feast.get("features") or [])]
    present = [c for c in dict.fromkeys(named) if c in window.columns]
    return present or None


def _announce(loaded: LoadedSpec, name: str, served: ModelVersion,
              transition: dict[str, Any], check: dict[str, Any], tracking: str,
              registry: str) -> dict[str, Any]:
    """A flip: one history event in the registry and one alert (a resolve on recovery)."""
    from loopline.integrations import mlflow_registry as reg

    breached = transition["to"] == "breached"
    what = f"{transition['check']} {transition['to']} after {transition['after']} " \
           f"evaluations: {check['detail']}"
    facts = {"check": transition["check"], "state": transition["to"],
             "version": served.version, "value": check.get("value"),
             "threshold": check.get("threshold")}
    reg.record_event(reg.client(tracking, registry), name, kind=EVENT_KIND, reason=what,
                     **facts)
    alerts = _alert(loaded, "monitor.breached" if breached else "monitor.recovered", name,
                    SEVERITY[transition["check"]] if breached else "info",
                    f"{name} v{served.version}: {what}", {**facts, "detail": check["detail"]},
                    key=transition["check"])
    return {**transition, "version": served.version, "value": check.get("value"),
            "threshold": check.get("threshold"), "detail": check["detail"], "alerts": alerts}


def _still_breached(loaded: LoadedSpec, name: str, served: ModelVersion,
                    checks: dict[str, dict[str, Any]], flipped: set[str]) -> None:
    """Raise a breach again at every evaluation it lasts: the open incident holds the repeat
    back, unless its first delivery failed (a receiver down): then this one is the retry."""
    if loaded.spec.alerts is None:
        return
    from loopline.integrations.alerts import event
    from loopline.runtime.alerting import deliveries

    for check, outcome in checks.items():
        if outcome.get("state") != "breached" or check in flipped:
            continue
        summary = f"{name} v{served.version}: {check} breached: {outcome.get('detail')}"
        for delivery in deliveries(loaded, event("monitor.breached", name, summary,
                                                 {"check": check, "value": outcome.get("value"),
                                                  "threshold": outcome.get("threshold")},
                                                 key=check, severity=SEVERITY[check])):
            if delivery.status == "sent":  # quiet while suppressed: once a minute is noise
                print(f"alert: {delivery}", file=sys.stderr, flush=True)


def _alert(loaded: LoadedSpec, kind: str, model: str, severity: str, summary: str,
           details: dict[str, Any], key: str) -> list[str]:
    """Through the spec's `alerts:` routes (a no-op without them); a recovery resolves the
    breach of the same check (`integrations.alerts`)."""
    from loopline.integrations.alerts import event
    from loopline.runtime.alerting import emit

    return emit(loaded, event(kind, model, summary, details, key=key, severity=severity))


def retraining_spec(loaded: LoadedSpec) -> LoadedSpec | None:
    """The spec whose `retrain:` block live breaches go through: this spec's own, else the
    drift spec beside it that retrains it (so drift and live checks share one trigger, one
    cooldown and one history)."""
    if loaded.spec.retrain is not None:
        return loaded
    return next((other for other in retrain.drift_specs_retraining(loaded)
                 if other.spec.registry is not None
                 and other.spec.registry.model_name == model_name(loaded)), None)


def _retrain(loaded: LoadedSpec, spec: MonitoringSpec, served: ModelVersion,
             result: dict[str, Any], now: datetime, start: Starter | None) -> dict[str, Any] | None:
    """While a `retrain_on` check is breached: the drift trigger, keyed by the breach
    episode (check + when it flipped), so an episode retrains at most once."""
    breached = [c for c in spec.retrain_on
                if result["checks"].get(c, {}).get("state") == "breached"]
    if not breached:
        return None
    target = retraining_spec(loaded)
    if target is None:
        return {"retrain": False, "reason": ", ".join(breached) + " breached",
                "pipeline": None, "suppressed": f"{loaded.display} has no `retrain:` block "
                "and no drift spec beside it retrains it"}
    checks = result["checks"]
    summary = {"action": "retrain",
               "reasons": [f"live {c}: {checks[c]['detail']} (breached since "
                           f"{checks[c]['since']})" for c in breached],
               "champion": {"name": served.name, "version": served.version},
               "window": [f"monitor:{c}:{checks[c]['since']}" for c in breached]}
    trigger = retrain.decide(target, summary, "local", f"monitor {now.isoformat()}")
    decision = {**trigger.to_json(), "spec": str(target.path)}
    if not trigger.retrain:
        return decision
    trigger.event.update(source="monitor", checks=breached)
    # The starter records the trigger (retrain.record), which also raises `retrain.started`.
    return {**decision, **(start or start_in_background)(target, trigger)}


def retrain_command(target: LoadedSpec) -> list[str]:
    assert target.spec.retrain is not None
    return ["loopline", "run", target.spec.retrain.pipeline]


def dry_run(target: LoadedSpec, trigger: retrain.Trigger) -> dict[str, Any]:
    """Decide, record nothing, start nothing: say what would run."""
    return {"dry_run": True, "command": " ".join(retrain_command(target))}


def start_in_background(target: LoadedSpec, trigger: retrain.Trigger) -> dict[str, Any]:
    """Record the trigger and run the training spec as a child process (a server keeps
    serving meanwhile); a failed run is recorded, so the next evaluation may try again."""
    event = retrain.record(target, trigger)
    root = location(target.spec.artifacts.root, target.project_root)
    folder = Path(tempfile.gettempdir()) if is_object_store(root) else \
        Path(root) / STATE_FOLDER / model_name(target)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"retrain-{event.get('key', 'event')}.log"
    command = [sys.executable, "-m", "loopline", "run", str(retrain.training_spec(target))]
    with open(log, "ab") as out:
        child = subprocess.Popen(command, cwd=target.project_root, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    environment = step_environment(target)

    def watch() -> None:
        if child.wait() != 0:
            with applied(environment):
                retrain.record_failure(target, trigger, f"pid {child.pid}",
                                       f"loopline run exited {child.returncode}; see {log}")

    threading.Thread(target=watch, name="monitor-retrain", daemon=True).start()
    return {"started": "background", "pid": child.pid, "log": str(log),
            "command": " ".join(retrain_command(target))}
