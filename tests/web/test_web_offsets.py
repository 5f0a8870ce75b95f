"""Span offsets between spaCy and the browser, in a real Chromium against a real server.

spaCy, Python and the ledger count code points; a JavaScript string counts UTF-16 code
units, and the two part ways after any character outside the Basic Multilingual Plane
(an emoji, 𝔘, 𠀋). Issue 11 §4.1: highlighting "Tim" after an emoji saved a span over
other characters. Each test highlights like an annotator, then checks what `quorum
db-out` exports: `text[start:end]` in Python is exactly what was highlighted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recipes.ner import ner_manual
from tests import browser as chromium
from tests.browser import AnnotationPage, db_out, load_tasks, off_loop, write_jsonl

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser, page = chromium.browser, chromium.page  # the fixtures every browser test uses

# (text, the entities to highlight: each a word, or a (first, last) word pair to drag over)
TEXTS: list[tuple[str, list[Any]]] = [
    ("😀 Tim met Ana in Köln.", ["Tim", "Köln"]),  # an emoji
    ("𝔘𝔫𝔦 and 𠀋 met Tim.", ["𝔘𝔫𝔦", "𠀋", "Tim"]),  # astral letters, a CJK Extension B ideograph
    ("😀 東京 と 王小明 の 会社", ["王小明"]),  # CJK after an emoji
    ("🇩🇪 Zoe\u0308 Saldan\u0303a lives here.", [("Zoe\u0308", "Saldan\u0303a")]),  # combining marks
    ("שלום 😀 דוד גר בחיפה.", ["דוד", "בחיפה"]),  # Hebrew, right to left
    ("مرحبا 🌍 محمد في القاهرة", ["محمد", "القاهرة"]),  # Arabic, right to left
]


def entity(item: Any) -> tuple[str, str]:
    return (item, item) if isinstance(item, str) else item


def marked(page: Any) -> list[str]:
    """The text of each highlight on screen, without its label."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('mark.span')].map(m => [...m.childNodes]
                .filter(n => !(n.classList && n.classList.contains('span-label')))
                .map(n => n.textContent).join(''))"""
        )
    )


def test_highlights_are_saved_in_code_points(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    records = [{"text": text, "meta": {"id": i}} for i, (text, _) in enumerate(TEXTS)]
    source = write_jsonl(tmp_path / "scripts.jsonl", records)
    off_loop(load, ner_manual(dataset_name, "blank:en", source, "PERSON,PLACE"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("uma")
    app.press("1")  # PERSON for every highlight from now on

    for text, items in TEXTS:
        assert app.text().startswith(text.split()[0]), app.text()
        expected = []
        for item in items:
            first, last = entity(item)
            if first == last:
                app.token(first).dblclick()
            else:
                app.drag(first, last)
            expected.append(text[text.index(first) : text.index(last) + len(last)])
        assert marked(page) == expected
        app.screenshot(f"offsets_{len(text)}")
        app.answer("a")
    app.save()
    assert app.errors == []

    rows = {row["meta"]["id"]: row for row in db_out(dataset_name, nats_url)}
    assert sorted(rows) == list(range(len(TEXTS)))
    for i, (text, items) in enumerate(TEXTS):
        row = rows[i]
        assert row["text"] == text
        saved = [row["text"][s["start"] : s["end"]] for s in row["spans"]]
        wanted = [text[text.index(a) : text.index(b) + len(b)] for a, b in map(entity, items)]
        assert saved == wanted, (text, row["spans"])
        for span in row["spans"]:  # and the token indices name the same words
            assert row["tokens"][span["token_start"]]["start"] == span["start"]
            assert row["tokens"][span["token_end"]]["end"] == span["end"]


def test_spans_that_come_with_a_task_are_shown_where_they_are(
    page, settings, dataset_name, load, start_server, nats_url, tmp_path: Path
):
    text = "😀😀 Lagos is big, 𠀋 Ada said."
    spans = [
        {"start": 3, "end": 8, "label": "PLACE"},
        {"start": 19, "end": 22, "label": "PERSON"},
    ]
    assert [text[s["start"] : s["end"]] for s in spans] == ["Lagos", "Ada"]
    source = write_jsonl(tmp_path / "preset.jsonl", [{"text": text, "spans": spans, "meta": {"id": 1}}])
    off_loop(load, ner_manual(dataset_name, "blank:en", source, "PERSON,PLACE"))
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("vic")

    assert marked(page) == ["Lagos", "Ada"]
    assert page.locator("#problems").inner_text() == ""
    app.answer("a")  # unchanged: the answer carries the spans as the task had them
    app.save()
    [row] = db_out(dataset_name, nats_url)
    assert [(s["start"], s["end"], s["label"]) for s in row["spans"]] == [(3, 8, "PLACE"), (19, 22, "PERSON")]
    assert [row["text"][s["start"] : s["end"]] for s in row["spans"]] == ["Lagos", "Ada"]


def test_read_only_text_shows_spans_where_they_are(page, settings, dataset_name, load, start_server):
    text = "مرحبا 🌍 محمد, 👍🏽 Zoe\u0308 and 𝔘𝔫𝔦."
    words = ["محمد", "Zoe\u0308", "𝔘𝔫𝔦"]
    spans = [{"start": text.index(w), "end": text.index(w) + len(w), "label": "PERSON"} for w in words]
    task = {"text": text, "spans": spans, "meta": {"id": 1}}
    load_tasks(load, dataset_name, "text", [task], {"labels": ["PERSON"]})
    server = start_server(settings, dataset_name, workers=1)
    app = AnnotationPage(page, server.url).open("wes")

    assert marked(page) == words
    assert page.locator("#problems").inner_text() == ""
    app.screenshot("offsets_read_only")
    assert app.errors == []
