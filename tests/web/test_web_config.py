"""The project config the web app honours, in a real Chromium against a real server.

One dataset carries Prodigy's config keys (`instructions`, `history_size`,
`custom_theme`, `keymap`, `buttons`) and one server and one tab serve every test here,
since starting them is most of a browser test's time. Each test checks what an
annotator sees or can do, whatever the tests before it answered.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger.hashing import set_hashes
from quorum.serve import FeedProcess, start_feed
from recipes.components import Components
from recipes.runner import load_components
from recipes.settings import load_settings
from tests import browser as chromium
from tests.browser import AnnotationPage, ledger_answers, off_loop
from tests.conftest import free_port, run

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser = chromium.browser  # the module's Chromium; this module keeps one tab for all its tests

INSTRUCTIONS = """# Labelling guide

Mark every **person** by name. Read [the guide](https://example.org/guide) first,
and never [this one](javascript:window.__pwned=1).

<script>window.__pwned = true</script>

1. Names of people are PERSON.
2. Companies are ORG.
"""

CONFIG = {
    "labels": ["PERSON", "ORG"],
    "instructions": {"format": "markdown", "text": INSTRUCTIONS},
    "history_size": 2,
    "custom_theme": {"labels": {"PERSON": "#ffd966"}, "cardMaxWidth": 640, "bgCard": "#000000"},
    "keymap": {"accept": ["J"], "ignore": ["space"], "fly": ["f"]},
    "buttons": ["accept", "reject"],
}


def task(i: int) -> dict[str, Any]:
    """Task `i`: "Anna Smith" is a PERSON and "Acme" an ORG in each, so any task on screen shows both."""
    text = f"Anna Smith met the board of Acme in Berlin, round {i}."
    tokens = [
        {"text": m.group(), "start": m.start(), "end": m.end(), "id": n}
        for n, m in enumerate(re.finditer(r"\w+|[^\s\w]", text))
    ]
    spans = [{"start": 0, "end": 10, "label": "PERSON"}, {"start": 28, "end": 32, "label": "ORG"}]
    return {"text": text, "tokens": tokens, "spans": spans, "meta": {"id": i}}


TASKS = [task(i) for i in range(1, 21)]


@dataclass
class Served:
    app: AnnotationPage
    dataset: str
    nats_url: str
    console: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(browser: Any, nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The dataset above, queued and served, open in one tab as session "cam"."""
    dataset = f"t{uuid.uuid4().hex[:10]}"
    data_dir: Path = tmp_path_factory.mktemp("config-data")
    settings = load_settings({}, nats_url=nats_url, data_dir=data_dir, port=free_port(), host="127.0.0.1")
    stream = [set_hashes(task) for task in TASKS]
    components = Components(
        recipe="custom",
        dataset=dataset,
        view_id="ner_manual",
        stream=stream,
        config=CONFIG,
        total=len(stream),
    )
    off_loop(run, load_components(nats_url, components, settings))
    feed: FeedProcess = start_feed(settings.with_overrides(dataset=dataset, workers=1), nats_url)
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        served = Served(AnnotationPage(page, feed.url), dataset, nats_url)
        page.on("console", lambda msg: served.console.append(f"{msg.type}: {msg.text}"))
        served.app.open("cam")
        yield served
        assert served.app.errors == []
    finally:
        context.close()
        feed.stop()


def counts(app: AnnotationPage) -> dict[str, int]:
    return dict(app.state()["counts"])


def test_instructions_open_from_the_top_bar_as_rendered_markdown(served: Served) -> None:
    app, page = served.app, served.app.page
    dialog = page.locator("#instructions")
    assert not dialog.is_visible()
    assert page.locator("#instructions").count() == 1 and page.locator("details.instructions").count() == 0

    # Keyboard reachable: focus the top bar's button, press Enter.
    button = page.locator("#instructions-button")
    assert button.get_attribute("aria-keyshortcuts") == "i"
    button.focus()
    app.press("Enter")
    assert dialog.is_visible()
    assert page.evaluate("document.activeElement.id") == "instructions-body"  # arrow keys scroll it
    body = page.locator("#instructions-body")
    assert body.locator("h1, h2, h3, h4, h5, h6").first.inner_text() == "Labelling guide"
    assert body.locator("strong").inner_text() == "person"
    links = body.locator("a")
    assert links.count() == 1  # the javascript: link is its text only
    assert (links.get_attribute("href"), links.inner_text()) == ("https://example.org/guide", "the guide")
    assert links.get_attribute("target") == "_blank"
    assert "never this one" in body.inner_text()
    assert body.locator("ol li").count() == 2
    # The <script> in the Markdown is text on screen: no element, nothing ran.
    assert page.locator("#instructions script").count() == 0
    assert "<script>window.__pwned = true</script>" in body.inner_text()
    assert page.evaluate("window.__pwned") is None
    app.screenshot("config_instructions")

    app.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate("document.activeElement.id") == "instructions-button"  # focus goes back
    app.press("i")
    assert dialog.is_visible()
    app.press("?")  # the help replaces it
    assert page.locator("#help").is_visible() and not dialog.is_visible()
    app.press("?")
    app.press("i")
    app.press("i")
    assert not dialog.is_visible() and not page.locator("#help").is_visible()


def test_html_instructions_are_shown_without_what_could_run(served: Served) -> None:
    page = served.app.page
    html = page.evaluate(
        """async () => {
        const { renderInstructions } = await import('/static/instructions.js');
        const box = document.createElement('div');
        box.append(renderInstructions({format: 'html', text:
          '<h2 onclick="window.__pwned = 1">Rules</h2><p>Be <b>kind</b>.</p>' +
          '<script>window.__pwned = 2</script><img src="/static/none.png" onerror="window.__pwned = 3">' +
          '<a href=" javascript:window.__pwned = 4">bad</a><a href="https://example.org/">good</a>' +
          '<style>body { display: none }</style>'}));
        document.body.append(box);
        await new Promise((resolve) => setTimeout(resolve, 300));  // the image fails meanwhile
        box.remove();
        return box.innerHTML;
    }"""
    )
    assert page.evaluate("window.__pwned") is None
    assert "<b>kind</b>" in html and 'href="https://example.org/"' in html
    for gone in ("<script", "onclick", "onerror", "javascript:", "<style"):
        assert gone not in html


def test_history_size_lists_the_last_two_answers(served: Served) -> None:
    app, page = served.app, served.app.page
    for key in ("j", "x", " "):
        app.answer(key)
    items = page.locator("#history li")
    assert items.count() == 2
    assert [item.get_attribute("class") for item in items.all()] == [
        "history-item ignore",
        "history-item reject",
    ]


def test_remapped_accept_key_replaces_the_default(served: Served) -> None:
    app, page = served.app, served.app.page
    before, task = counts(app), app.task()
    app.press("a")  # the default key no longer accepts
    assert (counts(app), app.task()) == (before, task)
    app.answer("j")
    assert counts(app)["accept"] == before["accept"] + 1

    # The button and the help show the keys in force.
    assert page.inner_text("#btn-accept kbd") == "j"
    assert page.get_attribute("#btn-accept", "aria-keyshortcuts") == "j"
    app.press("?")
    assert page.inner_text("#keys-accept") == "j"
    assert page.inner_text("#keys-reject") == "x"
    assert page.locator("#keys-instructions").is_visible()
    app.screenshot("config_help_keys")
    app.press("Escape")
    assert any("fly" in line for line in served.console if line.startswith("warning"))

    app.save()
    answers = [e for e in ledger_answers(served.nats_url, served.dataset) if str(e.task_hash) == task]
    assert [e.answer for e in answers] == ["accept"]


def test_buttons_shows_only_accept_and_reject_but_keys_still_work(served: Served) -> None:
    app, page = served.app, served.app.page
    assert page.locator("#btn-accept").is_visible() and page.locator("#btn-reject").is_visible()
    assert page.locator("#btn-ignore").is_hidden() and page.locator("#btn-undo").is_hidden()
    assert page.locator("#btn-save").is_visible()
    task = app.task()
    app.answer(" ")  # ignore: no button, but its key
    app.press("Backspace")  # undo, likewise
    app.wait_until("h => document.getElementById('card').dataset.taskHash === h", arg=task)


def test_custom_theme_colours_labels_and_sizes_the_card(served: Served) -> None:
    page = served.app.page
    background = "mark.span[data-label='{}'] >> nth=0"
    person = page.locator(background.format("PERSON")).evaluate("el => getComputedStyle(el).backgroundColor")
    org = page.locator(background.format("ORG")).evaluate("el => getComputedStyle(el).backgroundColor")
    assert person == "rgb(255, 217, 102)"  # the theme's #ffd966
    assert org == "rgb(185, 216, 255)"  # the palette's second colour: ORG is the second label
    assert page.locator("#card").bounding_box()["width"] <= 640
    served.app.screenshot("config_theme")


def test_keymap_conflicts_and_bad_names_keep_the_defaults(served: Served) -> None:
    result = served.app.page.evaluate(
        """async () => {
        const { Keymap } = await import('/static/keymap.js');
        const warnings = [];
        const keymap = new Keymap(
          {accept: ['x'], reject: ['X'], ignore: ['?', 'ctrl+q'], undo: ['u', 'BACKSPACE']},
          (message) => warnings.push(message),
        );
        return {keys: keymap.keys, warnings};
    }"""
    )
    assert result["keys"] == {"accept": ["a"], "reject": ["x"], "ignore": [" "], "undo": ["u", "Backspace"]}
    assert len(result["warnings"]) == 3, result["warnings"]
