"""A spec may name `package.module:ATTR` only inside its project: naming it must not run
arbitrary importable code at validate-spec time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COMPONENT_SOURCE = '''
from pathlib import Path
Path(__file__).with_name("imported.flag").write_text("ran")
from loopline.components.contract import Component, ComponentParams, StepResult

def run(ctx, params):
    return StepResult()

COMPONENT = Component(name="local.noop", version="1", description="", params=ComponentParams,
                      run=run)
'''


def _project(root: Path, component: str) -> Path:
    (root / "pipelines").mkdir(parents=True)
    spec = root / "pipelines" / "p.yaml"
    spec.write_text(f"name: p\nsteps:\n  a:\n    component: {component}\n")
    return spec


def _validate(spec: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # no LOOPLINE_COMPONENT_PATH
    return subprocess.run([sys.executable, "-m", "loopline", "validate-spec", str(spec)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_a_module_outside_the_project_is_refused_without_running(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "evil").mkdir(parents=True)
    (outside / "evil" / "__init__.py").write_text(COMPONENT_SOURCE)
    spec = _project(tmp_path / "project", "evil:COMPONENT")
    result = _validate(spec, cwd=outside)  # importable from the working folder
    assert result.returncode == 2, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"{spec}:4: steps.a.component: unknown component 'evil:COMPONENT'")
    assert "not in the project" in line
    assert not (outside / "evil" / "imported.flag").exists()  # its code never ran


def test_the_standard_library_is_not_a_component_source(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project", "this:X")
    result = _validate(spec, cwd=tmp_path)
    assert result.returncode == 2
    assert "Beautiful is better than ugly" not in result.stdout + result.stderr
    assert "not in the project" in result.stderr


def test_a_module_inside_the_project_is_found_from_anywhere(tmp_path: Path) -> None:
    project = tmp_path / "project"
    spec = _project(project, "local_steps.noop:COMPONENT")
    (project / "local_steps").mkdir()
    (project / "local_steps" / "__init__.py").write_text("")
    (project / "local_steps" / "noop.py").write_text(COMPONENT_SOURCE)
    result = _validate(spec, cwd=tmp_path)  # not the project folder: found by the spec
    assert result.returncode == 0, result.stderr
    assert (project / "local_steps" / "imported.flag").exists()


def test_a_module_with_a_syntax_error_is_one_located_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    spec = _project(project, "broken:COMPONENT")
    (project / "broken.py").write_text("def oops(:\n")
    result = _validate(spec, cwd=tmp_path)
    assert result.returncode == 2
    line, = result.stderr.strip().splitlines()
    assert ":4: steps.a.component:" in line and "SyntaxError" in line
