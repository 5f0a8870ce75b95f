"""The spine end to end: recipe → TASKS → two Granian workers → ledger → db-out."""

from __future__ import annotations

import json

import httpx

from recipes.ner import ner_manual
from tests.conftest import EXAMPLES, quorum_cli


def test_answer_given_to_one_worker_for_task_from_other_is_recorded(
    settings, dataset_name, load, start_server, nats_url
):
    components = ner_manual(dataset_name, "blank:en", EXAMPLES / "news.jsonl", "PERSON,ORG")
    summary = load(components)
    assert summary.queued == 300
    feed = start_server(settings, dataset_name, workers=2)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        batch = client.post("/get_session_questions?session=alex", json={}).json()
        assert len(batch["tasks"]) == settings.batch_size
        task = batch["tasks"][0]
        first = task["tokens"][0]
        span = {
            "start": first["start"],
            "end": first["end"],
            "token_start": 0,
            "token_end": 0,
            "label": "ORG",
        }
        answer = {**task, "answer": "accept", "spans": [span]}
        # Many new connections: Granian spreads them over both workers.
        for _ in range(4):
            with httpx.Client(base_url=feed.url, timeout=10) as other:
                response = other.post(
                    "/give_answers", json={"answers": [answer], "session_id": f"{dataset_name}-alex"}
                )
                assert response.status_code == 200, response.text
    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 1
    assert rows[0]["answer"] == "accept"
    assert rows[0]["_task_hash"] == int(task["_task_hash"])
    assert rows[0]["spans"] == [span]
