"""A sticky comment thread over a forge's REST API: what GitHub's pull-request comments
(`github_comments`) and GitLab's merge-request notes (`gitlab_notes`) share.

Sticky: the body starts with a hidden marker per report kind, and a later run edits the
comment that carries it instead of adding one per push. Only the standard library speaks
HTTP (urllib), with a 10 s timeout and no redirects, so the token is only ever sent to the
API URL the environment names. Nothing here raises for a refusal or a network failure: it is
an `Outcome` with a reason. Texts here may quote the server; the caller redacts them.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 10.0
USER_AGENT = "loopline-ci"
PAGE_SIZE = 100
MAX_PAGES = 50  # 5,000 comments: a server that never sends a short page cannot loop us
RETRY_WAIT_S = 0.5


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status 0 means none came (refused, timed out, unreadable)."""

    status: int
    data: Any
    message: str


@dataclass(frozen=True)
class Outcome:
    """What became of one comment; on a failure the caller says where the report went."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Thread:
    """Where one sticky comment lives on one forge: its URLs, its auth headers and words."""

    list_url: Callable[[int], str]
    item_url: Callable[[int], str]
    create_url: str
    headers: Mapping[str, str]
    update_method: str
    noun: str  # "comment", "note"
    place: str  # "pull request #4", "merge request !3"
    reasons: Mapping[int, str]  # status -> why, for the refusals that mean "cannot comment"
    skip: Callable[[Mapping[str, Any]], bool] = lambda item: False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the token to a URL the environment did not name: refuse it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def call(method: str, url: str, headers: Mapping[str, str], payload: Any = None) -> Reply:
    """One request with a JSON body; never raises. Error texts never quote the request (its
    headers hold the token), only the server's own message or the socket's reason."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Reply(0, None, "the API URL is not http(s)")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        # Built per call: it reads the proxy settings (HTTPS_PROXY, NO_PROXY) when built.
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=TIMEOUT_S) as response:
            return Reply(response.status, _json(response.read()), "")
    except urllib.error.HTTPError as error:
        with error:
            body = _json(error.read())
        return Reply(error.code, body, _server_message(body) or str(error.reason))
    except urllib.error.URLError as error:
        return Reply(0, None, f"cannot reach the API: {_short(str(error.reason))}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        return Reply(0, None, f"cannot reach the API: {type(error).__name__}")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _server_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for field in ("message", "error_description", "error"):
        if isinstance(body.get(field), str):
            return _short(body[field])
    return ""


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def marker(key: str) -> str:
    """The hidden line that makes a comment this report kind's own (HTML-comment safe)."""
    return f"<!-- loopline-ci: {' '.join(key.replace('--', '-').replace('>', '').split())} -->"


def fit(text: str, limit: int, whole_at: str) -> str:
    """`text` if it fits `limit` characters, else cut at a line boundary (closing an open code
    fence) with a last line that says it was cut and where the whole report is."""
    if len(text) <= limit:
        return text
    note = (f"\n\n_The report was cut here ({len(text):,} characters in all): the whole report "
            f"is in {whole_at}._")
    kept: list[str] = []
    size, fences = 0, 0
    for line in text.splitlines(keepends=True):
        fence = line.lstrip().startswith("```")
        closing = "```\n" if (fences + fence) % 2 else ""
        if size + len(line) + len(closing) + len(note) > limit:
            break
        kept.append(line)
        size, fences = size + len(line), fences + fence
    body = "".join(kept) or text[: max(0, limit - len(note) - 4)]
    if fences % 2:
        body = body + ("" if body.endswith("\n") else "\n") + "```"
    return body[: limit - len(note)] + note


def upsert(thread: Thread, body: str, key_marker: str) -> Outcome:
    """Edit the first item carrying `key_marker`, else create one. A transient failure (no
    answer, 5xx) redoes the whole look-up once, so a create that did land is found and edited
    rather than posted twice."""
    outcome, transient = _upsert_once(thread, body, key_marker)
    if transient:
        time.sleep(RETRY_WAIT_S)
        outcome, transient = _upsert_once(thread, body, key_marker)
        if transient:
            outcome = Outcome(False, f"{outcome.detail} (after 2 tries)")
    return outcome


def _upsert_once(thread: Thread, body: str, key_marker: str) -> tuple[Outcome, bool]:
    found: int | None = None
    for page in range(1, MAX_PAGES + 1):
        reply = call("GET", thread.list_url(page), thread.headers)
        if not 200 <= reply.status < 300 or not isinstance(reply.data, list):
            return _failed(thread, reply)
        found = next((int(item["id"]) for item in reply.data
                      if isinstance(item, dict) and not thread.skip(item)
                      and key_marker in str(item.get("body") or "")), None)
        if found is not None or len(reply.data) < PAGE_SIZE:
            break
    payload = {"body": body}
    if found is None:
        reply = call("POST", thread.create_url, thread.headers, payload)
        verb = "created"
    else:
        reply = call(thread.update_method, thread.item_url(found), thread.headers, payload)
        verb = "updated"
    if not 200 <= reply.status < 300:
        return _failed(thread, reply)
    item_id = reply.data.get("id", found) if isinstance(reply.data, dict) else found
    return Outcome(True, f"{verb} {thread.noun} {item_id} on {thread.place}"), False


def _failed(thread: Thread, reply: Reply) -> tuple[Outcome, bool]:
    if reply.status == 0:
        return Outcome(False, reply.message), True
    head = f"HTTP {reply.status} ({reply.message or 'no message'})"
    if reply.status in thread.reasons and "rate limit" not in reply.message.lower():
        return Outcome(False, f"{head}: {thread.reasons[reply.status]}"), False
    return Outcome(False, head), reply.status >= 500
