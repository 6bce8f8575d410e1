"""KFP: compile time of the example and of 100 generated specs, and a kfp-local run of the
example against `loopline run` (both fresh copies, nothing cached)."""

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




def compile_times(generated: int = 100) -> None:
    from loopline.backends.kfp.compile import KfpCompiler
    from loopline.pipeline.load import load_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        project = copy(Path(tmp) / "p")
        template = (project / "pipelines" / "flights.yaml").read_text()
        for i in range(generated):
            (project / "pipelines" / f"gen_{i:03d}.yaml").write_text(
                template.replace("name: flights\n", f"name: generated_{i:03d}\n"))
        out = Path(tmp) / "out"
        started = time.perf_counter()
        KfpCompiler().compile(load_pipeline(project / "pipelines" / "flights.yaml"),
                              out / "flights.yaml")
        first = time.perf_counter() - started
        times = []
        for spec in sorted((project / "pipelines").glob("gen_*.yaml")):
            started = time.perf_counter()
            KfpCompiler().compile(load_pipeline(spec), out / spec.name)
            times.append(time.perf_counter() - started)
    print("## KFP compile (in one process)")
    print(f"the example, first compile (builds the components): {first:.3f}s")
    print(f"{generated} generated specs: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms, total {sum(times):.2f}s")


def local_vs_kfp(repeats: int = 2) -> None:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False"}
    env.pop("MLFLOW_TRACKING_URI", None)
    local, kfp = [], []
    with tempfile.TemporaryDirectory() as tmp:
        copy(Path(tmp) / "warm")
        for i in range(repeats):
            for backend, times in (("local", local), ("kfp-local", kfp)):
                project = copy(Path(tmp) / f"{backend}{i}")
                started = time.perf_counter()
                subprocess.run([str(BIN / "loopline"), "run", "pipelines/flights.yaml",
                                "--backend", backend], cwd=project, env=env, check=True,
                               capture_output=True)
                times.append(time.perf_counter() - started)
    a, b = statistics.median(kfp), statistics.median(local)
    print("\n## kfp-local vs loopline run: the example, full data, nothing cached")
    print(f"loopline run:                  median {b:.1f}s (n={repeats})")
    print(f"loopline run --backend kfp-local: median {a:.1f}s (n={repeats})")
    print(f"ratio: {a / b:.2f}")


if __name__ == "__main__":
    compile_times()
    local_vs_kfp()
