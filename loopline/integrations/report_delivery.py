"""Delivering an already-rendered CI report to where CI users read it: the sticky comment on
a GitHub pull request, the sticky note on a GitLab merge request, and GitHub's step summary.

The report was printed to the job log before this runs, so nothing here fails the job: every
refusal or network failure is a `Delivery` with `ok=False` and a reason. Tokens come from the
environment only, travel in headers only, and every text that leaves `deliver()` (the report
itself, the step summary, each detail) has their values replaced by `***`.

What `deliver()` returns: one `Delivery` per place the report went or should have gone. A run
that is not for a pull request (a push to main) or merge request gets no comment and no
`Delivery` for one; the step summary is still appended to when `GITHUB_STEP_SUMMARY` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loopline.integrations.github_comments import GITHUB_TOKENS, comment_on_pull_request
from loopline.integrations.gitlab_notes import GITLAB_TOKENS, note_on_merge_request
from loopline.integrations.sticky_comments import Outcome, fit

SUMMARY_LIMIT = 1024 * 1024  # bytes per step: GitHub drops a larger step summary altogether
# Not used to post, but present in every GitLab job: kept out of the report all the same.
OTHER_SECRETS = ("CI_JOB_TOKEN",)


@dataclass(frozen=True)
class Delivery:
    """Where the report went: "step summary", "github comment" or "gitlab note"."""

    where: str
    ok: bool
    detail: str


def secrets_in(env: Mapping[str, str]) -> list[str]:
    """The token values set in `env` (each as given and stripped: the stripped one is what is
    sent); blank values are left out, since redacting spaces would mangle every text."""
    values: list[str] = []
    for name in (*GITHUB_TOKENS, *GITLAB_TOKENS, *OTHER_SECRETS):
        value = env.get(name, "")
        for candidate in (value, value.strip()):
            if candidate.strip() and candidate not in values:
                values.append(candidate)
    return values


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret value replaced by `***` (longest first, so a token that
    contains another is hidden whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def deliver(markdown: str, *, key: str, env: Mapping[str, str] | None = None) -> list[Delivery]:
    """Post or update this report kind's (`key`) sticky comment or note, and append the report
    to GitHub's step summary; `env` defaults to `os.environ`. Never raises."""
    env = os.environ if env is None else env
    secrets = secrets_in(env)
    try:
        deliveries = _deliver(redact(markdown, secrets), key, env, secrets)
    except Exception as error:  # noqa: BLE001 - the report is in the log; the job must go on
        deliveries = [Delivery("report delivery", False, f"unexpected {type(error).__name__}")]
    return [Delivery(d.where, d.ok, redact(d.detail, secrets)) for d in deliveries]


def _deliver(markdown: str, key: str, env: Mapping[str, str],
             secrets: list[str]) -> list[Delivery]:
    summary_path = env.get("GITHUB_STEP_SUMMARY", "")
    whole_at = "this job's step summary" if summary_path else "the job log"

    def cleaned(outcome: Outcome | None) -> Outcome | None:
        return None if outcome is None else Outcome(outcome.ok, redact(outcome.detail, secrets))

    comment = cleaned(comment_on_pull_request(markdown, key, env, whole_at))
    summary = None
    if summary_path:
        missing = comment is not None and not comment.ok
        note = f"> **No pull request comment:** {comment.detail}\n\n" if missing else ""
        summary = append_summary(Path(summary_path), note + markdown)
    deliveries: list[Delivery] = []
    if comment is not None:
        where = "in the step summary" if summary and summary.ok else "only in the job log"
        detail = comment.detail if comment.ok else f"{comment.detail}; the report is {where}"
        deliveries.append(Delivery("github comment", comment.ok, detail))
    if summary is not None:
        deliveries.append(summary)
    note = cleaned(note_on_merge_request(markdown, key, env, "the job log"))
    if note is not None:
        detail = note.detail if note.ok else f"{note.detail}; the report is in the job log"
        deliveries.append(Delivery("gitlab note", note.ok, detail))
    return deliveries


def append_summary(path: Path, text: str) -> Delivery:
    """Append (never overwrite: the file is this step's, and other tools write to it too),
    cut to what is left of the step's 1 MiB so GitHub does not drop the whole summary."""
    try:
        used = path.stat().st_size if path.exists() else 0
        budget = SUMMARY_LIMIT - used - 2
        if budget < 1024:
            return Delivery("step summary", False, "the step summary is full (1 MiB a step)")
        cut, limit = text, budget
        while len(cut.encode()) > budget:  # characters to bytes: shrink by the overshoot
            cut = fit(text, limit, "the job log")
            size = len(cut.encode())
            limit -= max(1, (size - budget) * len(cut) // size)
        with path.open("a", encoding="utf-8") as summary:
            summary.write(("\n" if used else "") + cut + ("" if cut.endswith("\n") else "\n"))
    except OSError as error:
        return Delivery("step summary", False,
                        f"cannot append to the step summary: {error.strerror or 'OSError'}")
    shortened = " (cut to fit 1 MiB)" if cut != text else ""
    return Delivery("step summary", True, f"appended {len(cut):,} characters{shortened}")
