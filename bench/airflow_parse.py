"""Parse time of dags/loopline_dags.py with the example specs plus 100 generated ones, the way
the dag-processor pays it (Airflow already imported), and whether any heavy library came in."""

from __future__ import annotations

import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"pandas", "numpy", "sklearn", "mlflow", "great_expectations", "feast", "torch",
         "evidently", "matplotlib", "pyarrow", "duckdb"}


def main(generated: int = 100, repeats: int = 5) -> None:
    import airflow.sdk  # noqa: F401 - already loaded in a dag-processor

    with tempfile.TemporaryDirectory() as tmp:
        pipelines = Path(tmp) / "project" / "pipelines"
        shutil.copytree(REPO / "pipelines", pipelines)
        for item in ("expectations", "feature_repo"):
            shutil.copytree(REPO / item, Path(tmp) / "project" / item,
                            ignore=shutil.ignore_patterns("data"))
        shutil.copy(REPO / "params.yaml", Path(tmp) / "project" / "params.yaml")
        template = (REPO / "pipelines" / "flights.yaml").read_text()
        for i in range(generated):
            (pipelines / f"gen_{i:03d}.yaml").write_text(
                template.replace("name: flights\n", f"name: generated_{i:03d}\n"))
        os.environ["LOOPLINE_PIPELINES_DIR"] = str(pipelines)
        sys.path.insert(0, str(REPO / "dags"))
        times = []
        for _ in range(repeats):
            sys.modules.pop("loopline_dags", None)
            started = time.perf_counter()
            module = importlib.import_module("loopline_dags")
            times.append(time.perf_counter() - started)
        dags = [k for k, v in vars(module).items() if type(v).__name__ == "DAG"]
        heavy = sorted(HEAVY & {m.split(".")[0] for m in sys.modules})
    print(f"## Airflow DAG file parse ({len(dags)} DAGs: the examples + {generated} generated)")
    print(f"first parse:   {times[0]:.3f}s (includes importing Loopline's spec and components)")
    print(f"re-parse:      median {statistics.median(times[1:]):.3f}s (n={repeats - 1})")
    print(f"heavy imports: {heavy or 'none'}")


if __name__ == "__main__":
    main()
