"""The server's metrics do not depend on whether Feast or prometheus_client was imported first.

Feast sets PROMETHEUS_MULTIPROC_DIR when imported, and prometheus_client chooses file-backed
values at its own import from that variable. Each case runs in a fresh interpreter, because
that choice is made once per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
import feast  # noqa: F401  sets PROMETHEUS_MULTIPROC_DIR to a folder of its own
if sys.argv[1] == "unset":  # e.g. a wrapper that cleans the environment after imports
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    os.environ.pop("PROMETHEUS_MULTIPROCESS_DIR", None)
else:
    os.environ["LOOPLINE_METRICS_DIR"] = sys.argv[2]
from loopline.serving.metrics import Metrics
m = Metrics()
m.requests.labels("model", "1", "champion", "predict", "200").inc(3)
text = m.exposition()[0].decode()
assert 'loopline_requests_total{endpoint="predict",model="model",route="champion",' \\
       'status="200",version="1"} 3.0' in text, text
import json
ours = sorted(os.listdir(sys.argv[2])) if len(sys.argv) > 2 else []
from prometheus_client import values
print(json.dumps([values.ValueClass.__name__, ours]))
"""


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.slow
def test_one_process_counts_in_memory_after_feast_set_the_variable() -> None:
    # The script asserts the count (3); before, the first label failed (a file value whose
    # folder variable was gone).
    kind, _ = json.loads(_run("unset"))
    assert kind == "MutexValue"  # in memory, whatever Feast's import chose


@pytest.mark.slow
def test_workers_write_their_files_to_the_servers_folder(tmp_path: Path) -> None:
    kind, ours = json.loads(_run("workers", str(tmp_path)))
    assert kind == "MmapedValue"
    assert any(name.startswith("counter_") for name in ours), ours
