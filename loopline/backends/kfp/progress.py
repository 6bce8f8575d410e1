"""What `run --backend kfp-local` shows: Loopline's progress per task on the terminal, and
kfp's own output (about 1,100 lines of executor dumps per run) in a log file."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TextIO

from loopline.spec import graph
from loopline.spec.load import LoadedSpec


@contextlib.contextmanager
def kfp_output_to(path: Path) -> Iterator[TextIO]:
    """kfp's runner and the task processes it starts write to file descriptors 1 and 2 and to
    Python's sys.stdout: point all of them at `path` for the run, and yield a stream that
    still reaches the terminal (or whatever stderr was, e.g. a test's buffer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    real_terminal = _is_fd2(sys.stderr)
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1) if real_terminal else sys.stderr
    try:
        with path.open("ab") as log, \
                open(log.fileno(), "w", buffering=1, closefd=False) as text:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:  # kfp also relays its task processes' output through Python's sys.stdout
                with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                    yield terminal
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])
        if real_terminal:
            terminal.close()


def _is_fd2(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a StringIO, a closed stream
        return False


class TaskProgress:
    """Watches kfp-local's run folder and prints `[i/n] step: running` and `✓ step: done in
    Xs` as task folders appear and their executor output lands."""

    def __init__(self, loaded: LoadedSpec, tasks: dict[str, str], root: Path,
                 before: set[Path], terminal: TextIO, interval_s: float = 0.5) -> None:
        self.root, self.before, self.terminal = root, before, terminal
        self.prefix = f"{loaded.spec.name}-"
        order = graph.topological_order(loaded.spec)
        self.tasks = [(index, step, tasks[step]) for index, step in enumerate(order, 1)]
        self.total, self.interval_s = len(order), interval_s
        self.shown: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> TaskProgress:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()
        self._poll()  # the last task's end
        for _index, step, _task in self.tasks:
            if self.shown.get(step) == "running":  # started, never wrote its outputs
                print(f"  ✗ {step}: failed (its output is in kfp's log)", file=self.terminal)

    def _watch(self) -> None:
        while not self.stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        runs = [p for p in self.root.glob(f"{self.prefix}*") if p not in self.before]
        if not runs:
            return
        run = max(runs, key=lambda p: p.stat().st_mtime)
        for index, step, task in self.tasks:
            folder = run / task
            state = "done" if (folder / "executor_output.json").exists() else \
                "running" if folder.exists() else ""
            if not state or self.shown.get(step) == state:
                continue
            if state == "running" or step not in self.shown:
                self.started.setdefault(step, time.perf_counter())
                if step not in self.shown:
                    print(f"[{index}/{self.total}] {step}: running", file=self.terminal)
            if state == "done":
                seconds = time.perf_counter() - self.started[step]
                print(f"  ✓ {step}: done in {seconds:.1f}s", file=self.terminal)
            self.shown[step] = state
