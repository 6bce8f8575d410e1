"""Delivering the CI report over real HTTP, to fake GitHub and GitLab APIs on 127.0.0.1
(`tests/support/fake_forge.py`: github.com and gitlab.com cannot be reached from tests).
Every assertion is on what the server received, or on the step summary file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.integrations.report_delivery import Delivery, deliver, redact, secrets_in
from loopline.integrations.sticky_comments import marker
from tests.support.fake_forge import FORK_MESSAGE, FakeGitHub, FakeGitLab, serving
from tests.support.services import free_port

TOKEN = "ghp_PLANTEDsecret123456"
GITLAB_TOKEN = "glpat-PLANTEDsecret7890"
PR = 4
MARKER = marker("pr flights")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI proxy must not swallow the loopback calls."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    yield from serving(FakeGitHub(TOKEN))  # type: ignore[misc]


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    yield from serving(FakeGitLab(GITLAB_TOKEN))  # type: ignore[misc]


def github_env(url: str, tmp_path: Path, number: int | None = PR,
               token: str = TOKEN) -> dict[str, str]:
    """What a `pull_request` job (or, with number=None, a push to main) sees."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": number, "pull_request": {"number": number}}
                                if number else {"ref": "refs/heads/main"}))
    return {"GITHUB_API_URL": url, "GITHUB_REPOSITORY": "acme/flights",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": token,
            "GITHUB_REF": f"refs/pull/{number}/merge" if number else "refs/heads/main",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def only(deliveries: list[Delivery], where: str) -> Delivery:
    [delivery] = [d for d in deliveries if d.where == where]
    return delivery


def test_first_run_creates_one_marked_comment_and_later_runs_update_it(
        github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github.url, tmp_path)
    first = only(deliver("# Report v1\n", key="pr flights", env=env), "github comment")
    [post] = github.writes()
    assert (post.method, post.path) == ("POST", f"/repos/acme/flights/issues/{PR}/comments")
    assert post.json()["body"] == f"{MARKER}\n# Report v1\n"
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert post.headers["user-agent"]
    [created] = github.comments
    assert first == Delivery("github comment", True,
                             f"created comment {created} on pull request #{PR}")

    second = only(deliver("# Report v2\n", key="pr flights", env=env), "github comment")
    assert github.writes()[-1].method == "PATCH"
    assert github.writes()[-1].path == f"/repos/acme/flights/issues/comments/{created}"
    assert github.bodies(PR) == [f"{MARKER}\n# Report v2\n"]  # still one comment, edited
    assert second.ok and second.detail == f"updated comment {created} on pull request #{PR}"

    deliver("# Drift\n", key="main drift", env=env)
    assert github.writes()[-1].method == "POST"
    assert github.bodies(PR) == [f"{MARKER}\n# Report v2\n", f"{marker('main drift')}\n# Drift\n"]


def test_the_marked_comment_on_page_two_is_found_and_updated(
        github: FakeGitHub, tmp_path: Path) -> None:
    for i in range(150):
        github.seed(PR, f"LGTM {i}")
    mine = github.seed(PR, f"{MARKER}\nold report")
    github.seed(PR, "a later remark")

    delivery = only(deliver("new report", key="pr flights", env=github_env(github.url, tmp_path)),
                    "github comment")

    assert delivery.ok, delivery
    pages = [r.path.split("?")[1] for r in github.requests if r.method == "GET"]
    assert pages == ["per_page=100&page=1", "per_page=100&page=2"]
    [patch] = github.writes()
    assert (patch.method, patch.path) == ("PATCH", f"/repos/acme/flights/issues/comments/{mine.id}")
    assert len(github.comments) == 152 and github.comments[mine.id].body == f"{MARKER}\nnew report"


def test_a_fork_token_refused_with_403_falls_back_to_the_step_summary(
        github: FakeGitHub, tmp_path: Path) -> None:
    github.refuse_writes = (403, FORK_MESSAGE)
    env = github_env(github.url, tmp_path)

    deliveries = deliver("# Flights\nroc_auc 0.74\n", key="pr flights", env=env)

    comment = only(deliveries, "github comment")
    assert not comment.ok
    assert "HTTP 403" in comment.detail and FORK_MESSAGE in comment.detail
    assert "fork" in comment.detail.split(")", 1)[1] and "step summary" in comment.detail
    assert only(deliveries, "step summary").ok
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    first_line, rest = summary.split("\n", 1)
    assert "No pull request comment" in first_line and "403" in first_line
    assert "# Flights\nroc_auc 0.74\n" in rest
    assert github.comments == {} and [r.method for r in github.writes()] == ["POST"]


def test_a_planted_token_never_leaves_except_in_the_authorization_header(
        github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = github_env(github.url, tmp_path, token=TOKEN + "\n")  # a pasted secret's newline
    env["GITLAB_TOKEN"] = GITLAB_TOKEN
    report = f"# Report\nleaked: {TOKEN} and {GITLAB_TOKEN}\n"
    github.failures = [(422, f"token {TOKEN} is not valid here")]  # the server echoes it
    failed = deliver(report, key="pr flights", env=env)
    delivered = deliver(report, key="pr flights", env=env)

    assert not only(failed, "github comment").ok and "HTTP 422" in failed[0].detail
    assert only(delivered, "github comment").ok
    captured = capsys.readouterr()
    shown = [d.detail for d in failed + delivered] + [captured.out, captured.err,
                                                      Path(env["GITHUB_STEP_SUMMARY"]).read_text()]
    shown += [r.body + r.path for r in github.requests] + github.bodies(PR)
    for text in shown:
        assert TOKEN not in text and GITLAB_TOKEN not in text
    assert "token *** is not valid here" in failed[0].detail
    assert github.bodies(PR) == [f"{MARKER}\n# Report\nleaked: *** and ***\n"]
    assert {r.headers["authorization"] for r in github.requests} == {f"Bearer {TOKEN}"}


def test_gitlab_note_is_created_then_updated_with_private_token(
        gitlab: FakeGitLab, tmp_path: Path) -> None:
    env = {"CI_API_V4_URL": gitlab.api_url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
           "GITLAB_TOKEN": GITLAB_TOKEN, "CI_JOB_TOKEN": "job-token-never-sent"}
    gitlab.seed(3, "please rebase")
    gitlab.seed(3, "added 1 commit", system=True)

    first = deliver("# MR report v1", key="pr flights", env=env)
    second = deliver("# MR report v2", key="pr flights", env=env)

    [post, put] = gitlab.writes()
    notes = "/api/v4/projects/42/merge_requests/3/notes"
    assert (post.method, post.path) == ("POST", notes)
    note_id = next(c.id for c in gitlab.comments.values() if MARKER in c.body)
    assert (put.method, put.path) == ("PUT", f"{notes}/{note_id}")
    assert first == [Delivery("gitlab note", True, f"created note {note_id} on merge request !3")]
    assert second == [Delivery("gitlab note", True, f"updated note {note_id} on merge request !3")]
    assert gitlab.bodies(3) == ["please rebase", "added 1 commit", f"{MARKER}\n# MR report v2"]
    for request in gitlab.requests:
        assert request.headers["private-token"] == GITLAB_TOKEN
        assert "authorization" not in request.headers
        assert "job-token-never-sent" not in json.dumps(request.headers)


def test_gitlab_refusing_the_token_with_401_is_a_failed_delivery(
        gitlab: FakeGitLab, tmp_path: Path) -> None:
    env = {"CI_API_V4_URL": gitlab.api_url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
           "LOOPLINE_GITLAB_TOKEN": "glpat-expired"}

    [note] = deliver("# MR report", key="pr flights", env=env)

    assert note.where == "gitlab note" and not note.ok
    assert "HTTP 401" in note.detail and "job log" in note.detail
    assert gitlab.comments == {} and gitlab.writes() == []


def test_a_long_report_is_cut_at_a_line_boundary_with_a_note(
        github: FakeGitHub, tmp_path: Path) -> None:
    rows = "".join(f"| flight {i:05d} | late |\n" for i in range(4000))  # ~96,000 characters
    report = f"# Flights\n```\n{rows}```\n"
    env = github_env(github.url, tmp_path)

    delivery = only(deliver(report, key="pr flights", env=env), "github comment")

    assert delivery.ok, delivery  # the fake answers 422 past 65,536, as GitHub does
    body = github.bodies(PR)[0]
    assert 60_000 < len(body) <= 65_536
    kept, note = body.rsplit("\n\n", 1)
    assert "cut" in note and "step summary" in note
    assert kept.endswith("\n```")  # the cut fell inside the code block: it is closed
    assert f"{MARKER}\n{report}".startswith(kept.removesuffix("```"))  # whole lines only
    assert report in Path(env["GITHUB_STEP_SUMMARY"]).read_text()  # the whole report


def test_a_push_without_a_pull_request_makes_no_comment_request(
        github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github.url, tmp_path, number=None)

    deliveries = deliver("# Main report", key="main flights", env=env)

    assert [d.where for d in deliveries] == ["step summary"] and deliveries[0].ok
    assert github.requests == []


def test_the_pull_request_number_comes_from_the_ref_without_an_event_file(
        github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github.url, tmp_path) | {"GITHUB_EVENT_PATH": "", "GITHUB_REF":
                                              "refs/pull/9/merge"}

    assert only(deliver("# R", key="pr flights", env=env), "github comment").ok
    assert github.bodies(9) == [f"{MARKER}\n# R"]


def test_the_step_summary_is_appended_to_not_overwritten(
        github: FakeGitHub, tmp_path: Path) -> None:
    env = github_env(github.url, tmp_path, number=None)
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    summary.write_text("## from an earlier command in this step\n")

    deliver("# First report\n", key="main flights", env=env)
    deliver("# Second report\n", key="main drift", env=env)

    text = summary.read_text()
    assert text.startswith("## from an earlier command in this step\n")
    assert text.index("# First report") < text.index("# Second report")


def test_a_refused_connection_is_a_failed_delivery_not_an_exception(tmp_path: Path) -> None:
    env = github_env(f"http://127.0.0.1:{free_port()}", tmp_path)  # nothing listens there

    comment = only(deliver("# R", key="pr flights", env=env), "github comment")

    assert not comment.ok
    assert "cannot reach" in comment.detail and "2 tries" in comment.detail
    assert "step summary" in comment.detail


def test_a_5xx_is_retried_once_and_still_makes_one_comment(
        github: FakeGitHub, tmp_path: Path) -> None:
    github.failures = [(502, "Bad Gateway")]

    comment = only(deliver("# R", key="pr flights", env=github_env(github.url, tmp_path)),
                   "github comment")

    assert comment.ok, comment
    assert [r.method for r in github.requests] == ["GET", "GET", "POST"]
    assert len(github.comments) == 1


def test_without_any_place_to_write_the_report_is_said_to_be_in_the_job_log(
        github: FakeGitHub, tmp_path: Path) -> None:
    github.refuse_writes = (403, FORK_MESSAGE)
    env = github_env(github.url, tmp_path)
    del env["GITHUB_STEP_SUMMARY"]

    [comment] = deliver("# R", key="pr flights", env=env)

    assert not comment.ok and comment.detail.endswith("the report is only in the job log")


def test_secrets_in_lists_every_token_variable_and_redact_hides_them() -> None:
    env = {"LOOPLINE_GITHUB_TOKEN": "a1" * 8, "GITHUB_TOKEN": "b2" * 8, "GH_TOKEN": "c3" * 8,
           "LOOPLINE_GITLAB_TOKEN": "d4" * 8, "GITLAB_TOKEN": "e5" * 8, "HOME": "/root",
           "GITHUB_REPOSITORY": "acme/flights", "GH_ENTERPRISE_TOKEN": ""}

    secrets = secrets_in(env)

    assert set(secrets) == {"a1" * 8, "b2" * 8, "c3" * 8, "d4" * 8, "e5" * 8}
    assert redact(f"x {'b2' * 8} y {'e5' * 8}", secrets) == "x *** y ***"


def test_the_step_summary_stays_within_githubs_1_mib_a_step(tmp_path: Path) -> None:
    env = github_env("http://127.0.0.1:9", tmp_path, number=None)
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    summary.write_text("x" * (1024 * 1024 - 50_000) + "\n")
    report = "".join(f"| vol {i} | ✈✈✈ |\n" for i in range(10_000))  # multi-byte, ~200 KB

    [delivery] = deliver(report, key="main flights", env=env)

    assert delivery.ok and "cut" in delivery.detail
    assert 1024 * 1024 - 2_000 < summary.stat().st_size <= 1024 * 1024
    assert summary.read_text().rstrip().endswith("the whole report is in the job log._")
