"""Lifecycle hooks: how runs report progress without the executor knowing who listens."""

from __future__ import annotations

import sys
import time
from typing import ClassVar, Protocol, TextIO


class RunHooks(Protocol):
    def step_started(self, step: str, index: int, total: int, attempt: int) -> None: ...

    def step_log(self, step: str, message: str) -> None: ...

    def step_finished(self, step: str, status: str, seconds: float, note: str) -> None: ...


class ConsoleProgress:
    """One line per event on stderr: readable in a terminal, in CI logs and in Airflow logs."""

    SYMBOLS: ClassVar[dict[str, str]] = {
        "succeeded": "✓", "cached": "↺", "failed": "✗", "skipped": "·"}

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def step_started(self, step: str, index: int, total: int, attempt: int) -> None:
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._print(f"[{index}/{total}] {step}: running{retry}")

    def step_log(self, step: str, message: str) -> None:
        for line in message.splitlines():
            self._print(f"    {step} │ {line}")

    def step_finished(self, step: str, status: str, seconds: float, note: str) -> None:
        symbol = self.SYMBOLS.get(status, "?")
        suffix = f" — {note}" if note else ""
        self._print(f"  {symbol} {step}: {status} in {seconds:.2f}s{suffix}")

