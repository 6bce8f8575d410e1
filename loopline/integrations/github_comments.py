"""The sticky pull-request comment through GitHub's REST API: the shared sticky thread
(`sticky_comments`) with GitHub's URLs, headers and the pull request read from the Actions
environment. Texts here may quote the server; the caller redacts them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from loopline.integrations.sticky_comments import (
    PAGE_SIZE,
    USER_AGENT,
    Outcome,
    Thread,
    fit,
    marker,
    upsert,
)

GITHUB_LIMIT = 65_536  # characters in one comment body; GitHub answers 422 beyond it
GITHUB_TOKENS = ("LOOPLINE_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_PULL_REF = re.compile(r"refs/pull/(\d+)/(?:merge|head)")


def github_token(env: Mapping[str, str]) -> str:
    """The first GitHub token set; surrounding whitespace (a pasted secret's newline) would
    make an invalid header whose error text quotes it."""
    return next((env[name].strip() for name in GITHUB_TOKENS if env.get(name, "").strip()), "")


def pull_request_number(env: Mapping[str, str]) -> int | None:
    """The pull request this run is for: the event file's, else `refs/pull/N/merge`; None on
    a push."""
    path = env.get("GITHUB_EVENT_PATH", "")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        event = {}
    if isinstance(event, dict):
        pull = event.get("pull_request")
        for number in (pull.get("number") if isinstance(pull, dict) else None,
                       event.get("number")):
            if isinstance(number, int) and number > 0:
                return number
    match = _PULL_REF.fullmatch(env.get("GITHUB_REF", ""))
    return int(match.group(1)) if match else None


def comment_on_pull_request(markdown: str, key: str, env: Mapping[str, str],
                            whole_at: str) -> Outcome | None:
    """Keep this report kind's one comment on the pull request up to date; None when the run
    is not for a pull request (a push to main has nowhere to comment)."""
    number = pull_request_number(env)
    if number is None:
        return None
    repository = env.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        return Outcome(False, f"GITHUB_REPOSITORY {repository!r} is not owner/name")
    token = github_token(env)
    if not token:
        return Outcome(False, "no token: set GITHUB_TOKEN (or LOOPLINE_GITHUB_TOKEN) in the "
                              "step's env, e.g. ${{ secrets.GITHUB_TOKEN }}")
    base = (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    issue = f"{base}/repos/{repository}/issues"
    place = f"pull request #{number}"
    thread = Thread(
        list_url=lambda page: f"{issue}/{number}/comments?per_page={PAGE_SIZE}&page={page}",
        item_url=lambda item: f"{issue}/comments/{item}",
        create_url=f"{issue}/{number}/comments",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                 "X-GitHub-Api-Version": "2022-11-28", "User-Agent": USER_AGENT},
        update_method="PATCH", noun="comment", place=place,
        reasons={401: "the token was refused (expired or wrong)",
                 403: "the token cannot comment (a pull request from a fork?)",
                 404: f"the token cannot see {repository} or its {place}"},
    )
    key_marker = marker(key)
    return upsert(thread, fit(f"{key_marker}\n{markdown}", GITHUB_LIMIT, whole_at), key_marker)
