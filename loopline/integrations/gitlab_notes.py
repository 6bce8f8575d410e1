"""The sticky merge-request note through GitLab's REST API (v4).

The same sticky thread as GitHub's comment (`sticky_comments.upsert`), with GitLab's URLs and
its `PRIVATE-TOKEN` header. The token must be a personal, project or group access token with
the `api` scope: the job's own `CI_JOB_TOKEN` cannot post notes (GitLab allows it only a few
read endpoints), so it is never used here.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from loopline.integrations.sticky_comments import (
    PAGE_SIZE,
    USER_AGENT,
    Outcome,
    Thread,
    fit,
    marker,
    upsert,
)

GITLAB_LIMIT = 1_000_000  # characters in one note body
GITLAB_TOKENS = ("LOOPLINE_GITLAB_TOKEN", "GITLAB_TOKEN")


def gitlab_token(env: Mapping[str, str]) -> str:
    """The first GitLab token set (stripped: a stray newline makes an invalid header)."""
    return next((env[name].strip() for name in GITLAB_TOKENS if env.get(name, "").strip()), "")


def note_on_merge_request(markdown: str, key: str, env: Mapping[str, str],
                          whole_at: str) -> Outcome | None:
    """Keep this report kind's one note on the merge request up to date; None outside a
    merge request pipeline (`CI_MERGE_REQUEST_IID` unset: a branch or main pipeline)."""
    iid = env.get("CI_MERGE_REQUEST_IID", "").strip()
    base = env.get("CI_API_V4_URL", "").rstrip("/")
    project = env.get("CI_PROJECT_ID", "").strip()
    if not iid:
        return None
    if not iid.isdigit() or not base or not project:
        return Outcome(False, "CI_API_V4_URL, CI_PROJECT_ID and a numeric CI_MERGE_REQUEST_IID "
                              "are needed to find the merge request")
    token = gitlab_token(env)
    if not token:
        return Outcome(False, "no token: set GITLAB_TOKEN (or LOOPLINE_GITLAB_TOKEN) to an "
                              "access token with the api scope (CI_JOB_TOKEN cannot post notes)")
    notes = f"{base}/projects/{urllib.parse.quote(project, safe='')}/merge_requests/{iid}/notes"
    place = f"merge request !{iid}"
    thread = Thread(
        list_url=lambda page: f"{notes}?per_page={PAGE_SIZE}&page={page}",
        item_url=lambda item: f"{notes}/{item}",
        create_url=notes,
        headers={"PRIVATE-TOKEN": token, "Accept": "application/json", "User-Agent": USER_AGENT},
        update_method="PUT", noun="note", place=place,
        reasons={401: "the token was refused (expired, revoked or wrong)",
                 403: "the token cannot comment (it needs the api scope and Reporter access)",
                 404: f"the token cannot see project {project} or its {place}"},
        skip=lambda item: bool(item.get("system")),  # "added 1 commit" and the like
    )
    key_marker = marker(key)
    return upsert(thread, fit(f"{key_marker}\n{markdown}", GITLAB_LIMIT, whole_at), key_marker)
