"""docs/own-data.md, followed to the letter: the files in examples/own_data, from a CSV to a
validated, trained, checked and promoted model with a custom component installed as a plugin.

Every command is the walkthrough's own, run as a subprocess through the `loopline` console
script. The spec names the component by its entry point (`churn.lift`), so it is found only
once the plugin is installed. The one difference: the plugin is installed into a folder on
PYTHONPATH (`pip install --target`) rather than into the shared venv.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "own_data"
LOOPLINE = str(Path(sys.executable).parent / "loopline")
# What running the walkthrough leaves behind; a copy starts without it.
GENERATED = ("data", "artifacts", "mlflow.db*", "mlruns", ".loopline", "build", "*.egg-info",
             "__pycache__")


def _run(command: list[str], cwd: Path, env: dict[str, str],
         expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == expect, (f"{' '.join(command)} exited {result.returncode}:\n"
                                         f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def test_own_data_walkthrough(tmp_path: Path) -> None:
    project = tmp_path / "own_data"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(*GENERATED))
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONPATH")}
    env["GX_ANALYTICS_ENABLED"] = "False"

    # 1. The CSV.
    _run([sys.executable, "export_csv.py"], project, env)
    csv = (project / "data" / "churn.csv").read_text().splitlines()
    assert len(csv) == 5001 and csv[0].endswith(",churn")

    # 2. Not installed yet: the spec names a component nobody has.
    missing = _run([LOOPLINE, "validate-spec", "pipelines/churn.yaml"], project, env, expect=2)
    assert "steps.lift.component: unknown component 'churn.lift'" in missing.stderr

    # 3. Install the plugin (the walkthrough: `pip install -e .`; here into a folder).
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
          "--no-build-isolation", "--target", str(site), "."], project, env)
    env["PYTHONPATH"] = str(site)
    listed = _run([LOOPLINE, "components"], project, env)
    assert any(line.split()[:1] == ["churn.lift"] for line in listed.stdout.splitlines())

    # 4. Validate, then run.
    valid = _run([LOOPLINE, "validate-spec", "pipelines/churn.yaml"], project, env)
    assert "valid (7 steps)" in valid.stdout + valid.stderr
    ran = _run([LOOPLINE, "run", "pipelines/churn.yaml", "--json"], project, env)
    summary = json.loads(ran.stdout)
    assert summary["status"] == "succeeded", summary
    assert list(summary["steps"]) == ["ingest", "validate", "features", "train", "evaluate",
                                      "lift", "promote"]
    assert all(s["status"] == "succeeded" for s in summary["steps"].values())
    assert summary["gate"]["passed"] is True

    # The model is registered and is champion.
    assert summary["model"]["name"] == "churn-classifier"
    assert "champion" in summary["model"]["aliases"]
    models = json.loads(_run([LOOPLINE, "models", "list", "churn-classifier", "--json"],
                             project, env).stdout)
    assert [(v["version"], "champion" in v["aliases"]) for v in models["versions"]] == [
        (summary["model"]["version"], True)]

    # The custom component wrote what its contract promises.
    lift_dir = project / "artifacts" / "churn" / "lift"
    lift = json.loads((lift_dir / "lift.json").read_text())
    params = {"top_share": 0.10, "min_lift": 3.0}  # examples/own_data/params.yaml
    assert lift["top_share"] == params["top_share"] and lift["min_lift"] == params["min_lift"]
    assert lift["rows"] == summary["steps"]["ingest"]["metrics"]["rows_eval"]
    assert lift["called"] == math.ceil(params["top_share"] * lift["rows"])
    assert lift["passed"] is True and lift["lift"] >= params["min_lift"]
    assert lift["lift"] == pytest.approx(lift["hit_rate"] / lift["base_rate"], rel=1e-2)
    assert 0 < lift["churners_reached"] <= 1
    assert summary["steps"]["lift"]["metrics"]["lift"] == pytest.approx(lift["lift"], abs=1e-3)
    gains = json.loads((lift_dir / "gains" / "gains.json").read_text())
    assert len(gains) == 20 and gains[-1] == {"called": 1.0, "reached": 1.0}
    reached = [point["reached"] for point in gains]
    assert reached == sorted(reached)  # cumulative: never falls
    manifest = json.loads((lift_dir / "_loopline.json").read_text())
    assert {n: o["kind"] for n, o in manifest["outputs"].items()} == {"lift": "metrics",
                                                                      "gains": "plots"}
