"""Issue 11 §2: the server checks every answer against the task it handed out.

Real NATS, real Granian workers, one served dataset per view (`ner_manual`, `choice`,
`classification`). Each refusal is the exact body a client reads, and writes nothing;
each accepted answer lands in the ledger with the content as served. The rules one by
one are in tests/feed/test_validate.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from feed.tokens import TaskToken, sign_token
from ledger.connection import connect
from ledger.events import AnswerRecorded
from ledger.store import Ledger
from quorum.serve import start_feed
from recipes.components import Components
from recipes.ner import ner_manual
from recipes.runner import load_components
from recipes.settings import load_settings
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, free_port, run

SECRET = "answer-validation-secret"
INT64_LIMITS = "(-9223372036854775808 to 9223372036854775807); send a smaller number"


class Served:
    """One dataset served by one Granian worker, and a session's first task on it."""

    def __init__(self, client: httpx.Client, dataset: str, nats_url: str) -> None:
        self.client, self.dataset, self.nats_url = client, dataset, nats_url
        self.tasks = self.questions()

    def questions(self) -> list[dict[str, Any]]:
        response = self.client.post("/get_session_questions?session=alex", json={})
        assert response.status_code == 200, response.text
        return list(response.json()["tasks"])

    def give(self, *answers: dict[str, Any]) -> httpx.Response:
        return self.client.post("/give_answers?session=alex", json={"answers": list(answers)})

    def recorded(self, task: dict[str, Any]) -> list[AnswerRecorded]:
        """The ledger's answers to `task`."""

        async def read() -> list[AnswerRecorded]:
            nc = await connect(self.nats_url)
            try:
                return [
                    e
                    async for entry in Ledger(nc).read(self.dataset)
                    for e in entry.events
                    if isinstance(e, AnswerRecorded) and e.task_hash == int(task["_task_hash"])
                ]
            finally:
                await nc.close()

        return run(read())


def _serve(nats_url: str, root: Path, make: Callable[[str], Components]) -> Iterator[Served]:
    dataset = f"v{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        {}, nats_url=nats_url, data_dir=root / "data", port=free_port(), host="127.0.0.1", secret=SECRET
    )
    run(load_components(nats_url, make(dataset), settings))
    feed = start_feed(settings.with_overrides(dataset=dataset, workers=1), nats_url)
    try:
        with httpx.Client(base_url=feed.url, timeout=20) as client:
            yield Served(client, dataset, nats_url)
    finally:
        feed.stop()


@pytest.fixture(scope="module")
def ner(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(
        nats_url,
        tmp_path_factory.mktemp("ner"),
        lambda name: ner_manual(name, "blank:en", EXAMPLES / "news.jsonl", "PERSON,ORG"),
    )


@pytest.fixture(scope="module")
def choice(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(
        nats_url,
        tmp_path_factory.mktemp("choice"),
        lambda name: textcat_manual(name, EXAMPLES / "news.jsonl", "Tech,Politics", exclusive=True),
    )


@pytest.fixture(scope="module")
def classification(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(
        nats_url,
        tmp_path_factory.mktemp("classification"),
        lambda name: textcat_manual(name, EXAMPLES / "news.jsonl", "Tech"),
    )


def assert_refused(response: httpx.Response, message: str) -> None:
    """The one error shape, exactly (`task_hash`, naming the refused answer, aside)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) - {"task_hash"} == {"error", "message", "status"}
    assert {k: body[k] for k in ("error", "message", "status")} == {
        "error": "invalid_answer",
        "message": message,
        "status": 422,
    }


def first_word(task: dict[str, Any], label: str = "PERSON") -> dict[str, Any]:
    token = task["tokens"][0]
    return {"start": token["start"], "end": token["end"], "token_start": 0, "token_end": 0, "label": label}


def without(task: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != key}


# -- ner_manual -----------------------------------------------------------------------

NER_CASES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str | None]] = [
    (
        "span is not an object",
        lambda t: {**t, "spans": [1]},
        "spans[0] must be an object with start, end and label, got 1",
    ),
    (
        "start is a string",
        lambda t: {**t, "spans": [{**first_word(t), "start": "0"}]},
        'spans[0].start must be an integer, got "0"',
    ),
    (
        "start is a boolean",
        lambda t: {**t, "spans": [{**first_word(t), "start": False}]},
        "spans[0].start must be an integer, got false",
    ),
    (
        "start past int64",
        lambda t: {**t, "spans": [{**first_word(t), "start": 2**63}]},
        f"spans[0].start does not fit a signed 64-bit integer {INT64_LIMITS}",
    ),
    (
        "label is an integer",
        lambda t: {**t, "spans": [{**first_word(t), "label": 3}]},
        "spans[0].label must be a non-empty string, got 3",
    ),
    (
        "label not in the project",
        lambda t: {**t, "spans": [first_word(t, "LOC")]},
        'spans[0].label "LOC" is not one of this project\'s labels: PERSON, ORG',
    ),
    (
        "span past the text",
        lambda t: {**t, "spans": [{**first_word(t), "end": len(t["text"]) + 1}]},
        None,  # filled in below: it quotes the task's length
    ),
    (
        "span off its tokens",
        lambda t: {**t, "spans": [{**first_word(t), "token_end": 1}]},
        None,
    ),
    (
        "overlapping spans",
        lambda t: {**t, "spans": [first_word(t), first_word(t, "ORG")]},
        None,
    ),
    (
        "tampered text",
        lambda t: {**t, "text": t["text"].upper()},
        'the answer changes "text", which its task was served with; '
        "a ner_manual answer may change only answer and spans",
    ),
    (
        "tampered meta",
        lambda t: {**t, "meta": {**t["meta"], "topic": "sport"}},
        'the answer changes "meta", which its task was served with; '
        "a ner_manual answer may change only answer and spans",
    ),
    (
        "tampered input hash",
        lambda t: {**t, "_input_hash": "12345"},
        'the answer changes "_input_hash", which its task was served with; '
        "a ner_manual answer may change only answer and spans",
    ),
    (
        "missing tokens",
        lambda t: without(t, "tokens"),
        'the answer lacks "tokens", which its task was served with; '
        "send the task back whole, with only the annotation changed",
    ),
    (
        "unknown key",
        lambda t: {**t, "accept": ["PERSON"]},
        'the answer adds "accept", which its task was served without; '
        "a ner_manual answer may change only answer and spans",
    ),
]


def _ner_message(name: str, task: dict[str, Any]) -> str:
    word = first_word(task)
    return {
        "span past the text": (
            f"spans[0] runs from {word['start']} to {len(task['text']) + 1}; a span needs 0 <= start < end "
            f"<= {len(task['text'])}, the length of the text in characters (code points)"
        ),
        "span off its tokens": (
            f"spans[0] ends at {word['end']}, but its token_end 1 ends at {task['tokens'][1]['end']}; "
            "a span ends where its last token ends"
        ),
        "overlapping spans": (
            f"spans[0] (PERSON {word['start']}-{word['end']}) and spans[1] (ORG {word['start']}-{word['end']}) "
            "overlap; ner_manual spans may not overlap (spans_manual allows it)"
        ),
    }[name]


@pytest.mark.parametrize(("name", "change", "message"), NER_CASES, ids=[case[0] for case in NER_CASES])
def test_ner_manual_refuses(ner, name, change, message):
    task = ner.tasks[0]
    answer = {**change(task), "answer": "accept"}
    assert_refused(ner.give(answer), message or _ner_message(name, task))
    assert ner.recorded(task) == []


def test_ner_manual_unknown_answer_value(ner):
    task = ner.tasks[0]
    assert_refused(
        ner.give({**task, "answer": "maybe", "spans": []}),
        "unknown answer 'maybe': use one of accept, reject, ignore",
    )


def test_ner_manual_one_bad_answer_refuses_the_batch(ner):
    good, bad = ner.tasks[1], ner.tasks[2]
    response = ner.give(
        {**good, "answer": "accept", "spans": [first_word(good)]},
        {**bad, "answer": "accept", "text": "changed"},
    )
    assert_refused(
        response,
        'the answer changes "text", which its task was served with; '
        "a ner_manual answer may change only answer and spans",
    )
    assert ner.recorded(good) == [] and ner.recorded(bad) == []


def test_ner_manual_records_the_task_as_served(ner):
    task = ner.tasks[3]
    word = first_word(task)
    char_only = {"start": word["start"], "end": word["end"], "label": "ORG"}
    response = ner.give({**task, "answer": "accept", "spans": [char_only], "_timestamp": 1_700_000_000})
    assert response.status_code == 200, response.text
    [event] = ner.recorded(task)
    assert event.example["text"] == task["text"] and event.example["tokens"] == task["tokens"]
    assert event.example["spans"] == [{**char_only, "token_start": 0, "token_end": 0}]


def test_ner_manual_old_token_without_digest_is_checked_against_the_task(ner):
    """Tokens signed before the digest existed still work, with the full check."""
    task = ner.tasks[4]
    fields = _payload(task["_token"])
    assert len(fields) == 7 and fields[6]  # today's tokens carry the digest
    token = sign_token(SECRET.encode(), TaskToken(*fields[:6]))
    assert _payload(token)[6] is None
    assert_refused(
        ner.give({**task, "_token": token, "answer": "accept", "text": "changed"}),
        'the answer changes "text", which its task was served with; '
        "a ner_manual answer may change only answer and spans",
    )
    response = ner.give({**task, "_token": token, "answer": "reject", "spans": [first_word(task)]})
    assert response.status_code == 200, response.text
    assert [e.answer for e in ner.recorded(task)] == ["reject"]


def _payload(token: str) -> list[Any]:
    """The fields inside a task token (its payload is base64url JSON)."""
    payload = token.split(".")[0]
    return list(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- choice ---------------------------------------------------------------------------

CHOICE_CASES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    (
        "accept is a string",
        lambda t: {**t, "accept": "Tech"},
        '"accept" must be a list of option ids, got "Tech"',
    ),
    (
        "accept holds an unknown id",
        lambda t: {**t, "accept": ["Sports"]},
        '"accept" holds "Sports", which is not an option of this task; its options are "Tech", "Politics"',
    ),
    (
        "two options in a single choice",
        lambda t: {**t, "accept": ["Tech", "Politics"]},
        '"accept" holds 2 options, but this project is single choice: choose one at most',
    ),
    (
        "tampered options",
        lambda t: {**t, "options": [*t["options"], {"id": "Sports", "text": "Sports"}], "accept": ["Sports"]},
        'the answer changes "options", which its task was served with; '
        "a choice answer may change only answer and accept",
    ),
    (
        "spans added",
        lambda t: {**t, "accept": ["Tech"], "spans": []},
        'the answer adds "spans", which its task was served without; '
        "a choice answer may change only answer and accept",
    ),
]


@pytest.mark.parametrize(("name", "change", "message"), CHOICE_CASES, ids=[case[0] for case in CHOICE_CASES])
def test_choice_refuses(choice, name, change, message):
    task = choice.tasks[0]
    assert_refused(choice.give({**change(task), "answer": "accept"}), message)
    assert choice.recorded(task) == []


def test_choice_records_the_chosen_option(choice):
    task = choice.tasks[1]
    assert choice.give({**task, "answer": "accept", "accept": ["Politics"]}).status_code == 200
    [event] = choice.recorded(task)
    assert event.example["accept"] == ["Politics"] and event.example["options"] == task["options"]


# -- classification -------------------------------------------------------------------

CLASSIFICATION_CASES: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    (
        "tampered label",
        lambda t: {**t, "label": "Politics"},
        'the answer changes "label", which its task was served with; a classification answer may change only answer',
    ),
    (
        "accept added",
        lambda t: {**t, "accept": ["Tech"]},
        'the answer adds "accept", which its task was served without; a classification answer may change only answer',
    ),
    (
        "integer past int64 in meta",
        lambda t: {**t, "meta": {**t["meta"], "id": 2**64 - 1}},
        f"meta.id does not fit a signed 64-bit integer {INT64_LIMITS}",
    ),
    (
        "timestamp is a boolean",
        lambda t: {**t, "_timestamp": True},
        "_timestamp must be a number (seconds since 1970), got true",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), CLASSIFICATION_CASES, ids=[case[0] for case in CLASSIFICATION_CASES]
)
def test_classification_refuses(classification, name, change, message):
    task = classification.tasks[0]
    assert_refused(classification.give({**change(task), "answer": "accept"}), message)
    assert classification.recorded(task) == []


def test_classification_records_the_served_label(classification):
    task = classification.tasks[1]
    assert classification.give({**task, "answer": "reject", "_annotator_id": "alex"}).status_code == 200
    [event] = classification.recorded(task)
    assert event.answer == "reject" and event.example["label"] == "Tech"
