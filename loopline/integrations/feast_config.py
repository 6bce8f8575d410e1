"""A Feast repo's config file as Loopline reads it: `${NAME}` filled from this process's
environment inside string values only (Feast's own loader expands the raw text, so a
password holding `#` or `: ` could change the YAML), an unset variable named, and the
substituted values kept out of every message."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopline.components.contract import StepFailed
from loopline.spec.paths import project_path

DEFAULT_CONFIG = "feature_store.yaml"
# What Feast's own loader expands (os.path.expandvars): $NAME and ${NAME}.
_VARIABLE = re.compile(r"\$(\w+|\{([^}]*)\})", re.ASCII)


def config_path(repo: Path, config: str | Path = DEFAULT_CONFIG) -> Path:
    """The repo's Feast config file: `config` relative to the repo (or absolute)."""
    return project_path(config, repo)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def config_variables(raw: Any) -> list[str]:
    """Environment variables the config's values name (`${NAME}` or `$NAME`), in order."""
    names: dict[str, None] = {}
    for text in _strings(raw):
        for match in _VARIABLE.finditer(text):
            names[match.group(2) if match.group(2) is not None else match.group(1)] = None
    return list(names)


def _expand(value: Any, environ: dict[str, str]) -> Any:
    """The parsed config with `${NAME}` replaced inside string values only, so a value (a
    password with `#`, `: ` or quotes in it) can never change the YAML's structure."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: environ[m.group(2) if m.group(2) is not None
                                               else m.group(1)], value)
    if isinstance(value, dict):
        return {key: _expand(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ) for item in value]
    return value


def _secret_fragments(values: dict[str, str]) -> dict[str, str]:
    """Every substituted value, and the password inside a URL or a `password=` option, each
    mapped to the `${NAME}` that stands for it in messages."""
    from urllib.parse import urlsplit

    fragments: dict[str, str] = {}
    for name, value in values.items():
        fragments[value] = f"${{{name}}}"
        with contextlib.suppress(ValueError):
            if password := urlsplit(value).password:
                fragments[password] = f"<password from ${name}>"
        for part in value.split(","):
            key, sep, secret = part.partition("=")
            if sep and key.strip().lower() == "password" and secret:
                fragments[secret] = f"<password from ${name}>"
    return fragments


def redact(text: str, fragments: dict[str, str]) -> str:
    for fragment in sorted(fragments, key=len, reverse=True):  # longest first
        if len(fragment) >= 3:
            text = text.replace(fragment, fragments[fragment])
    return text


def load_config(repo: Path, config: str | Path = DEFAULT_CONFIG) -> tuple[Any, dict[str, str]]:
    """Feast's RepoConfig from the config file, with `${NAME}` taken from this process's
    environment (as Feast's own loader does), and the fragments to keep out of messages.
    A missing file or an unset variable is a StepFailed that names it; no value is shown."""
    import yaml
    from feast.repo_config import RepoConfig
    from pydantic import ValidationError

    path = config_path(repo, config)
    if not path.is_file():
        raise StepFailed(f"Feast config {path} does not exist (the `config` param names a "
                         f"file in the repo {repo}; default {DEFAULT_CONFIG})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StepFailed(f"Feast config {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise StepFailed(f"Feast config {path} is not a mapping")
    names = config_variables(raw)
    if missing := [name for name in names if not os.environ.get(name)]:
        raise StepFailed(f"Feast config {path.name} reads environment variable(s) "
                         f"{', '.join(missing)}, not set (or empty) in this process; export "
                         "them (pods get them from the spec's secrets)")
    values = {name: os.environ[name] for name in names}
    fragments = _secret_fragments(values)
    try:
        repo_config = RepoConfig(**_expand(raw, values))
    except ValidationError as exc:  # its text quotes input values: name the fields only
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
                             for e in exc.errors())
        raise StepFailed(redact(f"Feast config {path.name}: {problems}", fragments)) from None
    repo_config.repo_path = repo
    return repo_config, fragments


def config_field() -> Any:
    """The `config` param of every Feast component: one default, one description."""
    from pydantic import Field

    return Field(DEFAULT_CONFIG, description="The repo's Feast config file, relative to the "
                 "repo; a production profile points it at e.g. feature_store.production.yaml.")


def repo_problem(repo: Path, config: str | Path) -> tuple[str, str] | None:
    """(param, message) when `repo` is no folder or lacks the config file; None when fine."""
    if not repo.is_dir():
        return "repo", f"no Feast repo at {repo}"
    if not config_path(repo, config).is_file():
        return "config", f"no Feast config {config} in {repo}"
    return None


def repo_sources(repo: Path, config: str | Path) -> list[str]:
    """What a Feast step's cache key reads: the definitions and the config (which stores)."""
    return [str(p) for p in sorted(repo.glob("*.py"))] + [str(config_path(repo, config))]
