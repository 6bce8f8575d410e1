"""`make bench`: the figures in docs/benchmarks.md. Medians of several runs; every ratio is
against a baseline measured in the same run, on the same machine."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
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


def samples(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times)


def example_copy(tmp: Path) -> Path:
    return copy_example(tmp / "project")


def bench_cli(project: Path) -> None:
    loopline = str(BIN / "loopline")
    print("## CLI start-up (no ML library imported)")
    print(f"loopline --help: {fmt(timed([loopline, '--help'], project, 7))}")
    spec = "pipelines/flights.yaml"
    print(f"loopline validate-spec {spec}: "
          f"{fmt(timed([loopline, 'validate-spec', spec], project, 7))}")


# What a run leaves in the project that the next run reads: the registry (MLflow's database
# and artifact folder) and the Feast registry and online store.
REGISTRY_STATE = ("mlflow.db", "mlruns", "feature_repo/data/registry.db",
                  "feature_repo/data/online.db")


def save_state(project: Path, snapshot: Path) -> None:
    for item in REGISTRY_STATE:
        source = project / item
        if source.is_dir():
            shutil.copytree(source, snapshot / item)
        elif source.exists():
            (snapshot / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, snapshot / item)


def restore_state(project: Path, snapshot: Path) -> None:
    """Back to the snapshot: same champion, same number of versions, same online store."""
    for item in REGISTRY_STATE:
        target = project / item
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if (snapshot / item).is_dir():
            shutil.copytree(snapshot / item, target)
        elif (snapshot / item).exists():
            shutil.copy2(snapshot / item, target)
    for lock in project.glob("mlflow.db.lock*"):  # lock files of the previous run
        shutil.rmtree(lock) if lock.is_dir() else lock.unlink()


def spec_steps(project: Path, spec: str) -> list[str]:
    from loopline.spec.graph import topological_order
    from loopline.spec.load import load_spec

    return topological_order(load_spec(project / spec).spec)


def measured(command: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds, result) of one process. CPU time (user + system of the
    process and what it waited for) is far less sensitive than wall time to other work on a
    shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def framework_run(project: Path, spec: str) -> tuple[float, float, dict[str, float], dict]:
    """`loopline run --force --json`: wall and CPU time, per-step times, what it compared
    and registered."""
    command = [str(BIN / "loopline"), "run", spec, "--force", "--json"]
    wall, cpu, result = measured(command, project)
    summary = json.loads(result.stdout)
    steps = {name: s["duration_s"] for name, s in summary["steps"].items()}
    facts: dict = {"steps": sum(s["status"] == "succeeded" for s in summary["steps"].values())}
    for step in summary["steps"].values():
        if "verdict" in step["outputs"]:
            verdict = json.loads(Path(step["outputs"]["verdict"]).read_text())
            facts["champion_compared"] = (verdict.get("champion") or {}).get("version")
        if "registered" in step["outputs"]:
            facts["registered"] = json.loads(
                Path(step["outputs"]["registered"]).read_text()).get("version")
    return wall, cpu, steps, {**facts, "summary": summary}


def plain_run(project: Path, spec: str, uri: str) -> tuple[float, float, dict[str, float], dict]:
    command = [sys.executable, str(REPO / "bench" / "plain_pipeline.py"), spec, uri]
    wall, cpu, result = measured(command, project)
    steps = {m[1]: float(m[2]) for m in re.finditer(r"^  (\w+): ([\d.]+)s$", result.stderr,
                                                     re.M)}
    facts = json.loads(re.search(r"^plain facts: (.*)$", result.stderr, re.M)[1])
    return wall, cpu, steps, facts


def bench_overhead(project: Path, repeats: int) -> None:
    """`loopline run --force` against the same component functions called in a plain script.

    Same work: the same steps on the same data, each run starting from the same registry state
    (one champion, seeded by a first run and restored before every timed run) and registering
    the same next version into the same registry, so both compare with the same champion.
    """
    spec = "pipelines/flights.yaml"
    names = spec_steps(project, spec)
    uri = f"sqlite:///{project / 'mlflow.db'}"  # what `loopline run` uses here by default
    _, _, _, seeded = framework_run(project, spec)  # seeds the champion, warms the caches
    snapshot = project.parent / "registry-snapshot"
    save_state(project, snapshot)
    restore_state(project, snapshot)
    plain_run(project, spec, uri)  # warms the baseline's imports once
    wall: dict[str, list[float]] = {"loopline": [], "plain": []}
    cpu: dict[str, list[float]] = {"loopline": [], "plain": []}
    per_step: dict[str, dict[str, list[float]]] = {
        who: {n: [] for n in names} for who in ("loopline", "plain")}
    checks = []
    load_before = os.getloadavg()
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        for who in ("loopline", "plain"):
            restore_state(project, snapshot)
            if who == "loopline":
                seconds, cpu_seconds, steps, facts = framework_run(project, spec)
            else:
                seconds, cpu_seconds, steps, facts = plain_run(project, spec, uri)
            wall[who].append(seconds)
            cpu[who].append(cpu_seconds)
            for name in names:
                per_step[who][name].append(steps[name])
            checks.append((who, {k: v for k, v in facts.items() if k != "summary"}))
    load_after = os.getloadavg()
    ingest = seeded["summary"]["steps"][names[0]]["metrics"]
    ratio = statistics.median(wall["loopline"]) / statistics.median(wall["plain"])
    cpu_ratio = statistics.median(cpu["loopline"]) / statistics.median(cpu["plain"])
    print(f"\n## Framework overhead: {spec}, full data ({len(names)} steps: "
          f"{', '.join(names)}; {int(ingest.get('rows_train', 0)):,} train and "
          f"{int(ingest.get('rows_eval', 0)):,} eval rows)")
    print("each timed run starts from the same registry: champion "
          f"v{seeded['registered']}, restored before every run")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"loopline run --force:     {fmt(wall['loopline'])}; runs {samples(wall['loopline'])}")
    print(f"plain script, same steps: {fmt(wall['plain'])}; runs {samples(wall['plain'])}")
    print(f"ratio (aim <= 1.10):      {ratio:.3f}")
    # Other work on a shared machine only ever slows a run down: the fastest run of each is
    # the least disturbed, so this ratio moves less from one bench to the next.
    print(f"ratio of the fastest runs: {min(wall['loopline']) / min(wall['plain']):.3f}")
    print(f"CPU seconds, loopline:    {fmt(cpu['loopline'])}; runs {samples(cpu['loopline'])}")
    print(f"CPU seconds, plain:       {fmt(cpu['plain'])}; runs {samples(cpu['plain'])}")
    print(f"CPU ratio:                {cpu_ratio:.3f}")
    print("per step, median wall seconds (loopline / plain); loopline's first step includes "
          "importing MLflow and opening its tracking run, plain imports MLflow in evaluate:")
    for name in names:
        print(f"  {name:12} {statistics.median(per_step['loopline'][name]):7.2f} "
              f"{statistics.median(per_step['plain'][name]):7.2f}")
    print("what each timed run compared and registered: "
          + "; ".join(f"{who} champion v{f.get('champion_compared')} -> v{f.get('registered')} "
                      f"({f.get('steps')} steps)" for who, f in checks))
    if len({(f.get("champion_compared"), f.get("registered"), f.get("steps"))
            for _, f in checks}) != 1:
        print("WARNING: the runs did not do the same work; the ratio above is not comparable")

    loopline = str(BIN / "loopline")
    cached = timed([loopline, "run", spec], project, 5)
    summary = json.loads(subprocess.run([loopline, "run", spec, "--json"], cwd=project, env=ENV,
                                        capture_output=True, text=True, check=True).stdout)
    statuses = [s["status"] for s in summary["steps"].values()]
    print(f"\n## Re-run with nothing changed ({statuses.count('cached')} of {len(statuses)} "
          "steps cached; aim < 2 s)")
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
        only = os.environ.get("BENCH_ONLY",
                              "core,feast,airflow,torch,drift,production,serving,rollout,ci"
                              ).split(",")
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
        if "production" in only:  # needs PostgreSQL and Redis on loopback
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "production_profile.py")],
                           env=ENV, check=True, stderr=subprocess.DEVNULL)
        if "serving" in only:  # loopline serve vs mlflow models serve, on loopback
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "serving.py")], env=ENV,
                           check=True)
        if "rollout" in only:  # routing overhead, time from a broken canary to rollback
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "rollout.py")], env=ENV,
                           check=True, stderr=subprocess.DEVNULL)
        if "ci" in only:  # loopline ci pr against the full pipelines it stands in for
            print()
            subprocess.run([sys.executable, str(REPO / "bench" / "ci_pr.py"), str(repeats)],
                           env=ENV, check=True)


if __name__ == "__main__":
    main()
