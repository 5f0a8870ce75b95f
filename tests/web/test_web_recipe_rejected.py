"""A recipe's `validate_answer` refusal in the web app, in a real Chromium against a real
`quorum … -F recipe.py` server.

The issue: "raising gives 422 with the message, which the web app shows to the annotator
while keeping the answer on screen to fix." The refused answer is neither dropped nor
retried forever: its task comes back on screen with the recipe's message in an alert, the
rest of its batch is recorded, and the answer given again is recorded in its place.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import browser as chromium
from tests.browser import AnnotationPage, db_out, ledger_answers
from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]
browser, page = chromium.browser, chromium.page  # the fixtures every browser test uses

ANSWERS = re.compile(r"/give_answers\b")
RECIPE = """
import prodigy


@prodigy.recipe("checked.text", dataset=("Dataset", "positional", None, str))
def checked(dataset):
    def validate_answer(eg):
        assert eg["answer"] != "ignore", f"“{eg['text']}” is required: accept or reject it"

    return {
        "dataset": dataset,
        "view_id": "text",
        "stream": [{"text": f"headline {n}"} for n in range(1, 13)],
        "validate_answer": validate_answer,
    }
"""


@pytest.fixture
def recipe_server(tmp_path: Path, nats_url: str) -> Iterator[Callable[[str], str]]:
    """`recipe_server(dataset)`: the URL of `quorum checked.text DATASET -F recipe.py`."""
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "server.log"

    def start(dataset: str) -> str:
        recipe = tmp_path / "recipe.py"
        recipe.write_text(textwrap.dedent(RECIPE), encoding="utf-8")
        port = free_port()
        command = [sys.executable, "-c", "from quorum.cli import main; main()", "checked.text", dataset]
        command += ["-F", str(recipe), "--port", str(port), "--host", "127.0.0.1", "--workers", "1"]
        with log.open("wb") as out:  # a file, not a pipe: a chatty server never blocks on it
            process = subprocess.Popen(
                command, env={**os.environ, "NATS_URL": nats_url}, cwd=tmp_path, stderr=out
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the recipe server did not start: {log.read_text(errors='replace')}")

    yield start
    for process in started:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_refused_answer_comes_back_on_screen_with_the_recipes_message(
    page: Any, recipe_server: Callable[[str], str], dataset_name: str, nats_url: str
) -> None:
    url = recipe_server(dataset_name)
    replies: list[Any] = []
    page.on("response", lambda r: replies.append(r) if ANSWERS.search(r.url) else None)
    app = AnnotationPage(page, url).open("alex")
    texts: dict[str | None, str] = {}
    for key in ("a", " ", "a"):  # one batch: accept, ignore (the recipe refuses it), accept
        texts[app.task()] = app.text()
        app.answer(key)
    refused, after = list(texts)[1], app.task()
    app.press("Control+s")

    alert = page.get_by_role("alert").filter(has_text="refused your answer")
    alert.wait_for()
    message = f"“{texts[refused]}” is required: accept or reject it."
    assert message in alert.inner_text()
    assert "You had ignored it" in alert.inner_text()
    assert app.task() == refused  # back on screen, to be answered again
    app.screenshot("recipe_rejected")
    app.wait_until("() => window.quorum.inspect().outbox === 0")  # the rest of the batch went
    assert app.state()["counts"] == {"accept": 2, "reject": 0, "ignore": 0}

    assert app.answer("a") == after  # the task that was on screen comes next
    assert alert.count() == 0
    app.save()

    # The batch of three, refused; the two others again, recorded; the answer given again.
    assert [reply.status for reply in replies] == [422, 200, 200]
    assert [len(reply.request.post_data_json["answers"]) for reply in replies] == [3, 2, 1]
    assert replies[0].json() == {
        "error": "recipe_rejected",
        "message": message.rstrip("."),
        "status": 422,
        "task_hash": refused,
    }
    events = ledger_answers(nats_url, dataset_name)
    assert sorted(e.answer for e in events) == ["accept"] * 3  # no ignore ever stored
    rows = {str(row["_task_hash"]): row["answer"] for row in db_out(dataset_name, nats_url)}
    assert rows == dict.fromkeys(texts, "accept")
    assert app.errors == []
