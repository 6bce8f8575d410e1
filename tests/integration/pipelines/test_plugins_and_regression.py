"""A user's package adds components through entry points; regression runs end to end."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import REPO, run_json


def test_entry_point_component_is_found_and_validated(tmp_path: Path) -> None:
    """A real installed-distribution layout (dist-info + entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    (site / "acme_ml").mkdir(parents=True)
    (site / "acme_ml" / "__init__.py").write_text("")
    (site / "acme_ml" / "clean.py").write_text(textwrap.dedent("""
        from loopline.components.contract import Component, ComponentParams, Output, StepResult

        class Params(ComponentParams):
            greeting: str = "hi"

        def run(ctx, params):
            ctx.output_path("out").write_text(params.greeting)
            return StepResult(metrics={"chars": len(params.greeting)})

        COMPONENT = Component(name="acme.clean", version="1", description="says hi",
                              params=Params, run=run, outputs={"out": Output("out.txt", "json")})
    """))
    dist = site / "acme_ml-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ml\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        '[loopline.components]\nacme.clean = acme_ml.clean:COMPONENT\n')
    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    spec = project / "pipelines" / "p.yaml"
    spec.write_text("name: p\nsteps:\n  hello:\n    component: acme.clean\n"
                    "    params: {greeting: hello}\n")
    env = {"PYTHONPATH": f"{site}:{REPO}"}
    import os

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "loopline", *args], capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=120)

    listed = cli("components")
    assert any(line.split()[0] == "acme.clean" for line in listed.stdout.splitlines())
    assert cli("validate-spec", str(spec)).returncode == 0
    spec.write_text(spec.read_text().replace("greeting: hello", "greetin: hello"))
    bad = cli("validate-spec", str(spec))
    assert bad.returncode == 2
    assert "steps.hello.params.greetin: unknown field (did you mean greeting?)" in bad.stderr
    spec.write_text(spec.read_text().replace("greetin: hello", "greeting: hello"))
    ran = cli("run", str(spec), "--json")
    assert ran.returncode == 0, ran.stderr
    assert (project / "artifacts" / "p" / "hello" / "out.txt").read_text() == "hello"


@pytest.mark.slow
def test_regression_pipeline(small_project: Path) -> None:
    """Predict the arrival delay in minutes instead of the late flag."""
    spec = small_project / "pipelines" / "train.yaml"
    text = spec.read_text()
    for old, new in [
        ("      derive: {late: arr_delay > 15}\n", "      derive: {delay: arr_delay}\n"),
        ("      label: late\n", "      label: delay\n"),
        ("      params: {max_iter: 500}", "      task: regression\n      params: {}"),
        ("        - {metric: roc_auc, min: \"${gate.min_roc_auc}\", max_drop_vs_champion: 0.02}",
         "        - {metric: rmse, max: 100, max_drop_vs_champion: 1.0}"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    spec.write_text(text)
    (small_project / "params.yaml").write_text(
        (small_project / "params.yaml").read_text().replace("logistic_regression", "ridge"))
    summary = run_json(spec)
    assert summary["status"] == "succeeded", summary
    metrics = summary["steps"]["evaluate"]["metrics"]
    assert {"rmse", "mae", "r2"} <= metrics.keys()
    assert 10 < metrics["rmse"] < 100  # delays in minutes, with real spread
    assert summary["gate"]["passed"] is True
    plots = Path(summary["steps"]["evaluate"]["outputs"]["plots"])
    assert (plots / "predictions.json").exists() and (plots / "evaluation.png").exists()
