"""`loopline ci pr` and `loopline ci main` end to end on a real project in a real git
repository: the scaffold's pipeline (3,000 real flights) with a champion trained on `main`,
then branches.

GitHub cannot be reached from tests: a fake GitHub API (tests/support/fake_forge.py, a real
HTTP server on 127.0.0.1) stands in for it, reached through GITHUB_API_URL as in Actions.
Every `loopline ci` here is a real subprocess (the command users run in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from loopline.cli.init import create_project
from tests.support import subprocess_cli
from tests.support.fake_forge import FakeGitHub

pytestmark = pytest.mark.slow
TOKEN = "ghp_PLANTEDsecret0123456789abcdef"
PR = 7
GIT_ENV = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(project: Path, *args: str) -> str:
    result = subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=project,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, **GIT_ENV})
    assert result.returncode == 0, result.stderr
    return result.stdout


def edit_yaml(path: Path, change: dict) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffold with a 2,400-row CI sample (of 3,000: about 600 eval rows, enough for the
    gate's 500 to compare with the champion), committed on main, its champion v1 trained."""
    project = create_project(tmp_path_factory.mktemp("ci") / "project")
    edit_yaml(project / "pipelines/train.yaml", {"ci.sample": {"rows": 2400, "seed": 0},
                                                 # 10 single-row calls per model, not 200:
                                                 # the suite times no latency here
                                                 "steps.evaluate.params.latency_rows": 10})
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "main")
    result = subprocess_cli("run", "pipelines/train.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A copy per test: its own branch, report folder and artifacts (the champion's model
    files stay where v1 recorded them, read only)."""
    copy = tmp_path / "project"
    shutil.copytree(trained, copy, symlinks=True)
    git(copy, "checkout", "-q", "-b", "feature")
    return copy


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        yield server


def actions_env(github: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": PR}}))
    return {"GITHUB_API_URL": github.url, "GITHUB_REPOSITORY": "acme/flights",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_REF": f"refs/pull/{PR}/merge",
            "GITHUB_BASE_REF": "main", "GITHUB_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def ci(project: Path, *args: str, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess_cli("ci", *args, cwd=project, env={**GIT_ENV, **(env or {})})


def test_a_pull_request_gets_one_sticky_comment_with_the_gate_and_the_changed_params(
        project: Path, github: FakeGitHub, tmp_path: Path) -> None:
    edit_yaml(project / "params.yaml", {"gate.min_roc_auc": 0.56, "notes.owner": TOKEN})
    git(project, "commit", "-q", "-am", "a stricter gate")
    env = actions_env(github, tmp_path)

    first = ci(project, "pr", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    report = first.stdout
    assert "pull request: ✅ passed" in report
    # Quality against the base branch trained on the same sample (a sample-trained model
    # against an all-rows champion would measure the sample); the champion beside it.
    assert "quality against the base branch" in report and "| roc_auc vs base |" in report
    assert "**Against the production champion v1** (on the same" in report
    assert "| `gate.min_roc_auc` | `0.55` | `0.56` |" in report
    assert "`pipelines/train.yaml` ✅" in report and "```mermaid" in report
    assert "sampled 2,400 of 3,000 rows" in report  # the declared sample, not all rows
    # One comment, marked, holding the report; then the same comment is updated in place.
    [comment] = github.bodies(PR)
    assert comment.startswith("<!-- loopline-ci: pr -->") and "champion v1" in comment
    again = ci(project, "pr", env=env)
    assert again.returncode == 0, again.stderr
    assert len(github.bodies(PR)) == 1
    assert [r.method for r in github.writes()] == ["POST", "PATCH"]

    # A fork's read-only token: 403, and the report lands in the step summary instead.
    github.refuse_writes = (403, "Resource not accessible by integration")
    forked = ci(project, "pr", env=env)
    assert forked.returncode == 0, forked.stderr
    assert "403" in forked.stderr
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "No pull request comment" in summary and summary.count("## Loopline CI") == 3

    # The planted token (in the environment, and as a changed param) never leaves in any
    # output, though the fake server saw it in the Authorization header of every call.
    written = [*(p.read_text() for p in (project / "loopline-ci").rglob("*.md")),
               *(p.read_text() for p in (project / "loopline-ci").rglob("*.json")), summary,
               *github.bodies(PR)]
    for run in (first, again, forked):
        written += [run.stdout, run.stderr]
    assert not [text for text in written if TOKEN in text]
    assert "| `notes` | *(absent)* |" in report  # the param is reported, its value hidden
    assert {r.headers["authorization"] for r in github.requests} == {f"Bearer {TOKEN}"}


def test_a_failed_gate_exits_1_and_names_the_check_with_its_numbers(project: Path) -> None:
    edit_yaml(project / "params.yaml", {"gate.min_roc_auc": 0.99})
    failed = ci(project, "pr")
    assert failed.returncode == 1, failed.stderr
    assert "❌ 1 check failed" in failed.stdout
    assert "roc_auc (min)" in failed.stdout and "< min 0.99" in failed.stdout
    facts = json.loads((project / "loopline-ci/report.json").read_text())
    assert facts["exit_code"] == 1 and "< min 0.99" in facts["failures"][0]
    # Report only: the same failure, said as such, and the job goes on.
    reported = ci(project, "pr", "--report-only")
    assert reported.returncode == 0
    assert "report only: the job does not fail" in reported.stdout


def test_a_change_that_hurts_the_model_fails_against_the_base_on_the_same_sample(
        project: Path) -> None:
    spec = project / "pipelines/train.yaml"
    edit_yaml(spec, {"steps.features.params.derived": {},
                     "steps.features.params.categorical": {}})  # distance alone is left
    git(project, "commit", "-q", "-am", "fewer features")
    result = ci(project, "pr")
    assert result.returncode == 1, result.stderr
    failures = [line for line in result.stdout.splitlines() if line.startswith("* ")]
    assert [f for f in failures if "gate: roc_auc" in f and "vs base" in f and "worse by" in f]
    assert "as it is at the base" in result.stderr  # the base was trained, on the sample
    assert "| `steps.features.params.categorical.carrier` | `onehot` | *(absent)* |" \
        in result.stdout


def test_the_sample_is_deterministic(project: Path) -> None:
    """Same seed, same rows, same metrics: a second run recomputes every step (--force)."""
    def metrics(*args: str) -> tuple[dict, dict]:
        result = ci(project, "pr", *args)
        assert result.returncode == 0, result.stderr
        [spec] = [s for s in json.loads((project / "loopline-ci/report.json").read_text())
                  ["specs"] if s["metrics"]]
        quality = {k: v for k, v in spec["metrics"].items() if not k.startswith("latency")}
        return quality, spec["lineage"]["data"]

    (first, data), (second, again) = metrics(), metrics("--force")
    assert first == second and data == again
    assert len(first) >= 5 and 0.5 < first["roc_auc"] < 1


def test_a_broken_spec_and_bad_data_fail_the_job_and_say_where(project: Path) -> None:
    broken = project / "pipelines/broken.yaml"
    broken.write_text((project / "pipelines/train.yaml").read_text()
                      .replace("name: train", "name: broken")
                      .replace("component: train.sklearn", "componnent: train.sklearn"))
    edit_yaml(project / "pipelines/train.yaml", {"steps.validate.params.suite": [
        {"expect_column_values_to_be_between": {"column": "distance", "min_value": 1,
                                                "max_value": 1000}}]})
    result = ci(project, "pr")
    assert result.returncode == 1
    report = result.stdout
    assert "`pipelines/broken.yaml` does not validate" in report
    assert "pipelines/broken.yaml:" in report and "componnent" in report
    assert "**Data validation**: ❌" in report and "distance" in report
    assert "step train" not in report  # bad data stopped it before training


def test_a_merge_runs_the_full_pipeline_into_the_declared_rollout(project: Path,
                                                                  tmp_path: Path) -> None:
    """`ci main` with a `rollout:` declared: the passing version becomes the canary (not the
    champion) and the rollout begins, at its first step; the report says what moved."""
    edit_yaml(project / "pipelines/train.yaml", {"serve": {}, "rollout": {"steps": [5, 100]}})
    git(project, "commit", "-q", "-am", "serve it, roll it out")
    summary = tmp_path / "summary.md"
    result = ci(project, "main", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert "merge to main: ✅ passed" in report
    assert "**What moved**: canary: none → v2." in report
    assert "canary of v2 against champion v1, running at 5 %" in report
    assert "sampled" not in report and "3,000 rows read" in report  # all rows, no sample
    state = json.loads((project / "artifacts/monitoring/my-model/rollout.json").read_text())
    assert (state["challenger"], state["champion"], state["weight"]) == ("2", "1", 5)
    from tests.support import registry_client

    aliases = registry_client(project).get_registered_model("my-model").aliases
    assert (aliases["champion"], aliases["canary"]) == (1, 2)
    assert summary.read_text() == report  # the step summary gets the same report
