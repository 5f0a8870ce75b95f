"""Workers hold no state: `kill -9` between handing out and answering loses nothing."""

from __future__ import annotations

import os
import signal
import time

import httpx

from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES


def _post(url, path, body):
    response = httpx.post(f"{url}{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_kill_9_of_every_worker_loses_no_task_and_no_answer(settings, dataset_name, load, start_server):
    # ack_wait is the dataset's routing setting: it lives in the JetStream consumer.
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"), ack_wait=3.0)
    feed = start_server(settings, dataset_name, workers=2, ack_wait=3.0)
    held = _post(feed.url, "/get_session_questions?session=alex", {})["tasks"]
    assert len(held) == 10

    os.killpg(feed.process.pid, signal.SIGKILL)  # the whole Granian process group, no goodbye
    feed.process.wait()
    feed = start_server(settings, dataset_name, workers=2, ack_wait=3.0)

    # Answers for tasks handed out by the dead workers are accepted by the new ones.
    answered = held[:5]
    result = _post(
        feed.url, "/give_answers?session=alex", {"answers": [{**t, "answer": "accept"} for t in answered]}
    )
    assert result["answered"] == 5

    # The abandoned half comes back after ack_wait; answered tasks never do.
    time.sleep(3.5)
    seen = {t["_task_hash"] for t in answered}
    counts: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) + len(counts) < 300 and time.monotonic() < deadline:
        tasks = _post(feed.url, "/get_session_questions?session=bob", {})["tasks"]
        if not tasks:  # redeliveries become available on the server's own timer
            time.sleep(0.2)
            continue
        for task in tasks:
            counts[task["_task_hash"]] = counts.get(task["_task_hash"], 0) + 1
        _post(feed.url, "/give_answers?session=bob", {"answers": [{**t, "answer": "reject"} for t in tasks]})
    assert not seen & set(counts), "an answered task was handed out again"
    assert all(n == 1 for n in counts.values())
    assert {t["_task_hash"] for t in held[5:]} <= set(counts)
    assert len(seen) + len(counts) == 300
    final = _post(feed.url, "/get_session_questions?session=carol", {})
    assert final["tasks"] == []
    assert final["answered"] == final["total"] == 300
