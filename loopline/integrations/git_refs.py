"""What git knows about the project: HEAD, the base branch, a file as it was there.

`loopline ci pr` compares a spec with the base branch's. CI machines differ (no git in a step
image, a shallow clone, a checkout owned by another user, a project in a subfolder of the
repository), so every function here asks the `git` CLI and answers None or empty instead of
raising: a report that cannot compare says why, it never fails the job.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TIMEOUT_S = 10
DEFAULT_BASES = ("origin/main", "main", "origin/master", "master")
# GitHub Actions (pull_request events) and GitLab (merge request pipelines) name the target.
BASE_BRANCH_VARIABLES = ("GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    """One git command in `root`; None when git is missing, hangs or `root` is not a folder.

    No optional locks: `git status` would otherwise refresh the index of a tree that others
    are editing. Literal pathspecs: a file named `*.yaml` means that file.
    """
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "--literal-pathspecs", *args], cwd=root,
                              capture_output=True, timeout=TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def _out(root: Path, *args: str) -> str | None:
    """Stripped stdout of a command that succeeded, else None."""
    done = _run(root, *args)
    if done is None or done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace").strip()


def problem(root: Path) -> str | None:
    """Why `root` cannot be asked about (None when it is inside a git work tree), in git's own
    words where it has some: "dubious ownership" in a CI container says what to fix."""
    done = _run(root, "rev-parse", "--is-inside-work-tree")
    if done is None:
        return "git is not installed or did not answer" if root.is_dir() else \
            f"{root} is not a folder"
    if done.returncode == 0 and done.stdout.strip() == b"true":
        return None
    lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
    reason = lines[0].removeprefix("fatal: ").strip() if lines else ""
    if not reason or reason.startswith("not a git repository"):
        return "not a git repository"
    return reason


def head(root: Path) -> dict[str, Any]:
    """HEAD's commit (full and short sha), branch (None when detached, as in a pull request
    checkout) and whether tracked files changed: the "head" side of a report's header."""
    commit = _out(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") or None
    short = _out(root, "rev-parse", "--short", commit) if commit else None
    branch = _out(root, "symbolic-ref", "--quiet", "--short", "HEAD") or None
    status = _out(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "short": short or None, "branch": branch, "dirty": bool(status)}


def base_candidates(explicit: str | None, env: Mapping[str, str]) -> list[str]:
    """The refs `base_ref` tries, in order, without duplicates: shown when none exists."""
    names: list[str] = [explicit] if explicit else []
    for variable in BASE_BRANCH_VARIABLES:
        if branch := env.get(variable, "").strip():
            names += [f"origin/{branch}", branch]
    names += DEFAULT_BASES
    return list(dict.fromkeys(names))


def base_ref(root: Path, explicit: str | None, env: Mapping[str, str]) -> str | None:
    """The branch a change is compared with: the first of `base_candidates` that names a
    commit. HEAD being that branch's tip (a push to main) still returns it: comparing then
    shows only uncommitted edits, and the caller decides what to say."""
    for ref in base_candidates(explicit, env):
        if ref.startswith("-"):  # never an option
            continue
        if _out(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is not None:
            return ref
    return None


def merge_base(root: Path, ref: str) -> str | None:
    """The commit the branch left `ref` at: changes made on the base since are not ours."""
    if ref.startswith("-"):
        return None
    return _out(root, "merge-base", "HEAD", ref) or None


def is_shallow(root: Path) -> bool:
    """A shallow clone (actions/checkout's default depth 1) often has no merge base: say so."""
    return _out(root, "rev-parse", "--is-shallow-repository") == "true"


def short_sha(root: Path, rev: str) -> str | None:
    """An abbreviated sha git itself finds unambiguous, for reports."""
    if rev.startswith("-"):
        return None
    return _out(root, "rev-parse", "--short", f"{rev}^{{commit}}") or None


def _prefix(root: Path) -> str | None:
    """`root` relative to the repository's top level ("" at the top, "ml/" in a subfolder):
    the project may be one folder of a larger repository."""
    done = _run(root, "rev-parse", "--show-prefix")
    if done is None or done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="surrogateescape").strip("\n")


def _in_repo(prefix: str, relpath: str) -> str | None:
    """`relpath` (relative to the project root) relative to the top level; None outside."""
    if posixpath.isabs(relpath) or Path(relpath).is_absolute():
        return None
    path = posixpath.normpath(posixpath.join(prefix, relpath.replace(os.sep, "/")))
    return None if path == ".." or path.startswith("../") or path == "." else path


def file_at(root: Path, ref: str, relpath: str) -> str | None:
    """The text of `relpath` (relative to `root`) at commit `ref`; None when it did not exist
    there (or is a folder, or lies outside the repository). The blob as committed: no
    checkout, so others' work in the tree is never touched."""
    prefix = _prefix(root)
    if prefix is None or ref.startswith("-"):
        return None
    path = _in_repo(prefix, relpath)
    if path is None:
        return None
    done = _run(root, "cat-file", "blob", f"{ref}:{path}")
    if done is None or done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def changed_files(root: Path, ref: str, paths: list[str], untracked: bool = True) -> list[str]:
    """Files under `paths` (relative to `root`) that differ between the merge base with `ref`
    and the working tree: committed on the branch, staged, edited, or (with `untracked`) new
    and not ignored. Sorted, relative to `root`; empty when git cannot tell."""
    prefix = _prefix(root)
    base = merge_base(root, ref)
    if prefix is None or base is None or not paths:
        return []
    specs = [p.replace(os.sep, "/") for p in paths]
    found: set[str] = set()
    diff = _run(root, "diff", "--name-only", "--no-renames", "-z", base, "--", *specs)
    new = _run(root, "ls-files", "--others", "--exclude-standard", "--full-name", "-z",
               "--", *specs) if untracked else None
    for done in (diff, new):
        if done is None or done.returncode != 0:
            continue
        for name in done.stdout.decode("utf-8", errors="surrogateescape").split("\0"):
            if name:  # both print paths relative to the top level
                found.add(posixpath.relpath(name, prefix.rstrip("/") or "."))
    return sorted(found)


def checkout(root: Path, commit: str, at: Path) -> Path | None:
    """The project as it was at `commit`, in a detached worktree at `at` (a fixed place, so
    what runs there keeps the same paths, and cache keys, from one run to the next); the
    project's own folder inside it when it lives in a subfolder. An existing worktree there
    is moved to `commit`. None when git cannot make one; the caller says so."""
    prefix = _prefix(root)
    full = _out(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}") \
        if not commit.startswith("-") else None
    if prefix is None or not full:
        return None
    if (at / ".git").exists() and _out(at, "rev-parse", "HEAD") != full:
        done = _run(at, "checkout", "--quiet", "--detach", "--force", full)
        if done is None or done.returncode != 0:  # not a worktree of ours any more: start over
            _run(root, "worktree", "remove", "--force", str(at))
            shutil.rmtree(at, ignore_errors=True)
    if not (at / ".git").exists():
        _run(root, "worktree", "prune")
        at.parent.mkdir(parents=True, exist_ok=True)
        done = _run(root, "worktree", "add", "--detach", "--force", "--quiet", str(at), full)
        if done is None or done.returncode != 0:
            return None
    return at / prefix if prefix else at
