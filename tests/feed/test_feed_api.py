"""The feed API over HTTP, against real Granian workers (2 processes) and real NATS.

Write paths check three things: the HTTP answer, the event in the ledger, and the
row in the projection (`db-out`).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from feed.tokens import TaskToken, sign_token
from ledger.connection import connect
from ledger.events import AnswerRecorded
from ledger.store import Ledger
from projections.datasets import answers as current_answers
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, quorum_cli, run


@pytest.fixture
def served(settings, dataset_name, load, start_server):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech,Politics", exclusive=True))
    feed = start_server(settings, dataset_name, workers=2, max_body_bytes=64 * 1024)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        yield client


def questions(client, session="alex"):
    response = client.post(f"/get_session_questions?session={session}", json={})
    assert response.status_code == 200, response.text
    return response.json()


def give(client, answers, session="alex"):
    return client.post(f"/give_answers?session={session}", json={"answers": answers, "session_id": session})


async def _ledger_answers(nats_url, dataset, kind=AnswerRecorded):
    """The dataset's events of `kind` in the ledger, repeats included."""
    nc = await connect(nats_url)
    try:
        return [e async for entry in Ledger(nc).read(dataset) for e in entry.events if isinstance(e, kind)]
    finally:
        await nc.close()


def assert_error(response, status, code, fragment):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) - {"task_hash"} == {"error", "message", "status"}
    assert body["status"] == status and body["error"] == code
    assert fragment in body["message"]


def test_project_health_ready_and_openapi(served, dataset_name):
    project = served.get("/project").json()
    assert project["dataset"] == dataset_name
    assert project["view_id"] == "choice"
    assert project["labels"] == ["Tech", "Politics"]
    assert project["choice_style"] == "single"
    assert served.get("/health").json() == {"status": "ok"}
    assert served.get("/ready").json() == {"status": "ok"}
    paths = served.get("/schema/openapi.json").json()["paths"]
    assert {"/project", "/get_session_questions", "/give_answers", "/health", "/ready"} <= set(paths)


def test_static_serves_the_app_assets_and_nothing_else(served):
    script = served.get("/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "import" in script.text
    assert served.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert served.get("/static/views/choice.js").status_code == 200
    for path in ("/static/__init__.py", "/static/nothing.js", "/static/%2e%2e/feed/app.py", "/static/views"):
        assert served.get(path).status_code == 404, path


def test_questions_carry_hashes_as_strings_and_a_token(served):
    batch = questions(served)
    assert batch["total"] == 300 and batch["session_id"].endswith("-alex")
    task = batch["tasks"][0]
    assert isinstance(task["_task_hash"], str) and isinstance(task["_input_hash"], str)
    assert int(task["_task_hash"]) != 0 and task["_token"].count(".") == 1
    assert [o["id"] for o in task["options"]] == ["Tech", "Politics"]


def test_answer_is_in_ledger_and_db_out_and_never_handed_out_again(served, nats_url, dataset_name):
    batch = questions(served)
    first, rest = batch["tasks"][0], batch["tasks"][1:]
    response = give(served, [{**first, "answer": "accept", "accept": ["Tech"]}])
    assert response.status_code == 200 and response.json()["answered"] == 1
    [event] = run(_ledger_answers(nats_url, dataset_name))
    assert event.task_hash == int(first["_task_hash"]) and event.session == "alex"
    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url})
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert (
        row["accept"] == ["Tech"]
        and row["answer"] == "accept"
        and row["_session_id"] == f"{dataset_name}-alex"
    )
    # Answer the rest so the queue is drained, then nothing comes back: the answered task is acked.
    assert give(served, [{**t, "answer": "reject"} for t in rest]).status_code == 200
    seen = {first["_task_hash"]} | {t["_task_hash"] for t in rest}
    while tasks := questions(served, "bob")["tasks"]:
        assert not seen & {t["_task_hash"] for t in tasks}
        seen |= {t["_task_hash"] for t in tasks}
        assert give(served, [{**t, "answer": "ignore"} for t in tasks], "bob").status_code == 200
    assert len(seen) == 300


def test_same_batch_twice_gives_one_set_of_events(served, nats_url, dataset_name):
    """The web app's retry: every answer carries its decision key, so the repeat is dropped."""
    tasks = questions(served)["tasks"][:3]
    batch = [
        {**t, "answer": "accept", "accept": ["Politics"], "_decision_id": f"retry-test-{i:04d}"}
        for i, t in enumerate(tasks)
    ]
    assert give(served, batch).status_code == 200
    assert give(served, batch).status_code == 200
    events = run(_ledger_answers(nats_url, dataset_name))
    assert len({e.event_id for e in events}) == 3
    assert len(events) == 3  # the second append was dropped by Nats-Msg-Id dedupe
    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url})
    assert len(out.stdout.splitlines()) == 3


def test_same_unkeyed_batch_twice_counts_once(served, nats_url, dataset_name):
    """Without decision keys the ledger keeps what it was sent; the dataset counts it once."""
    tasks = questions(served)["tasks"][:3]
    batch = [{**t, "answer": "accept", "accept": ["Politics"]} for t in tasks]
    assert give(served, batch).status_code == 200
    first = {json.loads(line)["_task_hash"]: line for line in _db_out(nats_url, dataset_name)}
    time.sleep(1.1)  # a later `_timestamp` would show if the repeat counted
    assert give(served, batch).status_code == 200
    again = {json.loads(line)["_task_hash"]: line for line in _db_out(nats_url, dataset_name)}
    assert again == first and len(first) == 3


def _db_out(nats_url, dataset):
    out = quorum_cli("db-out", dataset, env={"NATS_URL": nats_url})
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().splitlines()


def test_changed_answer_after_undo_supersedes(served, nats_url, dataset_name):
    task = questions(served)["tasks"][0]
    assert give(served, [{**task, "answer": "accept", "accept": ["Tech"]}]).status_code == 200
    assert give(served, [{**task, "answer": "reject", "accept": []}]).status_code == 200

    async def current():
        nc = await connect(nats_url)
        try:
            return [e async for e in current_answers(nc, dataset_name)]
        finally:
            await nc.close()

    [latest] = run(current())
    assert latest.answer == "reject"


def test_invalid_json_is_400(served):
    response = served.post(
        "/give_answers?session=alex", content=b'{"answers": [', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "bad_request", "")


def test_unknown_answer_value_is_422_and_nothing_is_written(served, nats_url, dataset_name):
    tasks = questions(served)["tasks"][:2]
    response = give(served, [{**tasks[0], "answer": "accept"}, {**tasks[1], "answer": "maybe"}])
    assert_error(response, 422, "invalid_answer", "unknown answer 'maybe'")
    assert run(_ledger_answers(nats_url, dataset_name)) == []


def test_missing_forged_and_expired_tokens_are_403(served, nats_url, dataset_name):
    task = questions(served)["tasks"][0]
    no_token = {k: v for k, v in task.items() if k != "_token"}
    assert_error(give(served, [{**no_token, "answer": "accept"}]), 403, "forbidden", "no task token")
    payload, mac = task["_token"].split(".")
    forged = {**task, "_token": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac}
    assert_error(give(served, [{**forged, "answer": "accept"}]), 403, "forbidden", "")
    wrong_secret = sign_token(
        b"not-the-secret", TaskToken("x", dataset_name, "alex", int(task["_task_hash"]), 0, 2**50)
    )
    assert_error(
        give(served, [{**task, "_token": wrong_secret, "answer": "accept"}]), 403, "forbidden", "forged"
    )
    other_task = {**task, "_task_hash": str(int(task["_task_hash"]) + 1), "answer": "accept"}
    assert_error(give(served, [other_task]), 403, "forbidden", "another task")
    assert_error(
        give(served, [{**task, "answer": "accept"}], session="mallory"),
        403,
        "forbidden",
        "issued to session 'alex'",
    )
    assert run(_ledger_answers(nats_url, dataset_name)) == []


def test_expired_token_is_403(settings, dataset_name, load, start_server, nats_url):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(settings, dataset_name, token_ttl=0.5)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        task = questions(client)["tasks"][0]
        time.sleep(1.0)
        assert_error(give(client, [{**task, "answer": "accept"}]), 403, "token_expired", "expired")
    assert run(_ledger_answers(nats_url, dataset_name)) == []


def test_a_reload_never_returns_a_task_whose_token_expired(settings, dataset_name, load, start_server):
    """Before: `reload` gave back held tasks with their expired tokens, which the app could
    only send to be refused (and reload again)."""
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(settings, dataset_name, token_ttl=1.0)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        first = {t["_task_hash"] for t in questions(client)["tasks"]}
        time.sleep(1.5)
        response = client.post("/get_session_questions?session=alex", json={"reload": True})
        assert response.status_code == 200, response.text
        again = response.json()["tasks"]
        assert again and not first & {t["_task_hash"] for t in again}
        assert give(client, [{**again[0], "answer": "accept"}]).status_code == 200


def test_body_over_limit_is_413(served):
    big = [{"text": "x" * 70_000, "answer": "accept"}]
    assert_error(give(served, big), 413, "body_too_large", "smaller batches")


def test_invalid_session_is_400(served):
    for bad in ("al.ex", "a b", "*", ">"):
        response = served.post("/get_session_questions", params={"session": bad}, json={})
        assert_error(response, 400, "bad_request", "invalid session name")
    assert_error(served.post("/get_session_questions", json={}), 400, "bad_request", "no session")


def test_answers_must_be_a_list_of_objects(served):
    assert served.post("/give_answers?session=alex", json={"answers": "nope"}).status_code == 400
    assert_error(give(served, ["nope"]), 422, "invalid_answer", "JSON object")
