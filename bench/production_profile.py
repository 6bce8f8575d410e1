"""The cost of the production profile: the example (full data, nothing cached) all-local vs
under LOOPLINE_PROFILE=production on the loopback stand-ins (moto S3, an MLflow server on
PostgreSQL with artifacts in the bucket, Feast's PostgreSQL registry and Redis), alternated in
the same run; then each step in its own simulated pod (tests/support/pods.py) and what a pod
costs beyond the step itself (process start, imports, fetching inputs from the bucket)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import copy_example  # noqa: E402
from tests.support.pods import build_image, render_airflow_pods, run_pod  # noqa: E402
from tests.support.production import production_stack  # noqa: E402
from tests.support.services import claimed_redis_db  # noqa: E402

BIN = Path(sys.executable).parent
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LOOPLINE_"))}
BASE_ENV |= {"GX_ANALYTICS_ENABLED": "False", "WANDB_MODE": "offline"}


def _run(project: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "loopline"), "run", "pipelines/flights.yaml", "--json"],
                          cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"loopline run failed:\n{done.stderr[-3000:]}")
    return seconds


def main(repeats: int = 2) -> None:
    local, production = [], []
    with tempfile.TemporaryDirectory() as tmp_name, claimed_redis_db() as redis_db:
        tmp = Path(tmp_name)
        copy_example(tmp / "warm")  # the Feast sources, built once outside the timings
        with production_stack(tmp, redis_db) as stack:
            env = {**BASE_ENV, "LOOPLINE_PROFILE": "production", **stack.exported()}
            for i in range(repeats):
                local.append(_run(copy_example(tmp / f"local{i}"), BASE_ENV))
                project = copy_example(tmp / f"production{i}")
                (project / "params.production.yaml").write_text(stack.overlay(f"run{i}"))
                production.append(_run(project, env))

            project = copy_example(tmp / "pods")
            spec = project / "pipelines" / "flights.yaml"
            spec.write_text(spec.read_text().replace(
                "defaults:\n", "defaults:\n  isolation: {mode: kubernetes, namespace: ml}\n", 1))
            for other in ("flights_torch", "flights_scoring", "flights_drift"):
                (project / "pipelines" / f"{other}.yaml").unlink()
            (project / "params.production.yaml").write_text(stack.overlay("pods"))
            image = build_image(project, tmp / "image")
            pods = render_airflow_pods(project / "pipelines", tmp / "airflow", "flights",
                                       "manual__bench", {"LOOPLINE_PROFILE": "production"})
            rows = []
            for step, pod in pods.items():
                started = time.perf_counter()
                done = run_pod(pod, image, tmp / "node", stack.secrets)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"pod {step} failed:\n{done.stderr[-3000:]}")
                manifest = json.loads(stack.s3.client().get_object(
                    Bucket=stack.s3.bucket, Key=f"pods/flights/{step}/_loopline.json")[
                    "Body"].read())
                rows.append((step, wall, float(manifest.get("duration_s", 0.0))))
    a, b = statistics.median(production), statistics.median(local)
    print("## Production profile: the example, full data, 8 steps, nothing cached")
    print(f"all-local (SQLite, files):      median {b:.1f}s  "
          f"({', '.join(f'{t:.1f}' for t in local)})")
    print(f"production profile (loopback):  median {a:.1f}s  "
          f"({', '.join(f'{t:.1f}' for t in production)})")
    print(f"ratio: {a / b:.2f}   extra: {a - b:.1f}s")
    print("## Each step in its own pod (simulated): wall per pod vs the step's own time")
    print("step         pod wall   step   overhead")
    for step, wall, own in rows:
        print(f"{step:<12} {wall:7.1f}s {own:6.1f}s {wall - own:7.1f}s")
    overheads = [wall - own for _, wall, own in rows]
    print(f"process start + CLI + spec load per pod: median {statistics.median(overheads):.1f}s")
    walls = sum(wall for _, wall, _ in rows)
    print(f"all pods {walls:.1f}s vs one production-profile process {a:.1f}s: "
          f"{(walls - a) / len(rows):.1f}s per step (each pod imports the ML stack, opens "
          "MLflow and fetches its inputs from the bucket again)")


if __name__ == "__main__":
    main()
