"""The `rollout:` block is checked like every spec field: file, line, field, what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.spec.errors import SpecError
from loopline.spec.load import load_spec

BASE = """\
name: demo
registry: {model_name: m}
steps:
  train: {component: train.sklearn}
serve: {}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "pipelines").mkdir(exist_ok=True)
    path = tmp_path / "pipelines" / "demo.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    return [str(p) for p in raised.value.problems]


@pytest.mark.parametrize(("block", "line", "expected"), [
    ("rollout:\n  steps: [25, 5, 100]\n", 6, "rollout: steps: [25, 5, 100] must "
     "increase"),
    ("rollout:\n  steps: [5, 50]\n", 6, "a canary ends at 100"),
    ("rollout:\n  steps: [0, 100]\n", 6, "from 1 to 100"),
    ("rollout:\n  mode: ab\n  steps: [50]\n  gates: {metric: null}\n", 6,
     "decides on the metric"),
    ("rollout:\n  mode: blue-green\n", 7, "rollout.mode: "),
    ("rollout:\n  gates: {p99_ratio: 0.5}\n", 7, "rollout.gates.p99_ratio: Input should be "
     "greater than 1, got 0.5"),
    ("rollout:\n  min_duration: 2h\n  max_duration: 1h\n", 6, "max_duration is shorter"),
    ("rollout:\n  sticky_by: users\n", 6, "sticky_by: request, entity, or a list"),
])
def test_a_bad_rollout_block_names_its_file_line_and_field(
        tmp_path: Path, block: str, line: int, expected: str) -> None:
    found = problems(tmp_path, BASE + block)
    assert any(f"demo.yaml:{line}: " in p and expected in p for p in found), found


def test_a_rollout_needs_a_served_registry_model(tmp_path: Path) -> None:
    text = BASE.replace("serve: {}\n", "") + "rollout: {}\n"
    assert any("needs registry.model_name and a `serve:` block" in p
               for p in problems(tmp_path, text))


def test_the_defaults_are_a_gated_canary(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    path = tmp_path / "pipelines" / "demo.yaml"
    path.write_text(BASE + "rollout: {}\n")
    rollout = load_spec(path).spec.rollout
    assert rollout is not None
    assert (rollout.mode, rollout.steps, rollout.min_requests) == ("canary", [5, 25, 50, 100], 200)
    assert rollout.gates.error_rate == 0.05 and rollout.gates.p99_ratio == 2.0
    assert rollout.gates.metric is not None and rollout.gates.metric.alpha == 0.05
