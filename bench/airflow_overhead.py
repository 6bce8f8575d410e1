"""Airflow's cost per task: the example through `dag.test()` (every task through Airflow's
task runner) against `loopline run`, each on a fresh copy so nothing is cached."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import copy_example as copy

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent




def main(repeats: int = 2) -> None:
    local, airflow = [], []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "airflow"
        home.mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "GX_ANALYTICS_ENABLED": "False",
               "PATH": f"{BIN}:{os.environ['PATH']}"}
        env.pop("MLFLOW_TRACKING_URI", None)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                       capture_output=True)
        copy(Path(tmp) / "warm")  # builds the Feast sources once, outside the timings
        for i in range(repeats):
            project = copy(Path(tmp) / f"local{i}")
            started = time.perf_counter()
            subprocess.run([str(BIN / "loopline"), "run", "pipelines/flights.yaml"], cwd=project,
                           env=env, check=True, capture_output=True)
            local.append(time.perf_counter() - started)
            project = copy(Path(tmp) / f"airflow{i}")
            dags = str(REPO / "dags")
            code = (f"import sys; sys.path.insert(0, {dags!r}); import loopline_dags; "
                    "r = loopline_dags.flights.test(); sys.exit(r.state != 'success')")
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", code], cwd=home, capture_output=True,
                                    text=True, env={**env, "LOOPLINE_PIPELINES_DIR":
                                                    str(project / "pipelines")})
            airflow.append(time.perf_counter() - started)
            if result.returncode != 0:
                raise SystemExit("dag.test() failed:\n" + result.stdout[-4000:]
                                 + result.stderr[-4000:])
    tasks = 8
    a, b = statistics.median(airflow), statistics.median(local)
    print(f"## Airflow vs local: the example, full data, {tasks} steps, nothing cached")
    print(f"loopline run:        median {b:.1f}s (n={len(local)})")
    print(f"Airflow dag.test():  median {a:.1f}s (n={len(airflow)})")
    print(f"ratio:               {a / b:.2f}   per-task overhead: {(a - b) / tasks:.2f}s")


if __name__ == "__main__":
    main()
