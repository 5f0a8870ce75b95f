"""The web app under the server's answer rules, in a real Chromium against a real server.

Issue 11 §4.3–4: every answer carries a decision key (kept on retries, new for a new
decision); an answer whose token expired is dropped with a notice and fresh questions
come once, without a reload loop; a surplus (409) or invalid (422) answer is dropped
while the rest of its batch is sent again; a busy server (503 + Retry-After) is retried
no sooner than it asked. Where the server's side of a rule is not the point, the test
answers for the server exactly as docs/api.md specifies; a batch the server refuses
stores nothing, so a refused reply that never reaches the server is faithful.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from feed.tokens import sign_token, verify_token
from recipes.textcat import textcat_manual
from tests import browser as chromium
from tests.browser import AnnotationPage, db_out, off_loop, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser, page = chromium.browser, chromium.page  # the fixtures every browser test uses

QUESTIONS = re.compile(r"/get_session_questions\b")
ANSWERS = re.compile(r"/give_answers\b")
DECISION_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
SECRET = "answer-rules-test-secret"


@pytest.fixture
def served(settings, dataset_name, load, start_server, tmp_path: Path):
    """A text classification project of 12 texts (more than any test asks for, so the
    queue never runs dry and polls): `served(batch_size=…, **settings)` starts its server."""

    def serve(batch_size: int = 3, **overrides: Any) -> Any:
        texts = [{"text": f"Text number {i}: a few words.", "meta": {"id": i}} for i in range(1, 13)]
        off_loop(load, textcat_manual(dataset_name, write_jsonl(tmp_path / "t.jsonl", texts), "Tech"))
        return start_server(settings, dataset_name, workers=1, batch_size=batch_size, **overrides)

    return serve


def by_id(rows: list[dict[str, Any]]) -> dict[int, str]:
    ids = [row["meta"]["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"a task was recorded twice: {ids}"
    return {row["meta"]["id"]: row["answer"] for row in rows}


def sent_ids(route: Any) -> list[int]:
    return [a["meta"]["id"] for a in route.request.post_data_json["answers"]]


def refuse(route: Any, status: int, error: str, message: str, **extra: Any) -> None:
    """Answer for the server, in its one error shape."""
    body = {"error": error, "message": message, "status": status, **extra}
    route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


def test_every_answer_carries_a_decision_key_that_retries_keep(page, served, dataset_name, nats_url):
    server = served()
    sent: list[list[dict[str, Any]]] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data_json["answers"]) if ANSWERS.search(r.url) else None,
    )
    page.route(ANSWERS, lambda route: route.abort(), times=1)  # the first try fails
    app = AnnotationPage(page, server.url).open("ada")
    before = int(time.time())
    app.answer("a")
    app.press("Control+s")
    app.wait_status("saved", timeout=15_000)  # retried on its own
    # Undo the sent answer and decide again: a new decision, with a key of its own.
    app.press("Backspace")
    app.answer("x")
    app.save()

    first, retry, changed = (batch[0] for batch in sent)
    assert first["meta"]["id"] == retry["meta"]["id"] == changed["meta"]["id"] == 1
    for answer in (first, retry, changed):
        assert DECISION_ID.match(answer["_decision_id"]), answer["_decision_id"]
        assert isinstance(answer["_timestamp"], int) and before <= answer["_timestamp"] <= time.time()
    assert retry["_decision_id"] == first["_decision_id"]
    assert retry["_timestamp"] == first["_timestamp"]
    assert changed["_decision_id"] != first["_decision_id"]
    assert by_id(db_out(dataset_name, nats_url)) == {1: "reject"}  # the latest decision wins
    assert app.errors == []


def expire_tokens(count: int) -> Any:
    """A route handler: the first `count` tokens of a batch, signed again as expired."""

    def handler(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        for task in data["tasks"][:count]:
            token = verify_token(SECRET.encode(), task["_token"])
            expired = msgspec.structs.replace(token, expires_ms=token.issued_ms - 1)
            task["_token"] = sign_token(SECRET.encode(), expired)
        route.fulfill(response=response, json=data)

    return handler


def test_expired_answers_are_dropped_with_a_notice_and_fresh_questions_come_once(
    page, served, dataset_name, nats_url
):
    server = served(secret=SECRET)
    page.route(QUESTIONS, expire_tokens(2), times=1)
    app = AnnotationPage(page, server.url).open("bo")
    page.evaluate("() => { window.__sameDocument = true; }")
    app.answer("a")  # expired
    app.answer("a")  # expired
    app.answer("x")  # a valid token: must get through. A full batch: sent at once.

    page.wait_for_selector("#notice:not([hidden])")
    assert page.inner_text("#notice-title") == "2 answers expired and must be redone"
    app.screenshot("answers_expired")
    app.wait_until("() => { const s = window.quorum.inspect(); return s.outbox === 0 && !s.loading; }")
    # The first batch, the prefetch of the second while answering, and fresh questions once.
    assert app.state()["requests"] == 3
    assert app.state()["counts"] == {"accept": 0, "reject": 1, "ignore": 0}
    app.answer("a")  # the annotator simply goes on
    app.save()
    page.click("#drop-dismiss")
    assert page.locator("#notice").is_hidden()
    assert page.evaluate("() => window.__sameDocument === true")  # never reloaded
    assert app.state()["requests"] == 3  # and no loop
    assert by_id(db_out(dataset_name, nats_url)) == {3: "reject", 4: "accept"}
    assert app.errors == []


def test_tasks_that_came_with_an_expired_token_are_replaced(page, served, dataset_name, nats_url):
    server = served(secret=SECRET)
    page.route(QUESTIONS, expire_tokens(1), times=1)
    app = AnnotationPage(page, server.url).open("ed")
    app.answer("a")  # expired; tasks 2 and 3 came with it, so their tokens are as old
    app.wait_until("() => { const s = window.quorum.inspect(); return s.queued === 4 && !s.loading; }")
    assert "Text number 2:" in app.text()
    app.press("Control+s")

    page.wait_for_selector("#notice:not([hidden])")
    assert page.inner_text("#notice-title") == "1 answer expired and must be redone"
    app.wait_until("() => { const s = window.quorum.inspect(); return s.requests === 3 && !s.loading; }")
    assert "Text number 4:" in app.text()  # 2 and 3 are gone, the next batch is on
    assert app.state()["queued"] == 5  # 5 and 6, and fresh questions: 7, 8 and 9
    app.answer("a")
    app.save()
    assert app.state()["requests"] == 3
    assert by_id(db_out(dataset_name, nats_url)) == {4: "accept"}
    assert app.errors == []


def test_surplus_and_invalid_answers_are_dropped_and_the_rest_is_sent(page, served, dataset_name, nats_url):
    server = served(batch_size=4)  # the fourth answer sends the batch
    batches: list[list[int]] = []
    tasks: dict[int, str] = {}

    def judge(route: Any) -> None:
        ids = sent_ids(route)
        batches.append(ids)
        for answer in route.request.post_data_json["answers"]:
            tasks[answer["meta"]["id"]] = answer["_task_hash"]
        if 1 in ids:  # the server names the surplus answer
            refuse(route, 409, "surplus_answer", "task already has enough answers", task_hash=tasks[1])
        elif 3 in ids:  # a refusal that names no task: the app finds it by itself
            refuse(route, 422, "invalid_answer", "span 0 is not aligned to the tokens")
        else:
            route.continue_()

    page.route(ANSWERS, judge)
    app = AnnotationPage(page, server.url).open("cy")
    for key in "axaa":
        app.answer(key)
    app.wait_until("() => document.getElementById('hint').textContent.includes('enough answers')")
    page.wait_for_selector("#notice:not([hidden])")
    assert page.inner_text("#notice-title") == "1 answer dropped"
    assert "Span 0 is not aligned to the tokens." in page.inner_text("#notice-text")
    app.screenshot("answers_dropped")
    app.wait_status("saved")

    assert batches == [[1, 2, 3, 4], [2, 3, 4], [2], [3], [4]]
    assert app.state()["outbox"] == 0
    assert app.state()["counts"] == {"accept": 1, "reject": 1, "ignore": 0}  # 1 and 3 let go
    assert by_id(db_out(dataset_name, nats_url)) == {2: "reject", 4: "accept"}
    assert app.errors == []


def test_a_busy_server_is_retried_no_sooner_than_it_asks(page, served, dataset_name, nats_url):
    server = served()
    tries: list[float] = []

    def busy_twice(route: Any) -> None:
        tries.append(time.monotonic())
        if len(tries) > 2:
            route.continue_()
            return
        route.fulfill(
            status=503,
            headers={"Retry-After": "1", "Content-Type": "application/json"},
            body=json.dumps({"error": "not_ready", "message": "the ledger is restarting", "status": 503}),
        )

    page.route(ANSWERS, busy_twice)
    app = AnnotationPage(page, server.url).open("di")
    app.answer("a")
    app.press("Control+s")
    app.wait_status("busy")
    assert app.status_text().strip() == "server busy, retrying — 1 answer waiting"
    assert page.locator("#notice").is_hidden()  # busy is not an error to act on
    app.wait_status("saved", timeout=15_000)

    assert len(tries) == 3
    assert tries[1] - tries[0] >= 0.9 and tries[2] - tries[1] >= 0.9, tries
    assert by_id(db_out(dataset_name, nats_url)) == {1: "accept"}
    assert app.errors == []
