"""The annotation app's outbox and prefetch in a real Chromium, against a real server.

The network misbehaves here on purpose: the feed server is stopped and restarted
mid-session, requests are held in flight, a load balancer answers 502, the server
refuses a forged token (403) and an oversized batch (413), and the browser itself is
SIGKILLed right after an answer. In every case the annotator keeps working, sees what is
going on, and no answer is lost or recorded twice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from recipes.textcat import textcat_manual
from tests import browser as chromium
from tests.browser import (
    AnnotationPage,
    KillableChromium,
    db_out,
    ledger_answers,
    off_loop,
    until,
    write_jsonl,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser, page = chromium.browser, chromium.page  # the fixtures every browser test uses

QUESTIONS = re.compile(r"/get_session_questions\b")
ANSWERS = re.compile(r"/give_answers\b")


def texts(count: int, words: int = 8) -> list[dict[str, Any]]:
    filler = " ".join(["word"] * words)
    return [{"text": f"Text number {i}: {filler}.", "meta": {"id": i}} for i in range(1, count + 1)]


def answers_by_id(rows: list[dict[str, Any]]) -> dict[int, str]:
    ids = [row["meta"]["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"a task was recorded twice: {ids}"
    return {row["meta"]["id"]: row["answer"] for row in rows}


def test_outbox_survives_a_server_restart(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "texts.jsonl", texts(8))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("alex")
    app.answer("a")
    app.answer("x")
    app.save()

    server.stop()  # NATS stays up; the feed workers are gone
    app.answer("a")
    app.answer("a")
    app.answer(" ")
    app.press("Control+s")
    app.wait_status("offline")
    assert app.status_text().strip() == "offline — 3 answers waiting"
    app.screenshot("outbox_offline")
    assert app.state()["counts"] == {"accept": 3, "reject": 1, "ignore": 1}

    start_server(settings, dataset_name, workers=1)  # same port: what a restarted pod looks like
    app.wait_status("saved", timeout=20_000)
    assert app.state()["outbox"] == 0
    assert answers_by_id(db_out(dataset_name, nats_url)) == {
        1: "accept",
        2: "reject",
        3: "accept",
        4: "accept",
        5: "ignore",
    }
    assert app.errors == []


def test_waiting_answers_survive_a_reload_and_leave_with_the_page(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "texts.jsonl", texts(6))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("ida")

    # The network drops every answer; the tab is then reloaded (think: a crash).
    page.route(ANSWERS, lambda route: route.abort())
    first = app.task()
    app.answer("a")
    app.press("Control+s")
    app.wait_status("offline")
    page.reload()
    app.wait_for_task()
    assert app.state()["outbox"] == 1  # restored from localStorage
    assert app.task() != first  # an answered task is not asked again
    page.unroute(ANSWERS)
    app.save()
    assert answers_by_id(db_out(dataset_name, nats_url)) == {1: "accept"}

    # An answer still waiting for its batch leaves with the page (keepalive on pagehide).
    app.answer("x")
    assert app.state()["outbox"] == 1
    page.goto("about:blank")
    until(lambda: len(db_out(dataset_name, nats_url)) == 2, timeout=10)
    assert answers_by_id(db_out(dataset_name, nats_url)) == {1: "accept", 2: "reject"}


def test_prefetch_never_makes_a_key_press_wait(page, settings, dataset_name, load, start_server, tmp_path):
    source = write_jsonl(tmp_path / "texts.jsonl", texts(12))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    server = start_server(settings, dataset_name, workers=1, batch_size=4)
    app = AnnotationPage(page, server.url).open("kai")
    assert app.state()["queued"] == 3 and app.state()["requests"] == 1

    # From now on the network hangs: no request finishes until we let it.
    held: list[Any] = []
    page.route(QUESTIONS, lambda route: held.append(route))
    page.route(ANSWERS, lambda route: held.append(route))
    page.evaluate(
        """() => {
        window.__timings = [];
        let pressed = 0;
        window.addEventListener('keydown', () => { pressed = performance.now(); }, true);
        new MutationObserver(() => window.__timings.push(performance.now() - pressed))
          .observe(document.getElementById('card'), {attributeFilter: ['data-task-hash']});
    }"""
    )
    for _ in range(3):
        app.answer("a")  # waits for the next question, with every request hanging
    timings = page.evaluate("window.__timings")
    assert len(timings) == 3 and max(timings) < 150, timings
    # The next batch was asked for while tasks were still queued (and is still in flight).
    assert any(QUESTIONS.search(route.request.url) for route in held)
    assert app.state()["loading"]

    for route in held:
        route.continue_()
    page.unroute(QUESTIONS)
    page.unroute(ANSWERS)
    app.wait_until("() => window.quorum.inspect().queued >= 4")
    app.answer("a")  # the prefetched batch takes over without a round trip
    assert page.evaluate("window.__timings").pop() < 150
    app.save()
    assert app.errors == []


def test_refused_and_failed_flushes_are_shown_and_keep_the_answers(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    # Answers of ~1.1 kB against a 2 kB body limit: any batch of two or more gets a 413.
    source = write_jsonl(tmp_path / "texts.jsonl", texts(8, words=120))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    server = start_server(settings, dataset_name, workers=1, max_body_bytes=2000)

    def forge_first_token(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        payload, mac = data["tasks"][0]["_token"].split(".", 1)
        data["tasks"][0]["_token"] = f"{payload}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
        route.fulfill(response=response, json=data)

    page.route(QUESTIONS, forge_first_token, times=1)
    app = AnnotationPage(page, server.url).open("eve")

    # 403: the forged answer is held with the server's message; its batch-mate gets through.
    app.answer("a")
    app.answer("a")
    app.press("Control+s")
    app.wait_status("held")
    assert app.status_text().strip() == "1 answer not accepted"
    notice = page.inner_text("#notice")
    assert "refused 1 answer" in notice and "signature does not match" in notice
    assert page.locator("#held-discard").is_visible()
    app.screenshot("outbox_refused_403")

    # 502 from a load balancer (HTML, not JSON): shown, then retried on its own.
    page.route(ANSWERS, lambda route: route.fulfill(status=502, body="<h1>Bad Gateway</h1>"), times=1)
    app.answer("x")
    app.press("Control+s")  # saving retries the held answer too
    app.wait_status("error")
    assert app.status_text().strip() == "server error — 2 answers waiting"
    assert "could not take your answers" in page.inner_text("#notice")
    app.screenshot("outbox_server_error_502")
    app.wait_status("held", timeout=15_000)  # the retry went through; the forged one stays

    # 413: a batch too large for the server is split until it fits.
    app.answer("a")
    app.answer("a")
    app.answer("a")
    app.press("Control+s")
    app.wait_until("() => window.quorum.inspect().outbox === 1")
    app.wait_status("held")

    assert answers_by_id(db_out(dataset_name, nats_url)) == {
        2: "accept",
        3: "reject",
        4: "accept",
        5: "accept",
        6: "accept",
    }
    page.click("#held-discard")
    app.wait_status("saved")
    assert page.locator("#notice").is_hidden()
    assert app.errors == []


def test_answers_survive_the_browser_being_killed_right_after_them(
    browser, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    """Issue 11 §4.2: answers given just before a hard kill are sent by the next browser, once."""
    source = write_jsonl(tmp_path / "texts.jsonl", texts(6))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    # One answer per request: the next browser resends the stalled batch exactly as it was.
    server = start_server(settings, dataset_name, workers=1, batch_size=1)
    profile = tmp_path / "profile"
    first = KillableChromium(browser.browser_type, profile)
    try:
        page = first.page
        # A slow server: the first batch reaches the ledger, its reply never comes back.
        stalled: list[Any] = []

        def record_then_stall(route: Any) -> None:
            route.fetch()
            stalled.append(route)

        page.route(ANSWERS, record_then_stall)
        app = AnnotationPage(page, server.url).open("mo")
        app.answer("a")
        app.press("Control+s")
        until(lambda: len(ledger_answers(nats_url, dataset_name)) == 1)
        # Two more answers wait behind the stalled request; kill the browser the moment
        # the app counts them as given (on disk), long before any flush timer.
        app.answer("x")
        app.answer(" ")
        app.wait_until("() => { const s = window.quorum.inspect(); return s.outbox === 3 && !s.unstored; }")
        assert app.state()["durable"]
    finally:
        first.kill()

    second = KillableChromium(browser.browser_type, profile)
    try:
        app = AnnotationPage(second.page, server.url).open("mo")
        app.wait_until("() => window.quorum.inspect().outbox === 0", timeout=15_000)
        app.wait_status("saved")
        assert app.errors == []
    finally:
        second.close()

    # Each answer is in the ledger once: the first one, sent twice with its decision key,
    # was stored once.
    events = ledger_answers(nats_url, dataset_name)
    assert len({event.task_hash for event in events}) == 3
    assert len(events) == 3, f"an answer was recorded twice: {[e.event_id for e in events]}"
    assert answers_by_id(db_out(dataset_name, nats_url)) == {1: "accept", 2: "reject", 3: "ignore"}


def test_an_outbox_an_older_version_left_in_local_storage_is_sent(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "texts.jsonl", texts(4))
    off_loop(load, textcat_manual(dataset_name, source, "Tech"))
    server = start_server(settings, dataset_name, workers=1)
    # What an earlier version of the app left behind: a task it was given, answered,
    # mirrored to localStorage (no decision key yet), never sent.
    with httpx.Client(base_url=server.url, timeout=10) as client:
        reply = client.post("/get_session_questions?session=old", json={"session_id": "old"})
    task = reply.json()["tasks"][0]
    key = f"quorum:outbox:{dataset_name}:old"
    legacy = [{"answer": {**task, "answer": "reject"}, "held": False, "error": None}]
    page.goto(f"{server.url}/static/index.html")
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, json.dumps(legacy)])

    app = AnnotationPage(page, server.url).open("old")
    app.wait_until("() => window.quorum.inspect().outbox === 0")
    assert app.task() != task["_task_hash"]  # its answer was waiting: not asked again
    assert page.evaluate("k => localStorage.getItem(k)", key) is None
    assert answers_by_id(db_out(dataset_name, nats_url)) == {1: "reject"}
    assert app.errors == []
