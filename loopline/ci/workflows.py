"""The CI files a Loopline project needs: a GitHub Actions workflow and a GitLab CI file that
run `loopline ci pr` on pull/merge requests and `loopline ci main` on the default branch.

The files are kept as YAML templates (`templates/`, package data) so that they read exactly
as the user gets them; only the Python version, the loopline pin and the report folder are
filled in. `loopline init` and `loopline ci init` write them (docs/ci.md).
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

from loopline import __version__

GITHUB_WORKFLOW = Path(".github") / "workflows" / "loopline.yml"
GITLAB_CI = Path(".gitlab-ci.yml")
REQUIREMENTS = Path("requirements.txt")
# Where `loopline ci pr|main` writes its report; both CI files keep it as an artifact.
REPORT_DIR = "loopline-ci"
# What a CI job needs to train, evaluate, register and serve: not the orchestrators.
LOOPLINE_EXTRAS = "ml,feast,drift,serve"
# A Python the official images and setup-python both have ("3.11", "3.12", ...).
_PYTHON = re.compile(r"3\.\d{1,2}")
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def loopline_requirement() -> str:
    """The pin CI installs: the loopline that wrote the files, so CI runs what was tested."""
    return f"loopline[{LOOPLINE_EXTRAS}]=={__version__}"


def render_requirements() -> str:
    """The requirements.txt the generated workflows install from."""
    return ("# What CI installs (.github/workflows/loopline.yml, .gitlab-ci.yml): add your own\n"
            "# libraries here, pinned, so CI runs what you run.\n"
            f"{loopline_requirement()}\n")


def render_github_workflow(python: str = "3.11") -> str:
    """`.github/workflows/loopline.yml`: job `pr` on pull requests, job `main` on pushes."""
    return _render("github.yml", python)


def render_gitlab_ci(python: str = "3.11") -> str:
    """`.gitlab-ci.yml`: `loopline-pr` on merge requests, `loopline-main` on the default
    branch."""
    return _render("gitlab.yml", python)


def _render(template: str, python: str) -> str:
    # The version lands in a YAML string and an image tag: anything else could break both.
    if not _PYTHON.fullmatch(python):
        raise ValueError(f"python {python!r}: give a version such as 3.11")
    text = (files("loopline.ci") / "templates" / template).read_text(encoding="utf-8")
    for name, value in (("PYTHON", python), ("REQUIREMENT", loopline_requirement()),
                        ("REPORT_DIR", REPORT_DIR), ("VERSION", __version__)):
        text = text.replace(f"@{name}@", value)
    if left := _PLACEHOLDER.search(text):
        raise RuntimeError(f"templates/{template}: {left.group()} is not filled in")
    return text


def write_ci_files(project_root: Path, *, force: bool = False, github: bool = True,
                   gitlab: bool = True) -> list[Path]:
    """Write the chosen CI files into a project and return the paths written.

    A project that declares its dependencies nowhere (no requirements.txt, no pyproject.toml)
    also gets the requirements.txt the workflows install from; one that has either keeps it.
    Every file is checked before any is written, so a refusal leaves the project as it was:
    FileExistsError names the first CI file that exists when `force` is False. Each file is
    written to a temporary name and renamed, so no reader ever sees half a file.
    """
    root = Path(project_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    wanted: list[tuple[Path, str]] = []
    if github:
        wanted.append((GITHUB_WORKFLOW, render_github_workflow()))
    if gitlab:
        wanted.append((GITLAB_CI, render_gitlab_ci()))
    if not force:
        for relative, _ in wanted:
            if (root / relative).exists():
                raise FileExistsError(f"{root / relative} exists; --force overwrites it")
    if wanted and not (root / REQUIREMENTS).exists() and not (root / "pyproject.toml").exists():
        wanted.append((REQUIREMENTS, render_requirements()))
    written = []
    for relative, text in wanted:
        _write_atomic(root / relative, text)
        written.append(root / relative)
    return written


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
