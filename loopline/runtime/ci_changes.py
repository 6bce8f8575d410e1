"""What a branch changed in one pipeline, compared with its base branch: `loopline ci pr`
shows reviewers the params and resolved spec values that differ, so a changed learning rate
or a loosened gate is seen in the report, not found in a YAML diff.

The base side is read from git (no checkout: others may be working in the tree), written
into a temporary project with the same layout and loaded by the spec layer alone, so a base
whose components have since changed still compares.
"""

from __future__ import annotations

import enum
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.integrations import git_refs
from loopline.spec.errors import SpecError
from loopline.spec.load import LoadedSpec, load_spec
from loopline.spec.params import load_params
from loopline.spec.profile import active_profile, profile_file
from loopline.spec.yaml_lines import load_text

# Besides the spec and its params file: what else decides what a pipeline does.
WATCHED = ("pipelines/", "feature_repo/", "expectations/")


class Missing(enum.Enum):
    """The side of a change where the key does not exist (added or removed)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing.MISSING


@dataclass(frozen=True)
class Change:
    """One dotted key whose value differs; a whole added or removed section is one change."""

    key: str
    base: Any
    head: Any


@dataclass(frozen=True)
class SpecChanges:
    """The comparison of one spec with its base; `note` says why nothing could be compared."""

    base_ref: str | None = None
    base_commit: str | None = None
    note: str = ""
    params: list[Change] = field(default_factory=list)
    spec: list[Change] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        """Whether the values were compared (an empty diff then means "nothing changed")."""
        return not self.note


def diff(base: Any, head: Any, prefix: str = "") -> list[Change]:
    """Keys whose values differ, dotted as `loopline.spec.params.flatten` dots them, sorted.

    Mappings are walked; a key on one side only is one change with MISSING on the other,
    however much lies under it. Lists and scalars compare whole and by type: `500` and
    `500.0` are different settings for a model.
    """
    return sorted(_walk(base, head, prefix), key=lambda change: change.key)


def _walk(base: Any, head: Any, prefix: str) -> Iterator[Change]:
    if isinstance(base, dict) and isinstance(head, dict):
        for key in dict.fromkeys([*base, *head]):
            dotted = f"{prefix}.{key}" if prefix else str(key)
            yield from _walk(base.get(key, MISSING), head.get(key, MISSING), dotted)
    elif not _same(base, head):
        yield Change(prefix, base, head)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (YAML's `true` is not `1`)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def spec_changes(loaded: LoadedSpec, explicit_base: str | None = None,
                 env: Mapping[str, str] | None = None) -> SpecChanges:
    """Compare `loaded` (as the caller loaded it: its profile and overrides included) with
    the same spec at the merge base of HEAD and the base branch."""
    env = os.environ if env is None else env
    root = loaded.project_root
    if reason := git_refs.problem(root):
        return SpecChanges(note=reason)
    ref = git_refs.base_ref(root, explicit_base, env)
    if ref is None:
        tried = ", ".join(git_refs.base_candidates(explicit_base, env))
        return SpecChanges(note=f"no base branch found (tried {tried})")
    base = git_refs.merge_base(root, ref)
    if base is None:
        hint = (": the clone is shallow, fetch the whole history (actions/checkout "
                "fetch-depth: 0, GitLab GIT_DEPTH: 0)") if git_refs.is_shallow(root) else ""
        return SpecChanges(base_ref=ref, note=f"HEAD and {ref} share no commit{hint}")
    short = git_refs.short_sha(root, base) or base[:12]
    try:
        spec_rel = loaded.path.relative_to(root).as_posix()
    except ValueError:
        return SpecChanges(ref, short, f"{loaded.path} lies outside the project {root}")
    params_rel = _relative(loaded.spec.params_file)
    profile = _profile()
    watched = [spec_rel, *WATCHED]
    if params_rel is not None:
        watched.append(params_rel)
        if profile:
            watched.append(profile_file(Path(params_rel), profile).as_posix())
    files = git_refs.changed_files(root, ref, list(dict.fromkeys(watched)))
    base_text = git_refs.file_at(root, base, spec_rel)
    if base_text is None:
        return SpecChanges(ref, short, f"{spec_rel} is new on this branch", files=files)
    note, base_params, base_resolved = _load_base(root, base, spec_rel, base_text, profile)
    params = diff(base_params, loaded.params.values) if base_params is not None else []
    spec = diff(base_resolved, loaded.resolved) if base_resolved is not None else []
    return SpecChanges(ref, short, note, params, spec, files)


def _relative(value: str) -> str | None:
    """A params file named relative to the project root, normalised; None when absolute (the
    same file on both sides, outside git's view)."""
    if Path(value).is_absolute():
        return None
    return posixpath.normpath(value.replace(os.sep, "/"))


def _profile() -> str | None:
    """The active profile, or None when its name is invalid (the head load would have said)."""
    try:
        return active_profile()
    except SpecError:
        return None


def _load_base(root: Path, commit: str, spec_rel: str, spec_text: str, profile: str | None,
               ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(note, params values, resolved spec) of the base. Its params file is the one the base
    spec names; its params still compare when its spec no longer loads."""
    params_name = "params.yaml"
    try:
        data = load_text(spec_text, spec_rel).data
        if isinstance(data, dict) and data.get("params_file") is not None:
            params_name = str(data["params_file"])
    except SpecError:
        pass  # load_spec below reports it
    params_rel = _relative(params_name)
    with tempfile.TemporaryDirectory(prefix="loopline-base-") as tmp:
        # As deep as the params file climbs (`../shared/params.yaml`), so it stays inside.
        ups = 0 if params_rel is None else params_rel.split("/").count("..")
        project = Path(tmp).joinpath(*["project"] * (ups + 1))
        _write(project / spec_rel, spec_text)
        to_copy = [] if params_rel is None else [params_rel]
        if profile and params_rel is not None:
            to_copy.append(profile_file(Path(params_rel), profile).as_posix())
        for rel in to_copy:
            if (text := git_refs.file_at(root, commit, rel)) is not None:
                _write(project / rel, text)
        params: dict[str, Any] | None = None
        try:
            params_path = project / params_name
            params = load_params(params_path, params_name, None, params_name).values
            resolved = load_spec(project / spec_rel).resolved
        except SpecError as exc:
            what = "spec" if params is not None else "params file"
            return f"the base's {what} does not load: {_problem(exc, tmp)}", params, None
    return "", params, resolved


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _problem(exc: SpecError, tmp: str) -> str:
    """The first problem, located in the project (never in the temporary folder)."""
    first = exc.problems[0] if exc.problems else None
    text = str(first) if first else str(exc)
    for part in (str(Path(tmp).resolve()), tmp):
        text = text.replace(part + os.sep, "")
    while text.startswith("project" + os.sep):
        text = text.removeprefix("project" + os.sep)
    more = len(exc.problems) - 1
    return text + (f" (and {more} more)" if more > 0 else "")
