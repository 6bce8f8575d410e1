"""Hostile and broken specs cost one located line each, quickly: never a traceback, never a
long parse. A seeded fuzz of 1,000 mutated specs, plus the hand-picked cases that used to
crash or hang (custom tags, merges, deep nesting, alias bombs, devices, NUL bytes, broken
component paths, unbounded expressions)."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from loopline.pipeline.load import load_pipeline
from loopline.spec.errors import SpecError
from tests.support import REPO, copy_example

LINE = re.compile(r"^\S.*:\d+: .*: .+")
EXAMPLE = (REPO / "pipelines" / "flights.yaml").read_text()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example; cases live in pipelines/cases/, so no case shares a folder (and so a
    pipeline name) with flights.yaml and every refusal is the case's own."""
    root = copy_example(tmp_path_factory.mktemp("hostile") / "p")
    (root / "pipelines" / "cases").mkdir()
    assert not _outcome(_write(root, "control.yaml", EXAMPLE))  # the unmutated spec loads
    return root


def _write(project: Path, name: str, text: str) -> Path:
    """The case, alone in its folder."""
    for other in (project / "pipelines" / "cases").glob("*.yaml"):
        other.unlink()
    spec = project / "pipelines" / "cases" / name
    spec.write_text(text)
    return spec


def _outcome(spec: Path) -> list[str]:
    """[] when the spec loads; else its problems, each required to be one located line."""
    started = time.perf_counter()
    try:
        load_pipeline(spec)
        problems: list[str] = []
    except SpecError as exc:
        problems = [str(p) for p in exc.problems]
    assert time.perf_counter() - started < 2, spec.read_bytes()[:300]
    for problem in problems:
        assert LINE.match(problem) and "\n" not in problem, problem
    return problems


HOSTILE = {
    "custom tag": "name: !custom x\n",
    "python tag": "name: !!python/name:os.system\n",
    "deep nesting": "name: deep\nsteps: " + "[" * 3000 + "]" * 3000 + "\n",
    "alias bomb": "name: bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
        + "steps: {s: {component: ingest.table, params: *a8}}\n",
    "recursive alias": "name: r\nsteps: &s {a: *s}\n",
    "component without module": "name: c\nsteps: {a: {component: ':X'}}\n",
    "component that runs code": "name: c\nsteps: {a: {component: 'this:X'}}\n",
    "component with a bad path": "name: c\nsteps: {a: {component: 'no such:X'}}\n",
    "power bomb": EXAMPLE.replace("sched_dep_time // 100", "7 ** (10 ** 8)"),
    "text bomb": EXAMPLE.replace("sched_dep_time // 100", "'a' * 100000000"),
    "params file is a device": EXAMPLE.replace("params_file: params.yaml",
                                               "params_file: /dev/zero"),
    "suite is a folder": EXAMPLE.replace("expectations/flights.json", "expectations"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_spec_is_one_located_line(project: Path, case: str) -> None:
    assert _outcome(_write(project, "hostile.yaml", HOSTILE[case])), f"{case}: accepted"


def test_merge_keys_are_yaml(project: Path) -> None:
    spec = _write(project, "merge.yaml", "name: merged\nbase: &b {component: ingest.table}\n"
                  "steps:\n  a:\n    <<: *b\n    params: {source: data.csv}\n")
    problems = _outcome(spec)
    assert any(": base: unknown field" in p for p in problems), problems  # only the anchor's
    assert not any("steps.a" in p for p in problems), problems  # the step got its component


def test_a_nul_byte_in_a_path_is_a_located_line(project: Path) -> None:
    assert _outcome(_write(project, "nul.yaml", EXAMPLE.replace(
        "params_file: params.yaml", "params_file: \"a\\0b\"")))


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        kind = rng.randrange(6)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines[i] = lines[i].replace(":", "", 1)
        elif kind == 2:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut] + rng.choice(["[", "{", "&a", "*a", "!x ", "<<: ", "'",
                                                    "\t", "${", "-", "?", "%"]) + lines[i][cut:]
        elif kind == 3:
            lines.insert(i, " " * rng.randrange(8) + rng.choice(
                ["bogus: 1", "steps: null", "retries: -1", "timeout_s: .nan",
                 "cpu: 1e400", "name: " + "x" * 300, "schedule: often", "- 1"]))
        elif kind == 4:
            lines[i] = re.sub(r"\d+", lambda _: str(rng.choice([0, -1, 10**30])), lines[i])
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def test_a_thousand_mutated_specs_never_crash_or_hang(project: Path) -> None:
    rng = random.Random(20261125)
    refused = 0
    for _ in range(1000):
        refused += bool(_outcome(_write(project, "fuzz.yaml", _mutate(EXAMPLE, rng))))
    assert refused > 500  # most mutations break the spec; each said so in located lines


MEMORY_PROBE = """
import re, tempfile
from pathlib import Path
from loopline.pipeline.load import load_pipeline
from loopline.spec.errors import SpecError
from tests.support import copy_example
from tests.unit.spec.test_hostile_specs import HOSTILE

def peak_kb():  # VmHWM: this process's own peak (ru_maxrss survives exec from a big parent)
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))

root = copy_example(Path(tempfile.mkdtemp()) / "p")
(root / "pipelines" / "cases").mkdir()
before = peak_kb()
for name, text in HOSTILE.items():
    spec = root / "pipelines" / "cases" / "case.yaml"
    spec.write_text(text)
    try:
        load_pipeline(spec)
    except SpecError:
        pass
print(before, peak_kb())
"""


def test_hostile_specs_stay_under_500_mb() -> None:
    """Peak memory of a fresh process that loads every hostile case (the alias bomb took
    2.4 GB and /dev/zero 3.7 GB before the bounds)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE], cwd=REPO, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before_kb, peak_kb = map(int, result.stdout.split())
    assert peak_kb < 500 * 1024, \
        f"peak {peak_kb / 1024:.0f} MB (after imports {before_kb / 1024:.0f} MB)"
