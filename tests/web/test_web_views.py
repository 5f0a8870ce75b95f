"""The annotation app's views in a real Chromium, against a real feed server and NATS.

Each test annotates like a person would (key presses, mouse drags), then checks what
`quorum db-out` exports. Screenshots of every view land in test-output/screenshots/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recipes.ner import ner_manual
from recipes.textcat import textcat_manual
from tests import browser as chromium
from tests.browser import AnnotationPage, db_out, load_tasks, off_loop, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser, page = chromium.browser, chromium.page  # the fixtures every browser test uses

NEWS = [
    {"text": "Anna Smith joined Acme Corp in Berlin.", "meta": {"id": 1}},
    {"text": "The weather was mild all week.", "meta": {"id": 2}},
    {
        "text": "Ben Ode visited Lagos on Friday.",
        "spans": [{"start": 16, "end": 21, "label": "ORG"}],
        "meta": {"id": 3},
    },
    {
        "text": " ".join(
            f"Sentence {i} of a long report about the Northwind Labs budget in Marseille and "
            "the reviewers in Lisbon who praised the battery life of Quanta OS."
            for i in range(1, 13)
        ),
        "meta": {"id": 4},
    },
]

TOPICS = [
    {"text": "Parliament passed the budget after a long night.", "meta": {"id": 1}},
    {"text": "The new phone ships with a faster chip.", "meta": {"id": 2}},
    {"text": "The striker scored twice in the final.", "meta": {"id": 3}},
]


def by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["meta"]["id"]: row for row in rows}


def test_ner_manual_highlight_answer_undo_and_export(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "news.jsonl", NEWS)
    off_loop(load, ner_manual(dataset_name, "blank:en", source, "PERSON,ORG,PRODUCT,LOCATION"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("alex")
    assert page.inner_text("#session") == "alex"
    assert [b.inner_text().split()[-1] for b in page.locator(".label").all()] == [
        "PERSON",
        "ORG",
        "PRODUCT",
        "LOCATION",
    ]

    # Task 1: drag over two words, then pick the label by number key.
    assert app.text().startswith("Anna Smith joined")
    app.drag("Anna", "Smith")
    assert page.locator(".tok.pending").count() == 2
    assert "pick a label" in app.hint()
    app.press("1")
    mark = page.locator("mark.span")
    assert mark.count() == 1 and mark.get_attribute("data-label") == "PERSON"
    # A selection that overlaps the highlight is refused, visibly.
    app.drag("Smith", "joined")
    assert "can't overlap" in app.hint()
    assert page.locator("mark.span").count() == 1
    app.screenshot("ner_manual")
    first = app.task()
    app.answer("a")

    # Task 2: reject. Task 3 shows its pre-set span; ignore it, and send everything.
    assert app.text().startswith("The weather")
    app.answer("x")
    assert app.text().startswith("Ben Ode")
    assert page.locator('mark.span[data-label="ORG"]').inner_text().startswith("Lagos")
    third = app.task()
    app.answer(" ")
    app.save()
    assert app.state()["counts"] == {"accept": 1, "reject": 1, "ignore": 1}

    # Undo brings task 3 back, already sent; change the answer: fix the spans, accept.
    app.press("Backspace")
    app.wait_until("h => document.getElementById('card').dataset.taskHash === h", arg=third)
    assert app.state()["counts"] == {"accept": 1, "reject": 1, "ignore": 0}
    page.locator('mark.span[data-label="ORG"]').click()
    assert page.locator("mark.span").count() == 0
    app.press("4")  # LOCATION becomes the active label: the next selection gets it at once
    app.token("Lagos").dblclick()
    app.press("1")
    app.drag("Ben", "Ode")
    assert [m.get_attribute("data-label") for m in page.locator("mark.span").all()] == [
        "PERSON",
        "LOCATION",
    ]
    app.answer("a")

    # Task 4: a long text wraps inside the card instead of overflowing it.
    assert app.text().startswith("Sentence 1 of")
    overflow = page.evaluate(
        "() => { const c = document.getElementById('card'); return c.scrollWidth - c.clientWidth; }"
    )
    assert overflow <= 0
    app.screenshot("ner_manual_long_text")
    app.save()
    assert app.errors == []

    rows = by_id(db_out(dataset_name, nats_url))
    assert sorted(rows) == [1, 2, 3]
    assert rows[1]["answer"] == "accept"
    assert str(rows[1]["_task_hash"]) == first
    assert rows[1]["spans"] == [{"start": 0, "end": 10, "token_start": 0, "token_end": 1, "label": "PERSON"}]
    assert rows[2]["answer"] == "reject"
    assert rows[3]["answer"] == "accept"
    assert rows[3]["spans"] == [
        {"start": 0, "end": 7, "token_start": 0, "token_end": 1, "label": "PERSON"},
        {"start": 16, "end": 21, "token_start": 3, "token_end": 3, "label": "LOCATION"},
    ]
    assert all(row["_session_id"] == f"{dataset_name}-alex" for row in rows.values())


def test_choice_single_picks_and_submits_at_once(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "topics.jsonl", TOPICS)
    off_loop(load, textcat_manual(dataset_name, source, "Tech,Politics,Sports", exclusive=True))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("sam")
    assert page.locator('.option[role="radio"]').count() == 3
    app.screenshot("choice_single")

    app.answer("2")  # picking an option answers the task
    before = app.task()
    page.locator('.option[data-id="Sports"]').click()
    app.wait_for_task(after=before)  # a click on an option answers too
    app.answer("x")
    app.save()

    rows = by_id(db_out(dataset_name, nats_url))
    assert (rows[1]["answer"], rows[1]["accept"]) == ("accept", ["Politics"])
    assert (rows[2]["answer"], rows[2]["accept"]) == ("accept", ["Sports"])
    assert (rows[3]["answer"], rows[3]["accept"]) == ("reject", [])


def test_choice_multiple_toggles_options_then_accepts(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "topics.jsonl", TOPICS)
    off_loop(load, textcat_manual(dataset_name, source, "Tech,Politics,Sports"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("kim")
    assert page.locator('.option[role="checkbox"]').count() == 3

    app.press("1")
    app.press("3")
    assert page.locator('.option[aria-checked="true"]').count() == 2
    app.screenshot("choice_multiple")
    app.answer("a")
    app.press("2")
    app.press("3")
    app.press("2")  # pressing again takes the option back
    app.answer("a")
    app.save()

    rows = by_id(db_out(dataset_name, nats_url))
    assert (rows[1]["answer"], rows[1]["accept"]) == ("accept", ["Tech", "Sports"])
    assert (rows[2]["answer"], rows[2]["accept"]) == ("accept", ["Sports"])


def test_classification_accept_reject_ignore(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(tmp_path / "topics.jsonl", TOPICS)
    off_loop(load, textcat_manual(dataset_name, source, "Politics"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("lee")
    assert page.inner_text(".label-chip") == "Politics"
    app.screenshot("classification")

    app.answer("a")
    app.answer("x")
    page.locator("#help-button").focus()  # space must ignore the task, not press the button
    app.press(" ")
    app.wait_until("() => window.quorum.inspect().counts.ignore === 1")
    assert not page.locator("#help").is_visible()
    app.save()

    rows = by_id(db_out(dataset_name, nats_url))
    assert [rows[i]["answer"] for i in (1, 2, 3)] == ["accept", "reject", "ignore"]
    assert all(row["label"] == "Politics" for row in rows.values())


def test_help_session_prompt_and_a_refused_session(
    page, settings, dataset_name, load, start_server, tmp_path
):
    source = write_jsonl(tmp_path / "topics.jsonl", TOPICS)
    off_loop(load, textcat_manual(dataset_name, source, "Politics"))
    server = start_server(settings, dataset_name, workers=1, allowed_sessions="help,robin")
    app = AnnotationPage(page, server.url).open("help")
    app.press("?")
    help_text = page.inner_text("#help")
    for words in ("Accept", "Reject", "Ignore", "Undo", "Send waiting answers now"):
        assert words in help_text
    app.screenshot("help")
    app.press("Escape")
    assert not page.locator("#help").is_visible()

    # The page without a session asks for one instead of failing.
    page.goto(f"{server.url}/")
    page.fill("#session-input", "robin")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?session=robin")
    # Session "help" holds all three tasks, so robin is told there is nothing right now.
    page.wait_for_selector("text=No tasks available right now.")
    assert page.inner_text("#session") == "robin"
    app.screenshot("no_tasks")

    # A session the server refuses (403) is told why and what to do.
    page.goto(f"{server.url}/?session=zed")
    page.wait_for_selector("text=The server won't hand out tasks to “zed”")
    card = page.inner_text("#card")
    assert "not allowed to annotate here" in card and "ask the project owner" in card
    app.screenshot("refused_session")
    assert app.errors == []


def test_bad_tasks_render_a_message_in_the_card(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [  # a first task without text would stop the recipe: the runner checks task 1
            {"text": "Short text.", "spans": [{"start": 40, "end": 52, "label": "ORG"}], "meta": {"id": 2}},
            {"text": "", "meta": {"id": 1}},
        ],
    )
    off_loop(load, ner_manual(dataset_name, "blank:en", source, "PERSON,ORG"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("pat")

    problems = page.inner_text("#problems")
    assert "outside this task's text" in problems and "ORG" in problems
    assert app.text().startswith("Short text.")
    app.screenshot("bad_span_outside_text")
    app.answer("a")
    assert "text is empty" in page.inner_text("#problems")
    app.screenshot("bad_empty_text")
    app.answer(" ")
    app.save()
    assert app.errors == []

    rows = by_id(db_out(dataset_name, nats_url))
    assert rows[1]["answer"] == "ignore"
    assert (rows[2]["answer"], rows[2]["spans"]) == ("accept", [])


def test_unknown_view_falls_back_to_text_with_a_message(
    page, settings, dataset_name, load, start_server, nats_url
):
    text = "A task for a view nobody wrote <b>and no HTML</b>."
    config = {"labels": [], "instructions": "Read each text.\nAnswer honestly."}
    load_tasks(load, dataset_name, "bogus", [{"text": text, "meta": {"id": 1}}], config)
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("pat")

    assert "“bogus”" in page.inner_text("#problems")
    assert app.text() == text  # task text is shown as text, never parsed as HTML
    assert page.locator("#card-body b").count() == 0
    page.click("#instructions-button")  # a plain string (datasets from before files): Markdown
    assert page.inner_text("#instructions-body") == "Read each text. Answer honestly."
    app.press("Escape")
    app.screenshot("bad_unknown_view")
    app.answer("a")
    app.save()
    rows = db_out(dataset_name, nats_url)
    assert [(row["text"], row["answer"]) for row in rows] == [(text, "accept")]
