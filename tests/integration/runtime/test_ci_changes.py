"""`loopline ci pr` compares a spec with its base branch: real git repositories, real branches,
the scaffold's project, and the places CI puts it (a subfolder, no origin, no git at all)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loopline.integrations import git_refs
from loopline.runtime.ci_changes import MISSING, Change, spec_changes
from loopline.spec.load import load_spec

SCAFFOLD = Path(__file__).resolve().parents[3] / "loopline" / "scaffold_data"


@pytest.fixture(autouse=True)
def _quiet_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Git as on a fresh CI machine: no user or system config, an identity, and no repository
    above tmp_path to fall back on."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Loopline Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@loopline.invalid")
    for name in ("GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        monkeypatch.delenv(name, raising=False)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=repo,
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def project(folder: Path) -> Path:
    """The scaffold's spec and params file (the data is not needed to compare)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SCAFFOLD / "pipelines", folder / "pipelines")
    shutil.copy(SCAFFOLD / "params.yaml", folder / "params.yaml")
    return folder


def repo_with_project(tmp_path: Path, subfolder: str = "", branch: str = "main") -> Path:
    """A repository whose first commit on `branch` holds the project; returns the project."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", branch)
    root = project(repo / subfolder if subfolder else repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def test_a_branch_shows_exactly_the_param_and_step_param_it_changed(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    git(root, "checkout", "-q", "-b", "feature")
    edit(root / "params.yaml", "eval_fraction: 0.25", "eval_fraction: 0.3")
    edit(root / "pipelines" / "train.yaml", "params: {max_iter: 500}", "params: {max_iter: 800}")
    commit_all(root, "tune")
    # main moves on after the branch left it: its changes are not the branch's.
    git(root, "checkout", "-q", "main")
    edit(root / "params.yaml", "min_roc_auc: 0.55", "min_roc_auc: 0.6")
    commit_all(root, "stricter gate on main")
    git(root, "checkout", "-q", "feature")

    changes = spec_changes(load_spec(root / "pipelines" / "train.yaml"), env={})

    assert changes.compared and changes.note == ""
    assert changes.base_ref == "main"
    assert changes.base_commit == git(root, "rev-parse", "--short", "main~1")
    assert changes.params == [Change("data.eval_fraction", 0.25, 0.3)]
    assert changes.spec == [
        Change("steps.ingest.params.split.eval_fraction", 0.25, 0.3),  # after ${...}
        Change("steps.train.params.params.max_iter", 500, 800),
    ]
    assert changes.files == ["params.yaml", "pipelines/train.yaml"]


def test_added_and_removed_keys_are_missing_on_one_side(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    git(root, "checkout", "-q", "-b", "feature")
    spec = root / "pipelines" / "train.yaml"
    edit(spec, "description: Late-arrival classifier on a 3,000-flight sample of nycflights13 "
         "(CC0).\n", "")
    edit(spec, "max_drop_vs_champion: 0.02}",
         "max_drop_vs_champion: 0.02}\n        - {metric: f1, min: 0.3}")
    (root / "params.yaml").write_text((root / "params.yaml").read_text()
                                      + "extra:\n  note: hello\n")
    commit_all(root, "a gate, a section, no description")

    changes = spec_changes(load_spec(spec), env={})

    assert changes.params == [Change("extra", MISSING, {"note": "hello"})]
    assert [c.key for c in changes.spec] == ["description", "steps.evaluate.params.gates"]
    description, gates = changes.spec
    assert description.head is MISSING and description.base.startswith("Late-arrival")
    assert len(gates.base) == 1 and gates.head[1] == {"metric": "f1", "min": 0.3}
    assert repr(MISSING) == "MISSING"


def test_uncommitted_edits_count_even_on_the_base_branch_itself(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    edit(root / "params.yaml", "seed: 7", "seed: 8")  # not committed; HEAD is main's tip
    (root / "pipelines" / "draft.yaml").write_text("name: draft\n")  # untracked, not ignored

    changes = spec_changes(load_spec(root / "pipelines" / "train.yaml"), env={})

    assert changes.base_ref == "main" and changes.note == ""
    assert changes.params == [Change("train.seed", 7, 8)]
    assert [c.key for c in changes.spec] == ["steps.ingest.params.split.seed",
                                             "steps.train.params.seed"]
    assert changes.files == ["params.yaml", "pipelines/draft.yaml"]
    assert git_refs.head(root)["dirty"] is True and git_refs.head(root)["branch"] == "main"


def test_a_spec_new_on_the_branch_says_so(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    git(root, "checkout", "-q", "-b", "feature")
    other = root / "pipelines" / "other.yaml"
    other.write_text((root / "pipelines" / "train.yaml").read_text()
                     .replace("name: train", "name: other"))
    commit_all(root, "another pipeline")

    changes = spec_changes(load_spec(other), env={})

    assert changes.note == "pipelines/other.yaml is new on this branch"
    assert not changes.compared and changes.params == [] and changes.spec == []
    assert changes.files == ["pipelines/other.yaml"]


def test_outside_git_the_note_says_so_and_nothing_raises(tmp_path: Path) -> None:
    root = project(tmp_path / "plain")

    changes = spec_changes(load_spec(root / "pipelines" / "train.yaml"), env={})

    assert changes.note == "not a git repository"
    assert changes.base_ref is None and changes.params == changes.spec == changes.files == []
    assert git_refs.head(root) == {"commit": None, "short": None, "branch": None,
                                   "dirty": False}
    assert git_refs.base_ref(root, None, {}) is None
    assert git_refs.file_at(root, "HEAD", "params.yaml") is None
    assert git_refs.changed_files(root, "main", ["params.yaml"]) == []


def test_without_a_git_program_nothing_raises(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo_with_project(tmp_path)
    loaded = load_spec(root / "pipelines" / "train.yaml")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert spec_changes(loaded, env={}).note == "git is not installed or did not answer"
    assert git_refs.head(root)["commit"] is None
    assert git_refs.merge_base(root, "main") is None


def test_github_base_ref_picks_the_local_branch_when_there_is_no_origin(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path, branch="develop")
    git(root, "branch", "main")
    git(root, "checkout", "-q", "-b", "feature")
    env = {"GITHUB_BASE_REF": "develop"}

    assert git_refs.base_ref(root, None, env) == "develop"
    assert spec_changes(load_spec(root / "pipelines" / "train.yaml"), env=env).base_ref \
        == "develop"
    assert git_refs.base_ref(root, None, {"GITHUB_BASE_REF": "main"}) == "main"
    # origin/<ref> comes first where a remote-tracking branch exists (a CI checkout).
    git(root, "update-ref", "refs/remotes/origin/main", "HEAD")
    assert git_refs.base_ref(root, None, {"GITHUB_BASE_REF": "main"}) == "origin/main"
    # GitLab's variable, then an explicit ref that exists wins over both.
    assert git_refs.base_ref(root, None, {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "develop"}) \
        == "develop"
    assert git_refs.base_ref(root, "develop", {"GITHUB_BASE_REF": "main"}) == "develop"
    # One that does not exist falls through to the next candidate.
    assert git_refs.base_ref(root, "nope", {"GITHUB_BASE_REF": "gone"}) == "origin/main"


def test_no_base_branch_lists_what_was_tried(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path, branch="trunk")

    changes = spec_changes(load_spec(root / "pipelines" / "train.yaml"), "release",
                           env={"GITHUB_BASE_REF": "dev"})

    assert changes.note == ("no base branch found (tried release, origin/dev, dev, origin/main, "
                            "main, origin/master, master)")


def test_a_project_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path, subfolder="ml/churn")
    (tmp_path / "repo" / "README.md").write_text("the repository's own file\n")
    git(root, "checkout", "-q", "-b", "feature")
    edit(root / "params.yaml", "estimator: logistic_regression", "estimator: random_forest")
    edit(tmp_path / "repo" / "README.md", "own", "very own")
    commit_all(root, "a forest")

    changes = spec_changes(load_spec(root / "pipelines" / "train.yaml"), env={})

    assert changes.note == ""
    assert changes.params == [Change("train.estimator", "logistic_regression",
                                     "random_forest")]
    assert [c.key for c in changes.spec] == ["steps.train.params.estimator"]
    assert changes.files == ["params.yaml"]  # relative to the project; README is not watched
    assert git_refs.file_at(root, "main", "params.yaml") == (SCAFFOLD / "params.yaml").read_text()
    assert git_refs.file_at(root, "main", "pipelines") is None  # a folder is no file
    assert git_refs.file_at(root, "main", "../../README.md") is None  # not in main's commit


def test_a_base_spec_that_does_not_load_is_a_note(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    spec = root / "pipelines" / "train.yaml"
    edit(spec, "inputs: {train: features.train,", "inputs: {train: featurs.train,")
    commit_all(root, "a typo lands on main")
    git(root, "checkout", "-q", "-b", "fix")
    edit(spec, "inputs: {train: featurs.train,", "inputs: {train: features.train,")
    edit(root / "params.yaml", "seed: 7", "seed: 9")
    commit_all(root, "fix it")

    changes = spec_changes(load_spec(spec), env={})

    assert changes.note.startswith("the base's spec does not load: pipelines/train.yaml:")
    assert "refers to missing step 'featurs'" in changes.note
    assert "loopline-base-" not in changes.note  # never the temporary folder
    assert changes.spec == []
    assert changes.params == [Change("train.seed", 7, 9)]  # params still compare


def test_head_on_a_detached_checkout(tmp_path: Path) -> None:
    root = repo_with_project(tmp_path)
    sha = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "--detach")

    info = git_refs.head(root)

    assert info == {"commit": sha, "short": git(root, "rev-parse", "--short", "HEAD"),
                    "branch": None, "dirty": False}
    assert git_refs.merge_base(root, "main") == sha
