"""What a step's process gets in its environment, one rule for every place a step runs.

A step that shares no disk with the others learns where the shared things are (the artifact
root, the MLflow server, the Feast stores) from params and its environment only. This module
decides that environment once; each backend only renders it in its own API: Airflow pod env
vars, KFP task env and secret references, the process environment of a local run or an
Airflow Celery worker (`applied`), and the model server.

* `values`: the spec's `env:` (empty values dropped) and the active profile. Rendered as
  values.
* `secrets`: the spec's `secrets:`. Rendered as Kubernetes secret references in pods; a local
  process or a Celery worker must already have them in its environment. Under a profile (a
  deployment) a missing one is an error, never a silent fallback to a local default.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loopline.spec.profile import PROFILE_ENV

if TYPE_CHECKING:
    from loopline.spec.load import LoadedSpec
    from loopline.spec.model import SecretRef


class MissingSecret(RuntimeError):
    """A declared secret is not in this process's environment under a profile."""


@dataclass(frozen=True)
class StepEnvironment:
    """What every step of one spec gets: `values` as they are, `secrets` as references."""

    values: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretRef] = field(default_factory=dict)
    profile: str | None = None

    def missing_secrets(self, environ: MutableMapping[str, str] | None = None) -> list[str]:
        """Required secrets this process lacks (empty counts as missing)."""
        environ = os.environ if environ is None else environ
        return [name for name, ref in self.secrets.items()
                if not ref.optional and not environ.get(name)]


def _text(value: object) -> str:
    """A YAML value as a variable's text: `true`/`false` as YAML wrote them, not Python's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def step_environment(loaded: LoadedSpec) -> StepEnvironment:
    """The environment every step of this spec runs with, on any backend."""
    profile = loaded.params.profile  # the one its params were loaded with, nothing else
    values = {name: _text(value) for name, value in loaded.spec.env.items()
              if value is not None and _text(value) != ""}
    if profile:
        values[PROFILE_ENV] = profile
    return StepEnvironment(values, dict(loaded.spec.secrets), profile)


@contextlib.contextmanager
def applied(env: StepEnvironment) -> Iterator[None]:
    """Run with the step environment in this process (a local run, an Airflow worker task):
    values the environment already has win (a pod's rendered values, a user's export);
    restored afterwards, so one spec's settings never leak into the next run here."""
    if env.profile and (missing := env.missing_secrets()):
        raise MissingSecret(
            f"profile {env.profile!r}: " + ", ".join(
                f"{name} (secret {env.secrets[name].secret}/{env.secrets[name].key})"
                for name in missing) + " not set in this process's environment; pods get "
            "them from Kubernetes secrets, workers and local runs must export them")
    added = [name for name in env.values if name not in os.environ]
    for name in added:
        os.environ[name] = env.values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
