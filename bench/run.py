"""`make bench`: the figures in docs/benchmarks.md. Medians of several runs; every ratio is
against a baseline measured in the same run, on the same machine."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import copy_example

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO)}
ENV.pop("MLFLOW_TRACKING_URI", None)


def timed(command: list[str], cwd: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return times


def fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f}s (min {min(times):.3f}, n={len(times)})"


def example_copy(tmp: Path) -> Path:
    return copy_example(tmp / "project")


def bench_cli(project: Path) -> None:
    loopline = str(BIN / "loopline")
    print("## CLI start-up (no ML library imported)")
    print(f"loopline --help:          {fmt(timed([loopline, '--help'], project, 7))}")
    spec = "pipelines/flights.yaml"
    print(f"loopline validate-spec:   {fmt(timed([loopline, 'validate-spec', spec], project, 7))}")


def bench_overhead(project: Path, repeats: int) -> None:
    loopline = str(BIN / "loopline")
    spec = "pipelines/flights.yaml"
    uri = f"sqlite:///{project / 'plain-mlflow.db'}"
    plain = [sys.executable, str(REPO / "bench" / "plain_pipeline.py"), spec, uri]
    timed(plain, project, 1)  # warm the page cache and both registries once
    timed([loopline, "run", spec, "--force"], project, 1)
    framework, baseline = [], []
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        framework += timed([loopline, "run", spec, "--force"], project, 1)
        baseline += timed(plain, project, 1)
    ratio = statistics.median(framework) / statistics.median(baseline)
    print("\n## Framework overhead: the example, full data (6 steps, 160k flights)")
    print(f"loopline run --force:     {fmt(framework)}")
    print(f"plain script, same steps: {fmt(baseline)}")
    print(f"ratio (aim <= 1.10):      {ratio:.3f}")
    cached = timed([loopline, "run", spec], project, 5)
    print("\n## Re-run with nothing changed (all 6 steps cached; aim < 2 s)")
    print(f"loopline run:             {fmt(cached)}")


def bench_log_model(tmp: Path, repeats: int) -> None:
    code = f"""
import time, sys, joblib, mlflow, logging
logging.getLogger("mlflow").setLevel(logging.ERROR)
from loopline.builtin.registry_promote import _pip_requirements
mlflow.set_tracking_uri("sqlite:///{tmp}/logmodel.db")
model = joblib.load("{tmp}/project/artifacts/flights/train/model.joblib")
explicit = sys.argv[1] == "explicit"
with mlflow.start_run():
    started = time.perf_counter()
    mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                             pip_requirements=_pip_requirements() if explicit else None)
    print(time.perf_counter() - started)
"""
    results: dict[str, list[float]] = {"explicit": [], "inferred": []}
    for _ in range(repeats):
        for mode in results:
            out = subprocess.run([sys.executable, "-c", code, mode], env=ENV, capture_output=True,
                                 text=True, check=True).stdout
            results[mode].append(float(out.strip().splitlines()[-1]))
    print("\n## MLflow log_model of the example's model (in-call time)")
    print(f"explicit pip_requirements: {fmt(results['explicit'])}")
    print(f"inferred (MLflow default): {fmt(results['inferred'])}")
    ratio = statistics.median(results["inferred"]) / statistics.median(results["explicit"])
    print(f"speed-up:                  {ratio:.0f}x")


def bench_weather_ablation(tmp: Path) -> None:
    """ROC AUC on held-out June with and without the Feast features (same seed and data)."""
    import json

    spec_text = (REPO / "pipelines" / "flights.yaml").read_text()
    weather = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure",
               "visib"]
    carrier = ["carrier_late_rate_7d", "carrier_flights_7d"]
    variants = {"no feature-store features": weather + carrier,
                "+ carrier 7-day late rate": weather,
                "+ hourly weather (the example)": carrier,
                "+ carrier rate + hourly weather": []}
    print("\n## Feature store ablation: the example on full data, ROC AUC on held-out June")
    for name, dropped in variants.items():
        project = tmp / f"ablation-{'-'.join(dropped[:1]) or 'all'}"
        if not project.exists():
            copy_example(project)
        text = "\n".join(line for line in spec_text.splitlines()
                         if line.strip().split(":")[0] not in dropped)
        (project / "pipelines" / "flights.yaml").write_text(text + "\n")
        result = subprocess.run([str(BIN / "loopline"), "run", "pipelines/flights.yaml",
                                 "--json"], cwd=project, env=ENV, capture_output=True,
                                text=True, check=True)
        metrics = json.loads(result.stdout)["steps"]["evaluate"]["metrics"]
        print(f"{name:48} roc_auc {metrics['roc_auc']:.4f}  pr_auc {metrics['pr_auc']:.4f}")


def main() -> None:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    print(f"# Loopline benchmarks — {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    with tempfile.TemporaryDirectory() as tmp:
        project = example_copy(Path(tmp))
        only = os.environ.get("BENCH_ONLY", "core,feast,airflow,torch,drift").split(",")
        if "core" in only:
            bench_cli(project)
            bench_overhead(project, repeats)
            bench_log_model(Path(tmp), repeats)
        if "feast" in only:
            bench_weather_ablation(Path(tmp))
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "feast_online.py")], env=ENV,
                           check=True, stderr=subprocess.DEVNULL)
        if "airflow" in only:
            for script in ("airflow_parse.py", "airflow_overhead.py", "kfp_compile.py"):
                print()
                subprocess.run([sys.executable, str(REPO / "bench" / script)], env=ENV,
                               check=True)
        if "torch" in only:
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "torch_throughput.py")],
                           env=ENV, check=True)
        if "drift" in only:
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "drift_million.py")],
                           env=ENV, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
