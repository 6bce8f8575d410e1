"""The generated CI files: GitHub's and GitLab's own schemas as judges (bundled with
check-jsonschema, offline), then what the jobs do, what they cache and what they install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline import __version__
from loopline.ci.workflows import (
    GITHUB_WORKFLOW,
    GITLAB_CI,
    REPORT_DIR,
    loopline_requirement,
    render_github_workflow,
    render_gitlab_ci,
    render_requirements,
    write_ci_files,
)

STORE = {".dvc/cache", "artifacts/", "mlflow.db", "mlruns/"}
# The first major of each action that runs on Node 24 (GitHub removed Node 20 from runners).
MIN_MAJOR = {"actions/checkout": 5, "actions/setup-python": 6, "actions/cache": 5,
             "actions/cache/restore": 5, "actions/cache/save": 5, "actions/upload-artifact": 6}


def check_schema(schema: str, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema on a file, with a schema it bundles: no network."""
    path = tmp_path / f"ci-{len(list(tmp_path.iterdir()))}.yml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(path)], capture_output=True, text=True, timeout=120)


def github() -> dict[str, Any]:
    return yaml.safe_load(render_github_workflow())


def gitlab() -> dict[str, Any]:
    return yaml.safe_load(render_gitlab_ci())


def gitlab_job(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends:` template merged in, as GitLab sees it."""
    job = dict(document[name])
    base = document[job.pop("extends")] if "extends" in job else {}
    return {**base, **job}


def step(job: dict[str, Any], uses: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if s.get("uses", "").split("@")[0] == uses]
    assert len(found) == 1, (uses, found)
    return found[0]


def run_steps(job: dict[str, Any]) -> str:
    return "\n".join(s["run"] for s in job["steps"] if "run" in s)


def lines(block: str) -> set[str]:
    return {line.strip() for line in block.splitlines() if line.strip()}


# --- the schemas -------------------------------------------------------------------------

def test_github_workflow_passes_githubs_schema(tmp_path: Path) -> None:
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = check_schema(schema, render_github_workflow(), tmp_path)
        assert result.returncode == 0, (schema, result.stdout + result.stderr)


def test_gitlab_ci_passes_gitlabs_schema(tmp_path: Path) -> None:
    result = check_schema("vendor.gitlab-ci", render_gitlab_ci(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    """The checks above can fail: one misspelt key and each schema says which."""
    broken = render_github_workflow().replace("runs-on:", "runs_on:", 1)
    result = check_schema("vendor.github-workflows", broken, tmp_path)
    assert result.returncode != 0 and "runs-on" in result.stdout, result.stdout
    broken = render_gitlab_ci().replace("\n  script:", "\n  scripts:", 1)
    result = check_schema("vendor.gitlab-ci", broken, tmp_path)
    assert result.returncode != 0 and "scripts" in result.stdout, result.stdout
    broken = render_gitlab_ci().replace("policy: pull\n", "policy: pul\n", 1)
    result = check_schema("vendor.gitlab-ci", broken, tmp_path)
    assert result.returncode != 0 and "pul" in result.stdout, result.stdout


# --- GitHub ------------------------------------------------------------------------------

def test_github_triggers_permissions_and_concurrency() -> None:
    workflow = github()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    assert triggers["push"] == {"branches": ["main"]}
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    concurrency = workflow["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert set(workflow["jobs"]) == {"pr", "main"}
    assert workflow["jobs"]["pr"]["if"] == "github.event_name == 'pull_request'"
    main_if = workflow["jobs"]["main"]["if"]
    assert "github.ref == 'refs/heads/main'" in main_if and "!= 'pull_request'" in main_if


def test_github_actions_are_current_majors() -> None:
    used = [s["uses"] for job in github()["jobs"].values() for s in job["steps"] if "uses" in s]
    assert {u.split("@")[0] for u in used} == set(MIN_MAJOR) - {"actions/cache"}
    for uses in used:
        action, version = uses.split("@")
        assert re.fullmatch(r"v\d+", version), uses  # a major tag, updated by its owners
        assert int(version[1:]) >= MIN_MAJOR[action], uses


def test_github_pr_job_checks_out_history_caches_and_runs_ci_pr() -> None:
    job = github()["jobs"]["pr"]
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] > 0
    assert step(job, "actions/checkout")["with"]["fetch-depth"] == 0
    python = step(job, "actions/setup-python")["with"]
    assert python["python-version"] == "3.11" and python["cache"] == "pip"
    assert lines(python["cache-dependency-path"]) == {"requirements.txt", "pyproject.toml"}
    # Restore only: a PR starts from main's newest store and never saves its own.
    store = step(job, "actions/cache/restore")["with"]
    assert lines(store["path"]) == STORE
    assert "${{ github.run_id }}" in store["key"]
    (prefix,) = lines(store["restore-keys"])
    assert store["key"].startswith(prefix) and prefix.endswith("-")
    ci = next(s for s in job["steps"] if "loopline ci pr" in s.get("run", ""))
    assert ci["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "secrets.MLFLOW_TRACKING_URI" in ci["env"]["SHARED_MLFLOW_URI"]
    assert "loopline ci main" not in run_steps(job)
    upload = step(job, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == f"{REPORT_DIR}/" == "loopline-ci/"
    names = [s.get("uses", s.get("name", "")).split("@")[0] for s in job["steps"]]
    assert names.index("actions/cache/restore") < names.index("Install") < \
        names.index("loopline ci pr") < names.index("actions/upload-artifact")


def test_github_main_job_runs_ci_main_and_saves_the_store_prs_restore() -> None:
    jobs = github()["jobs"]
    job = jobs["main"]
    assert step(job, "actions/checkout")["with"]["fetch-depth"] == 0
    assert step(job, "actions/setup-python")["with"]["cache"] == "pip"
    restore, save = step(job, "actions/cache/restore"), step(job, "actions/cache/save")
    assert lines(restore["with"]["path"]) == lines(save["with"]["path"]) == STORE
    assert save["with"]["key"] == f"${{{{ steps.{restore['id']}.outputs.cache-primary-key }}}}"
    assert save["if"] == "${{ !cancelled() }}"  # a promotion before a failure is kept
    # What main saves is what a PR's restore-keys prefix finds.
    (prefix,) = lines(step(jobs["pr"], "actions/cache/restore")["with"]["restore-keys"])
    assert restore["with"]["key"].startswith(prefix)
    assert lines(restore["with"]["restore-keys"]) == {prefix}
    assert "loopline ci main" in run_steps(job) and "loopline ci pr" not in run_steps(job)
    upload = step(job, "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["path"] == "loopline-ci/"


def test_github_comments_say_why() -> None:
    text = render_github_workflow()
    assert "fetch-depth: 0" in text and "base branch" in text
    assert "MLFLOW_TRACKING_URI as a repository secret" in text
    assert "fork" in text and "step summary" in text


# --- GitLab ------------------------------------------------------------------------------

def test_gitlab_rules_jobs_and_commands() -> None:
    document = gitlab()
    assert document["workflow"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert document["default"]["image"] == "python:3.11-slim"
    assert document["variables"]["GIT_DEPTH"] == "0"
    assert document["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    jobs = {name for name in document if not name.startswith(".")} - {
        "workflow", "default", "variables"}
    assert jobs == {"loopline-pr", "loopline-main"}
    pr, main = gitlab_job(document, "loopline-pr"), gitlab_job(document, "loopline-main")
    assert pr["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert main["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert pr["script"][-1] == "loopline ci pr" and main["script"] == ["loopline ci main"]
    assert pr["interruptible"] is True and "interruptible" not in main
    assert main["resource_group"]
    for job in (pr, main):
        assert "git" in job["before_script"][0]  # the slim image has none
        assert job["artifacts"]["paths"] == ["loopline-ci/"]
        assert job["artifacts"]["when"] == "always"


def test_gitlab_caches_pip_by_lock_files_and_the_store_by_branch() -> None:
    document = gitlab()
    pr, main = gitlab_job(document, "loopline-pr"), gitlab_job(document, "loopline-main")
    for job in (pr, main):
        pip, store = job["cache"]
        assert pip["key"]["files"] == ["requirements.txt", "pyproject.toml"]
        assert pip["paths"] == [".cache/pip"]
        assert store["key"] == "loopline-store-$CI_DEFAULT_BRANCH"
        assert set(store["paths"]) == STORE
    assert pr["cache"][1]["policy"] == "pull"  # an MR never writes the store
    assert main["cache"][1]["policy"] == "pull-push" and main["cache"][1]["when"] == "always"


def test_gitlab_documents_its_variables() -> None:
    text = render_gitlab_ci()
    assert "LOOPLINE_GITLAB_TOKEN" in text and "masked" in text
    assert "MLFLOW_TRACKING_URI" in text


# --- installing --------------------------------------------------------------------------

def install_script(kind: str) -> str:
    if kind == "github":
        return next(s["run"] for s in github()["jobs"]["pr"]["steps"] if s.get("name") ==
                    "Install")
    return "\n".join(gitlab()[".loopline"]["before_script"][1:])


@pytest.mark.parametrize("kind,shell", [("github", "bash"), ("gitlab", "sh")])
@pytest.mark.parametrize("project,installs", [
    ({"requirements.txt": "x\n", "pyproject.toml": "[project]\n"}, ["-m pip install -r "
                                                                    "requirements.txt"]),
    ({"pyproject.toml": "[project]\nname = 'p'\n"}, ["-m pip install -e ."]),
    ({"pyproject.toml": "[tool.ruff]\n"}, ["-m pip install LOOPLINE_PIN"]),
])
def test_install_prefers_requirements_then_pyproject_then_the_pin(
        tmp_path: Path, kind: str, shell: str, project: dict[str, str],
        installs: list[str]) -> None:
    """The install step, run for real with a stand-in `python` that logs what it is asked,
    and no `loopline` on PATH, so the last resort (the pinned loopline) shows too."""
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/log\n')
    fake.chmod(0o755)
    work = tmp_path / "project"
    work.mkdir()
    for name, text in project.items():
        (work / name).write_text(text)
    script = install_script(kind).replace("loopline --version", "true")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOOPLINE_REQUIREMENT": "LOOPLINE_PIN"}
    result = subprocess.run([shell, "-e", "-c", script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    logged = (tmp_path / "log").read_text().splitlines()
    expected = installs if installs == ["-m pip install LOOPLINE_PIN"] else \
        [*installs, "-m pip install LOOPLINE_PIN"]  # the stand-in installs no loopline
    assert logged == expected


def test_the_pin_is_this_loopline() -> None:
    assert loopline_requirement() == f"loopline[ml,feast,drift,serve]=={__version__}"
    assert loopline_requirement() in render_requirements().splitlines()
    for text in (render_github_workflow(), render_gitlab_ci()):
        assert f'LOOPLINE_REQUIREMENT: "{loopline_requirement()}"' in text
        assert "@" not in re.sub(r"uses: \S+@v\d+", "", text)  # every placeholder filled


def test_python_version_is_filled_in_and_checked() -> None:
    assert yaml.safe_load(render_gitlab_ci("3.12"))["default"]["image"] == "python:3.12-slim"
    pr = yaml.safe_load(render_github_workflow("3.12"))["jobs"]["pr"]
    assert step(pr, "actions/setup-python")["with"]["python-version"] == "3.12"
    for bad in ("3", "3.11; rm -rf /", "3.11\n", "python3.11"):
        with pytest.raises(ValueError, match=r"such as 3\.11"):
            render_github_workflow(bad)


# --- writing -----------------------------------------------------------------------------

def test_write_ci_files_writes_both_and_the_requirements_they_install(tmp_path: Path) -> None:
    written = write_ci_files(tmp_path)
    assert written == [tmp_path / GITHUB_WORKFLOW, tmp_path / GITLAB_CI,
                       tmp_path / "requirements.txt"]
    assert (tmp_path / ".github/workflows/loopline.yml").read_text() == render_github_workflow()
    assert (tmp_path / ".gitlab-ci.yml").read_text() == render_gitlab_ci()
    assert (tmp_path / "requirements.txt").read_text() == render_requirements()
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers


def test_write_ci_files_refuses_to_overwrite_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / ".gitlab-ci.yml").write_text("mine\n")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path / ".gitlab-ci.yml"))):
        write_ci_files(tmp_path)
    # Refused before anything was written: no half-done set.
    assert not (tmp_path / ".github").exists() and not (tmp_path / "requirements.txt").exists()
    assert (tmp_path / ".gitlab-ci.yml").read_text() == "mine\n"
    assert write_ci_files(tmp_path, gitlab=False) == [tmp_path / GITHUB_WORKFLOW,
                                                      tmp_path / "requirements.txt"]
    with pytest.raises(FileExistsError, match=r"loopline\.yml exists"):
        write_ci_files(tmp_path, gitlab=False)
    written = write_ci_files(tmp_path, force=True)
    assert written == [tmp_path / GITHUB_WORKFLOW, tmp_path / GITLAB_CI]  # requirements kept
    assert (tmp_path / ".gitlab-ci.yml").read_text() == render_gitlab_ci()


def test_write_ci_files_keeps_a_projects_own_dependency_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    assert write_ci_files(tmp_path, github=False) == [tmp_path / GITLAB_CI]
    assert not (tmp_path / "requirements.txt").exists()
    assert write_ci_files(tmp_path / "..", github=False, gitlab=False) == []
    with pytest.raises(FileNotFoundError):
        write_ci_files(tmp_path / "nope")


@pytest.mark.skipif(os.name != "posix", reason="POSIX rename rules")
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / ".gitlab-ci.yml"
    target.mkdir()  # a folder where the file goes: the rename fails
    with pytest.raises(OSError):
        write_ci_files(tmp_path, force=True, github=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitlab-ci.yml"]
