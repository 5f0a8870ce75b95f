"""The event model: round trips, versioning and upcasting."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import UnknownEventVersion
from ledger.events import (
    CURRENT_VERSIONS,
    UPCASTERS,
    AnswerRecorded,
    answer_event_id,
    decode_batch,
    encode_batch,
)

answers = st.builds(
    AnswerRecorded,
    event_id=st.text(min_size=1, max_size=20),
    dataset=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    session_id=st.text(max_size=20),
    session=st.text(max_size=20),
    annotator=st.none() | st.text(max_size=10),
    answer=st.sampled_from(["accept", "reject", "ignore"]),
    input_hash=st.integers(-(2**63), 2**63 - 1),
    task_hash=st.integers(-(2**63), 2**63 - 1),
    view_id=st.sampled_from(["ner_manual", "choice", "classification"]),
    example=st.dictionaries(st.text(max_size=5), st.text(max_size=10) | st.integers(), max_size=4),
    handed_out_at=st.none() | st.integers(0, 2**45),
    recorded_at=st.integers(0, 2**45),
)


@given(st.lists(answers, min_size=1, max_size=5))
def test_encode_decode_round_trip(events):
    assert decode_batch(encode_batch(events)) == events


def _raw(**changes):
    event = AnswerRecorded(
        event_id="e1",
        dataset="news",
        session_id="news-alex",
        session="alex",
        answer="accept",
        input_hash=1,
        task_hash=2,
        view_id="ner_manual",
        example={"text": "hi"},
        recorded_at=5,
    )
    data = msgspec.to_builtins(event)
    data["kind"] = "answer_recorded"
    data.update(changes)
    return msgspec.json.encode({"events": [data], "v": 1})


def test_unknown_fields_are_ignored():
    [event] = decode_batch(_raw(added_later="whatever"))
    assert event.event_id == "e1"


def test_newer_version_is_a_clear_error_not_a_crash():
    with pytest.raises(UnknownEventVersion, match="version 99.*upgrade Quorum"):
        decode_batch(_raw(v=99))


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(UnknownEventVersion, match="unknown event kind"):
        decode_batch(_raw(kind="answer_exploded"))


def test_upcaster_turns_an_old_version_into_the_current_one(monkeypatch):
    """A v0 answer stored `decision` instead of `answer`: the upcaster renames it."""

    def v0_to_v1(raw):
        raw = dict(raw)
        raw["answer"] = raw.pop("decision")
        raw["v"] = 1
        return raw

    monkeypatch.setitem(UPCASTERS, ("answer_recorded", 0), v0_to_v1)
    data = msgspec.json.decode(_raw(v=0))
    data["events"][0]["decision"] = data["events"][0].pop("answer")
    [event] = decode_batch(msgspec.json.encode(data))
    assert event.answer == "accept" and event.v == CURRENT_VERSIONS["answer_recorded"]


def test_missing_upcaster_is_a_clear_error():
    with pytest.raises(UnknownEventVersion, match="no upcaster"):
        decode_batch(_raw(v=0))


def test_event_id_ignores_volatile_keys_but_not_content():
    base = {"text": "a", "spans": []}
    first = answer_event_id("d", "alex", 1, "accept", {**base, "_token": "x", "_timestamp": 1})
    assert first == answer_event_id("d", "alex", 1, "accept", {**base, "_token": "y"})
    assert first != answer_event_id("d", "alex", 1, "reject", base)
    assert first != answer_event_id("d", "alex", 1, "accept", {**base, "spans": [{"start": 0}]})
    assert first != answer_event_id("d", "bob", 1, "accept", base)
