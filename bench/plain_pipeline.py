"""Baseline for the overhead benchmark: the example's component functions called in one plain
script — same data, same params, no Loopline runtime (no cache, manifests, tracking runs)."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopline.components import registry
from loopline.pipeline.load import load_pipeline, step_params
from loopline.spec import graph


class PlainContext:
    """The least a component needs: paths in, paths out, somewhere to log."""

    def __init__(self, root: Path, step: str, inputs: dict[str, Path], out_dir: Path,
                 outputs: dict[str, str], tracking_uri: str, model_name: str | None) -> None:
        self.pipeline, self.step, self.run_id = "plain", step, "plain"
        self.project_root = root
        self.tracking_uri = self.registry_uri = tracking_uri
        self.model_name = model_name
        self.resources = None
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
                               spec.registry.model_name if spec.registry else None)
            component.run(ctx, step_params(loaded, step))
            produced[step] = {n: out_dir / f for n, f in outputs.items()}


if __name__ == "__main__":
    started = time.perf_counter()
    main(sys.argv[1], sys.argv[2])
    print(f"plain pipeline: {time.perf_counter() - started:.2f}s", file=sys.stderr)
