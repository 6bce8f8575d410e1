"""`loopline init` writes the project's CI files: they pass GitHub's and GitLab's schemas, git
would commit them (and not what CI leaves behind), and the project still validates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopline.ci.workflows import (
    loopline_requirement,
    render_github_workflow,
    render_gitlab_ci,
)
from tests.support import subprocess_cli

CI_FILES = {".github/workflows/loopline.yml": "vendor.github-workflows",
            ".gitlab-ci.yml": "vendor.gitlab-ci"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    target = tmp_path_factory.mktemp("ci") / "new"
    result = subprocess_cli("init", str(target))
    assert result.returncode == 0, result.stderr
    return target, result.stderr


def test_init_writes_both_ci_files_and_says_so(project: tuple[Path, str]) -> None:
    target, message = project
    assert (target / ".github/workflows/loopline.yml").read_text() == render_github_workflow()
    assert (target / ".gitlab-ci.yml").read_text() == render_gitlab_ci()
    for name in (*CI_FILES, "requirements.txt"):
        assert name in message, message
    # What the workflows install: this loopline, pinned, with what a CI job needs.
    requirements = (target / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if not line.startswith("#")] == \
        [loopline_requirement()]
    for path in ("pipelines/train.yaml", "params.yaml", "dvc.yaml", "README.md"):
        assert (target / path).exists(), path
    assert "loopline ci pr" in (target / "README.md").read_text()


def test_the_projects_ci_files_pass_the_public_schemas(project: tuple[Path, str]) -> None:
    target, _ = project
    for name, schema in CI_FILES.items():
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
             str(target / name)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (name, result.stdout + result.stderr)
        assert yaml.safe_load((target / name).read_text())  # and read back as YAML


def test_the_project_still_validates(project: tuple[Path, str]) -> None:
    target, _ = project
    result = subprocess_cli("validate-spec", str(target / "pipelines/train.yaml"))
    assert result.returncode == 0, result.stderr


def test_git_commits_the_ci_files_and_ignores_what_ci_leaves(project: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    if not shutil.which("git"):
        pytest.skip("no git")
    target = tmp_path / "repo"
    shutil.copytree(project[0], target)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    left_behind = ["artifacts/x", "mlflow.db", "mlflow.db.lock", "mlruns/1/model.pkl",
                   "loopline-ci/report.md", ".loopline/logs/x"]
    kept = [*CI_FILES, "requirements.txt", "params.yaml", "dvc.yaml"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *left_behind, *kept],
                             cwd=target, capture_output=True, text=True).stdout.split()
    assert ignored == left_behind


def test_ci_init_adds_the_files_to_an_existing_project_and_never_overwrites(
        project: tuple[Path, str], tmp_path: Path) -> None:
    target = tmp_path / "existing"
    shutil.copytree(project[0], target)
    for name in CI_FILES:
        (target / name).unlink()
    made = subprocess_cli("ci", "init", str(target))
    assert made.returncode == 0, made.stderr
    assert (target / ".github/workflows/loopline.yml").read_text() == render_github_workflow()
    assert ".gitlab-ci.yml" in made.stderr
    (target / ".gitlab-ci.yml").write_text("# ours\n")
    refused = subprocess_cli("ci", "init", str(target))
    assert refused.returncode == 1 and "loopline.yml exists; --force overwrites it" in \
        refused.stderr
    assert (target / ".gitlab-ci.yml").read_text() == "# ours\n"  # untouched
    forced = subprocess_cli("ci", "init", str(target), "--force", "--no-github")
    assert forced.returncode == 0 and (target / ".gitlab-ci.yml").read_text() == \
        render_gitlab_ci()
    elsewhere = subprocess_cli("ci", "init", str(tmp_path))
    assert elsewhere.returncode == 2 and "no pipelines/ folder" in elsewhere.stderr
