"""The live checks, run by the serving process every `serve.monitoring.every`.

One thread in the process that started the server (with several workers: their parent), so a
server watches itself without cron; `loopline monitor SPEC` runs the same evaluation once for
schedulers. The hold state lives under the artifact root, so several replicas and a cron job
agree on it and an evaluation that is not yet due is skipped (`if_due`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from loopline.spec.load import LoadedSpec


class MonitorLoop:
    def __init__(self, loaded: LoadedSpec, every_s: float,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.loaded = loaded
        self.every_s = every_s
        self.on_result = on_result
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="live-checks", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                result = self.evaluate()
                report(result)
                if self.on_result is not None:
                    self.on_result(result)
            except Exception as exc:  # noqa: BLE001 - a check that cannot run must not stop serving
                print(f"live checks: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr,
                      flush=True)

    def evaluate(self) -> dict[str, Any]:
        from loopline.runtime.monitoring import evaluate

        return evaluate(self.loaded, if_due=True)


def report(result: dict[str, Any]) -> None:
    """One line per check that changed state (breached, recovered); quiet otherwise."""
    for flip in result.get("transitions") or []:
        print(f"live check {flip.get('check')} {flip.get('to')} "
              f"(v{flip.get('version')}): {flip.get('detail')}", flush=True)
    retrain = result.get("retrain") or {}
    if retrain.get("retrain"):
        print(f"live checks started retraining: {retrain.get('reason')}", flush=True)
