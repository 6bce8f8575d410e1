"""Baseline for the overhead benchmark: the example's component functions called in one plain
script — same data, same params, no Loopline runtime (no cache, manifests, tracking runs).

`python bench/plain_pipeline.py SPEC TRACKING_URI` runs every step of SPEC in order and prints
one line per step (`  step: 1.23s`) and the total to stderr. The bench points TRACKING_URI at
the same registry state `loopline run` starts from, so both face the same champion.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopline.components import registry
from loopline.pipeline.load import load_pipeline, step_params
from loopline.spec import graph
from loopline.spec.paths import location


class PlainContext:
    """The least a component needs: paths in, paths out, somewhere to log."""

    def __init__(self, root: Path, step: str, inputs: dict[str, Path], out_dir: Path,
                 outputs: dict[str, str], tracking_uri: str, model_name: str | None,
                 artifacts_root: str, resources: Any) -> None:
        self.pipeline, self.step, self.run_id = "plain", step, "plain"
        self.project_root = root
        self.artifacts_root = artifacts_root
        self.tracking_uri = self.registry_uri = tracking_uri
        self.model_name = model_name
        self.resources = resources
        self._inputs, self._out, self._outputs = inputs, out_dir, outputs

    def input_path(self, name: str) -> Path | None:
        return self._inputs.get(name)

    def output_path(self, name: str) -> Path:
        return self._out / self._outputs[name]

    def log(self, message: str) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def lineage(self) -> dict[str, str]:
        return {}


def main(spec_path: str, tracking_uri: str) -> None:
    loaded = load_pipeline(spec_path)
    spec = loaded.spec
    produced: dict[str, dict[str, Path]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for step in graph.topological_order(spec):
            component = registry.get(spec.steps[step].component)
            out_dir = Path(tmp) / step
            out_dir.mkdir()
            inputs = {name: produced[ref.split(".")[0]][ref.split(".")[1]]
                      for name, ref in spec.steps[step].inputs.items()}
            outputs = {n: o.filename for n, o in component.outputs.items()}
            ctx = PlainContext(loaded.project_root, step, inputs, out_dir, outputs, tracking_uri,
                               spec.registry.model_name if spec.registry else None,
                               location(spec.artifacts.root, loaded.project_root),
                               spec.resources(step))
            started = time.perf_counter()
            component.run(ctx, step_params(loaded, step))
            print(f"  {step}: {time.perf_counter() - started:.2f}s", file=sys.stderr)
            produced[step] = {n: out_dir / f for n, f in outputs.items()}
        print(f"plain facts: {json.dumps(_facts(produced))}", file=sys.stderr)


def _facts(produced: dict[str, dict[str, Path]]) -> dict[str, Any]:
    """What the registry steps saw and did, so the bench can check both runs did the same."""
    facts: dict[str, Any] = {"steps": len(produced)}
    for outputs in produced.values():
        if (verdict := outputs.get("verdict")) is not None:
            champion = json.loads(verdict.read_text()).get("champion") or {}
            facts["champion_compared"] = champion.get("version")
        if (registered := outputs.get("registered")) is not None:
            facts["registered"] = json.loads(registered.read_text()).get("version")
    return facts


if __name__ == "__main__":
    started = time.perf_counter()
    main(sys.argv[1], sys.argv[2])
    print(f"plain pipeline: {time.perf_counter() - started:.2f}s", file=sys.stderr)
    # End the process the way the `loopline` console script does (loopline/cli/__init__.py
    # `entry_point`): once duckdb (under Feast) is loaded it skips interpreter teardown, which
    # costs seconds with this many modules loaded. Without this the baseline paid a teardown
    # the framework never pays (docs/benchmarks.md).
    if "duckdb" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
