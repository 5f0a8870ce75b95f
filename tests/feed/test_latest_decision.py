"""Issue 11 §1 and §3: the latest decision wins, retries never duplicate, and a task takes
answers from no more sessions than its routing allows — over HTTP, against real Granian
workers and NATS, checked in the ledger and in `db-out` / `stats`.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ledger.events import AnswerRecorded, DatasetConfigured
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, quorum_cli, run
from tests.feed.test_feed_api import _ledger_answers, give, questions
from tests.ledger.test_drop import dropped_flags

NEWS = EXAMPLES / "news.jsonl"


@pytest.fixture
def served(settings, dataset_name, load, start_server):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    feed = start_server(settings, dataset_name, workers=2)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        yield client


def rows(nats_url: str, dataset: str) -> list[dict]:
    out = quorum_cli("db-out", dataset, env={"NATS_URL": nats_url})
    assert out.returncode == 0, out.stderr.decode()
    return [json.loads(line) for line in out.stdout.splitlines()]


def stats(nats_url: str, dataset: str) -> str:
    out = quorum_cli("stats", dataset, env={"NATS_URL": nats_url})
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


@pytest.mark.parametrize("keyed", [False, True], ids=["api-client", "web-app"])
def test_accept_reject_accept_ends_on_accept(served, nats_url, dataset_name, keyed):
    """Three separate submissions by one session: the third decision is the dataset's.

    Before: the third answer's content id equalled the first's, it was deduped against it,
    and db-out, stats, agreement and replay all showed `reject`.
    """
    task = questions(served)["tasks"][0]
    for n, decision in enumerate(["accept", "reject", "accept"]):
        key = {"_decision_id": f"decision-{n:04d}", "_timestamp": 1_800_000_000 + n} if keyed else {}
        assert give(served, [{**task, "answer": decision, **key}]).status_code == 200
    [row] = rows(nats_url, dataset_name)
    assert row["answer"] == "accept" and row["_task_hash"] == int(task["_task_hash"])
    assert "_decision_id" not in row
    assert "accept" in stats(nats_url, dataset_name)
    assert len(run(_ledger_answers(nats_url, dataset_name))) == 3


def test_a_retried_decision_changes_nothing_after_a_later_one(served, nats_url, dataset_name):
    """The web app's outbox may resend an old decision after a newer one was recorded."""
    task = questions(served)["tasks"][0]
    first = {**task, "answer": "accept", "_decision_id": "first-decision"}
    assert give(served, [first]).status_code == 200
    assert give(served, [{**task, "answer": "reject", "_decision_id": "second-decision"}]).status_code == 200
    assert give(served, [first]).status_code == 200  # the retry
    [row] = rows(nats_url, dataset_name)
    assert row["answer"] == "reject"


def test_an_unkeyed_answer_identical_to_the_current_one_is_a_no_op(served, nats_url, dataset_name):
    task = questions(served)["tasks"][0]
    assert give(served, [{**task, "answer": "reject"}]).status_code == 200
    [before] = rows(nats_url, dataset_name)
    time.sleep(1.1)
    assert give(served, [{**task, "answer": "reject"}]).status_code == 200
    assert rows(nats_url, dataset_name) == [before]


@pytest.mark.parametrize("bad", ["short", "has space in it", "x" * 65, 12345678, ["list-of-one"]], ids=repr)
def test_a_malformed_decision_key_is_422(served, nats_url, dataset_name, bad):
    task = questions(served)["tasks"][0]
    response = give(served, [{**task, "answer": "accept", "_decision_id": bad}])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_answer" and "_decision_id must be 8 to 64" in body["message"]
    assert body["task_hash"] == task["_task_hash"]
    assert run(_ledger_answers(nats_url, dataset_name)) == []


def test_drop_then_reload_and_answer_again_within_the_dedupe_window(
    settings, nats_url, dataset_name, load, start_server
):
    """Before: the config event and identical answers were swallowed by JetStream's
    two-minute Nats-Msg-Id window; the dataset stayed `dropped` and nothing was stored."""
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    feed = start_server(settings, dataset_name, workers=1)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        task = questions(client)["tasks"][0]
        assert give(client, [{**task, "answer": "accept"}]).status_code == 200
        assert quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url}).returncode == 0
        load(textcat_manual(dataset_name, NEWS, "Tech"))
        assert dropped_flags(nats_url)[dataset_name] is False
        again = next(t for t in questions(client)["tasks"] if t["_task_hash"] == task["_task_hash"])
        assert give(client, [{**again, "answer": "accept"}]).status_code == 200
    [row] = rows(nats_url, dataset_name)
    assert row["_task_hash"] == int(task["_task_hash"]) and row["answer"] == "accept"
    configs = run(_ledger_answers(nats_url, dataset_name, DatasetConfigured))
    assert len(configs) == 2


@pytest.mark.parametrize("k", [1, 2])
def test_a_surplus_answer_is_409_and_not_recorded(settings, nats_url, dataset_name, load, start_server, k):
    """A task handed out again (here: its ack wait ran out; in the field: a crash lost the
    consumer's record of a delivery) takes answers from k sessions; the next gets 409."""
    load(
        textcat_manual(dataset_name, NEWS, "Tech"),
        annotations_per_task=k if k > 1 else None,
        ack_wait=1.0,
    )
    feed = start_server(settings, dataset_name, workers=2)
    sessions = ["ann", "bob", "cat"][: k + 1]
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        # Every session takes the same task: each holds it past the ack wait, so it is
        # handed to the next one while the others still hold it.
        held: dict[str, dict] = {}
        target: str | None = None
        for session in sessions:
            deadline = time.monotonic() + 20
            while session not in held:
                assert time.monotonic() < deadline, f"{session} was never handed the task"
                tasks = questions(client, session)["tasks"]
                match = [t for t in tasks if target is None or t["_task_hash"] == target]
                if match:
                    held[session] = match[0]
                    target = match[0]["_task_hash"]
                else:
                    time.sleep(0.3)
        for session in sessions[:k]:
            assert give(client, [{**held[session], "answer": "accept"}], session).status_code == 200
        late = sessions[k]
        response = give(client, [{**held[late], "answer": "reject"}], late)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "surplus_answer" and body["task_hash"] == target
        assert "not recorded" in body["message"]
        # The sessions that hold a slot may still change their minds.
        changed = {**held[sessions[0]], "answer": "reject"}
        assert give(client, [changed], sessions[0]).status_code == 200
    answers = [e for e in run(_ledger_answers(nats_url, dataset_name)) if isinstance(e, AnswerRecorded)]
    assert {e.session for e in answers} == set(sessions[:k])
    got = rows(nats_url, dataset_name)
    assert sorted((r["_session_id"], r["answer"]) for r in got) == sorted(
        [(f"{dataset_name}-{s}", "reject" if s == sessions[0] else "accept") for s in sessions[:k]]
    )
