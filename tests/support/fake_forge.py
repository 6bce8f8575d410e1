"""A fake GitHub REST API and a fake GitLab REST API (v4), as real HTTP servers on 127.0.0.1.

They stand in for api.github.com and gitlab.com, which cannot be reached from tests: each is
a `ThreadingHTTPServer` on a free loopback port, in a thread, serving just the endpoints the
sticky CI comment uses (list with pagination, create, update), keeping comments in memory
and recording every request as received (method, path with query, headers, body) so that
tests assert on what the server got, not on what the client meant to send. They can be told
to refuse writes (GitHub's 403 for a fork's read-only token), to fail the next requests (a
5xx, an error message that echoes a secret), and they check the token like the real APIs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FORK_MESSAGE = "Resource not accessible by integration"


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Comment:
    id: int
    thread: int  # the pull request number / merge request iid
    body: str
    system: bool = False


@dataclass
class FakeForge:
    """What both fakes share: the server, the recorded requests, the comments, the faults."""

    token: str
    requests: list[Request] = field(default_factory=list)
    comments: dict[int, Comment] = field(default_factory=dict)
    refuse_writes: tuple[int, str] | None = None  # (status, message) for POST/PATCH/PUT
    failures: list[tuple[int, str]] = field(default_factory=list)  # for the next requests
    next_id: int = 1000

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeForge:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def seed(self, thread: int, body: str, *, system: bool = False) -> Comment:
        with self.lock:
            self.next_id += 1
            comment = Comment(self.next_id, thread, body, system)
            self.comments[comment.id] = comment
            return comment

    def bodies(self, thread: int) -> list[str]:
        with self.lock:
            return [c.body for c in sorted(self.comments.values(), key=lambda c: c.id)
                    if c.thread == thread]

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    # -- what a subclass provides ------------------------------------------------------------
    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, list[str]],
              body: str, headers: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str],
               body: str) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Request(method, target, headers, body))
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            return failure[0], {"message": failure[1]}
        if not self.authorized(headers):
            return 401, self.unauthorized()
        if method != "GET" and self.refuse_writes:
            return self.refuse_writes[0], {"message": self.refuse_writes[1]}
        parts = urlsplit(target)
        with self.lock:
            return self.route(method, parts.path, parse_qs(parts.query), body, headers)

    def unauthorized(self) -> Any:
        return {"message": "Bad credentials"}

    def page(self, thread: int, query: dict[str, list[str]], newest_first: bool) -> list[Comment]:
        per_page = int(query.get("per_page", ["30"])[0])
        number = int(query.get("page", ["1"])[0])
        items = sorted((c for c in self.comments.values() if c.thread == thread),
                       key=lambda c: c.id, reverse=newest_first)
        return items[(number - 1) * per_page: number * per_page]

    def create(self, thread: int, body: str) -> Comment:
        self.next_id += 1
        comment = self.comments[self.next_id] = Comment(self.next_id, thread, body)
        return comment


class FakeGitHub(FakeForge):
    """`/repos/{owner}/{repo}/issues/{n}/comments` (GET, POST) and
    `/repos/{owner}/{repo}/issues/comments/{id}` (PATCH), Bearer token, 65,536 characters."""

    def __init__(self, token: str, repository: str = "acme/flights") -> None:
        super().__init__(token)
        self.repository = repository

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def route(self, method: str, path: str, query: dict[str, list[str]],
              body: str, headers: dict[str, str]) -> tuple[int, Any]:
        issue = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
        edit = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
        match = issue or edit
        if not match or match.group(1) != self.repository:
            return 404, {"message": "Not Found"}
        if issue and method == "GET":
            return 200, [_github(c) for c in self.page(int(issue.group(2)), query, False)]
        text = json.loads(body or "{}").get("body", "")
        if len(text) > 65_536:
            return 422, {"message": "Validation Failed", "errors": [
                {"message": "Body is too long (maximum is 65536 characters)"}]}
        if issue and method == "POST":
            return 201, _github(self.create(int(issue.group(2)), text))
        if edit and method == "PATCH" and int(edit.group(2)) in self.comments:
            comment = self.comments[int(edit.group(2))]
            comment.body = text
            return 200, _github(comment)
        return 404, {"message": "Not Found"}


class FakeGitLab(FakeForge):
    """`/api/v4/projects/{id}/merge_requests/{iid}/notes` (GET newest first, POST) and
    `.../notes/{note_id}` (PUT), JSON or form bodies, `PRIVATE-TOKEN`."""

    def __init__(self, token: str, project: str = "42") -> None:
        super().__init__(token)
        self.project = project

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("private-token") == self.token

    def unauthorized(self) -> Any:
        return {"message": "401 Unauthorized"}

    def route(self, method: str, path: str, query: dict[str, list[str]],
              body: str, headers: dict[str, str]) -> tuple[int, Any]:
        match = re.fullmatch(r"/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes(?:/(\d+))?",
                             path)
        if not match or match.group(1) != self.project:
            return 404, {"message": "404 Project Not Found"}
        iid, note = int(match.group(2)), match.group(3)
        if method == "GET" and note is None:
            return 200, [_gitlab(c) for c in self.page(iid, query, True)]
        if "json" in headers.get("content-type", ""):
            text = json.loads(body).get("body", "")
        else:
            text = parse_qs(body).get("body", [""])[0]
        if method == "POST" and note is None:
            return 201, _gitlab(self.create(iid, text))
        if method == "PUT" and note is not None and int(note) in self.comments:
            comment = self.comments[int(note)]
            comment.body = text
            return 200, _gitlab(comment)
        return 404, {"message": "404 Not found"}


def _github(comment: Comment) -> dict[str, Any]:
    return {"id": comment.id, "body": comment.body, "user": {"login": "github-actions[bot]"}}


def _gitlab(comment: Comment) -> dict[str, Any]:
    return {"id": comment.id, "body": comment.body, "system": comment.system,
            "noteable_iid": comment.thread}


def _handler(forge: FakeForge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload = forge.answer(self.command, self.path, headers, body)
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet: capsys reads stderr
            pass

    return Handler


def serving(forge: FakeForge) -> Iterator[FakeForge]:
    """For a pytest fixture: `yield from serving(FakeGitHub(token))`."""
    with forge:
        yield forge
