"""Issue 11 §2, feed/validate.py: an answer may change only what its view lets one change.

Pure and fast: no NATS. Each rule is fixed with the exact message the client reads.
The same rules over HTTP are in tests/feed/test_answer_validation.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feed.errors import InvalidAnswer
from feed.validate import INT64_MAX, INT64_MIN, NeedsServedTask, check_answer, content_digest

TEXT = "Alex met Ada in Paris."
WORDS = [("Alex", 0), ("met", 5), ("Ada", 9), ("in", 13), ("Paris", 16), (".", 21)]
TOKENS = [
    {"text": w, "start": s, "end": s + len(w), "id": i, "ws": w not in ("Paris", ".")}
    for i, (w, s) in enumerate(WORDS)
]
LABELS = ["PERSON", "GPE"]
NER = {
    "text": TEXT,
    "tokens": TOKENS,
    "meta": {"source": "news", "id": 7},
    "_input_hash": -11,
    "_task_hash": 22,
    "_view_id": "ner_manual",
}
OPTIONS = [{"id": "Tech", "text": "Tech"}, {"id": "Politics", "text": "Politics"}]
CHOICE = {"text": "A chip.", "options": OPTIONS, "_input_hash": 1, "_task_hash": 2, "_view_id": "choice"}
CLASSIFICATION = {
    "text": "A chip.",
    "label": "Tech",
    "_input_hash": 3,
    "_task_hash": 4,
    "_view_id": "classification",
}
ALEX = {"start": 0, "end": 4, "token_start": 0, "token_end": 0, "label": "PERSON"}
PARIS = {"start": 16, "end": 21, "token_start": 4, "token_end": 4, "label": "GPE"}


def as_given(task: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The task as the API hands it out, answered: hashes as strings, with bookkeeping."""
    given = {
        **task,
        "_input_hash": str(task["_input_hash"]),
        "_task_hash": str(task["_task_hash"]),
        "_token": "token",
        "_session_id": "news-alex",
        "answer": "accept",
    }
    return {k: v for k, v in {**given, **changes}.items() if v is not DROP}


DROP = object()


def ner(**changes: Any) -> dict[str, Any]:
    return check_answer("ner_manual", LABELS, as_given(NER, **changes), served=NER)


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidAnswer) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def ner_refusal(**changes: Any) -> str:
    return refused(ner, **changes)


# -- the decision ---------------------------------------------------------------------


def test_answer_must_be_accept_reject_or_ignore():
    assert ner_refusal(answer="maybe") == "unknown answer 'maybe': use one of accept, reject, ignore"
    assert ner_refusal(answer=DROP) == "unknown answer None: use one of accept, reject, ignore"


# -- the token's digest ---------------------------------------------------------------


def test_digest_of_the_task_as_served_matches_the_untouched_answer():
    answer = as_given(NER, spans=[ALEX], _timestamp=1_700_000_000, _decision_id="d-12345678")
    digest = content_digest("ner_manual", NER)
    assert content_digest("ner_manual", answer) == digest
    cleaned = check_answer("ner_manual", LABELS, answer, digest=digest)
    assert cleaned["spans"] == [ALEX] and cleaned["text"] == TEXT


def test_a_changed_answer_does_not_match_the_digest_and_asks_for_the_served_task():
    answer = as_given(NER, text="Alex met Bob in Paris.")
    with pytest.raises(NeedsServedTask) as caught:
        check_answer("ner_manual", LABELS, answer, digest=content_digest("ner_manual", NER))
    assert str(caught.value) == (
        "the answer changes a key its task was served with (the task can no longer be read "
        "to say which); send the task back as it was served, with only the annotation changed"
    )


def test_a_token_without_digest_asks_for_the_served_task():
    with pytest.raises(NeedsServedTask) as caught:
        check_answer("ner_manual", LABELS, as_given(NER), digest=None)
    assert str(caught.value) == (
        "this answer's task token predates content checks and its task can no longer be read; "
        "reload the page to get fresh tasks"
    )


def test_digest_ignores_what_the_view_may_change_and_bookkeeping():
    base = content_digest("ner_manual", NER)
    assert content_digest("ner_manual", {**NER, "spans": [ALEX], "_timestamp": 5, "answer": "x"}) == base
    assert content_digest("ner_manual", {**NER, "meta": {"source": "blog", "id": 7}}) != base
    # In `choice`, the options are served content, `accept` the annotator's.
    assert content_digest("choice", {**CHOICE, "accept": ["Tech"]}) == content_digest("choice", CHOICE)


# -- keys the task was served with ----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"text": "Alex met Bob in Paris."}, '"text"'),
        ({"meta": {"source": "news", "id": 8}}, '"meta"'),
        ({"_input_hash": "12"}, '"_input_hash"'),
        ({"_view_id": "spans_manual"}, '"_view_id"'),
        ({"tokens": TOKENS[:-1], "text": TEXT[:-1]}, '"text", "tokens"'),
    ],
)
def test_a_changed_served_key_is_named(changes, named):
    assert ner_refusal(**changes) == (
        f"the answer changes {named}, which its task was served with; "
        "a ner_manual answer may change only answer and spans"
    )


def test_a_missing_served_key_is_named():
    assert ner_refusal(tokens=DROP) == (
        'the answer lacks "tokens", which its task was served with; send the task back whole, '
        "with only the annotation changed"
    )


def test_a_key_the_view_does_not_edit_may_not_be_added():
    assert ner_refusal(accept=["PERSON"]) == (
        'the answer adds "accept", which its task was served without; '
        "a ner_manual answer may change only answer and spans"
    )


def test_bookkeeping_may_be_added_and_changed():
    cleaned = ner(
        _timestamp=1_700_000_000, _decision_id="abcdefgh12", _annotator_id="alex", _session_id="x-y"
    )
    assert cleaned["_timestamp"] == 1_700_000_000 and cleaned["_annotator_id"] == "alex"


def test_bookkeeping_has_types():
    assert ner_refusal(_timestamp=True) == "_timestamp must be a number (seconds since 1970), got true"
    assert ner_refusal(_annotator_id=3) == "_annotator_id must be a string, got 3"


def test_view_id_may_be_added_only_as_the_view_served():
    served = {k: v for k, v in NER.items() if k != "_view_id"}
    answer = as_given(served, _view_id="ner_manual")
    assert check_answer("ner_manual", LABELS, answer, served=served)["_view_id"] == "ner_manual"
    assert refused(
        check_answer, "ner_manual", LABELS, {**answer, "_view_id": "spans_manual"}, served=served
    ) == (
        'the answer adds "_view_id", which its task was served without; '
        "a ner_manual answer may change only answer and spans"
    )


def test_a_browsers_rounding_of_a_big_integer_is_not_a_change():
    served = {**NER, "meta": {"id": 2**60 + 1}}
    cleaned = check_answer(
        "ner_manual", LABELS, as_given(served, meta={"id": float(2**60 + 1)}), served=served
    )
    assert cleaned["meta"] == {"id": 2**60 + 1}  # the served value is what is stored


def test_booleans_are_not_numbers_when_compared():
    served = {**NER, "meta": {"gold": True}}
    assert refused(check_answer, "ner_manual", LABELS, as_given(served, meta={"gold": 1}), served=served) == (
        'the answer changes "meta", which its task was served with; '
        "a ner_manual answer may change only answer and spans"
    )


def test_the_cleaned_answer_takes_the_served_values():
    cleaned = ner(spans=[ALEX])
    assert cleaned["_input_hash"] == -11 and cleaned["_task_hash"] == 22
    assert cleaned["spans"] == [ALEX] and cleaned["meta"] == NER["meta"]


def test_a_view_quorum_does_not_know_keeps_served_keys_but_takes_new_ones():
    served = {"html": "<b>x</b>", "_input_hash": 5, "_task_hash": 6, "_view_id": "html"}
    cleaned = check_answer("html", None, as_given(served, user_input="free text"), served=served)
    assert cleaned["user_input"] == "free text"
    assert refused(check_answer, "html", None, as_given(served, html="<i>x</i>"), served=served) == (
        'the answer changes "html", which its task was served with; '
        "a html answer may change only answer and what its task was served without"
    )


# -- every integer fits int64 ---------------------------------------------------------


def test_an_integer_past_int64_is_named_by_its_path():
    message = ner_refusal(spans=[{**ALEX, "start": 2**63}])
    assert message == (
        "spans[0].start does not fit a signed 64-bit integer "
        "(-9223372036854775808 to 9223372036854775807); send a smaller number"
    )
    deep = refused(
        check_answer,
        "html",
        None,
        as_given({"_input_hash": 1, "_task_hash": 2}, x={"a b": [0, -(2**63) - 1]}),
        served={"_input_hash": 1, "_task_hash": 2},
    )
    assert deep.startswith('x["a b"][1] does not fit a signed 64-bit integer')


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_every_integer_outside_int64_is_refused(number):
    served = {"_input_hash": 1, "_task_hash": 2}
    answer = as_given(served, extra=[{"n": number}], _view_id="custom")
    if INT64_MIN <= number <= INT64_MAX:
        assert check_answer("custom", None, answer, served=served)["extra"] == [{"n": number}]
    else:
        assert refused(check_answer, "custom", None, answer, served=served).startswith(
            "extra[0].n does not fit a signed 64-bit integer"
        )


@given(st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]))
def test_int64_boundaries_are_integers_that_fit(number):
    served = {"_input_hash": 1, "_task_hash": 2}
    assert check_answer("custom", None, as_given(served, n=number), served=served)["n"] == number


# -- spans ----------------------------------------------------------------------------


def test_good_spans_pass_and_keep_their_order():
    assert ner(spans=[PARIS, ALEX])["spans"] == [PARIS, ALEX]
    assert ner(spans=[], answer="reject")["spans"] == []


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ({"start": 0}, '"spans" must be a list of spans, got {"start":0}'),
        ([[1]], "spans[0] must be an object with start, end and label, got [1]"),
        ([1], "spans[0] must be an object with start, end and label, got 1"),
        ([{**ALEX, "start": "0"}], 'spans[0].start must be an integer, got "0"'),
        ([{**ALEX, "start": False}], "spans[0].start must be an integer, got false"),
        ([{**ALEX, "start": 0.0}], "spans[0].start must be an integer, got 0.0"),
        ([{k: v for k, v in ALEX.items() if k != "end"}], "spans[0].end must be an integer, got nothing"),
        (
            [{**ALEX, "start": 4, "end": 4}],
            "spans[0] runs from 4 to 4; a span needs 0 <= start < end <= 22, "
            "the length of the text in characters (code points)",
        ),
        (
            [{**PARIS, "end": 23}],
            "spans[0] runs from 16 to 23; a span needs 0 <= start < end <= 22, "
            "the length of the text in characters (code points)",
        ),
        (
            [{**ALEX, "start": -1}],
            "spans[0] runs from -1 to 4; a span needs 0 <= start < end <= 22, "
            "the length of the text in characters (code points)",
        ),
        ([{**ALEX, "label": 1}], "spans[0].label must be a non-empty string, got 1"),
        ([{**ALEX, "label": ""}], 'spans[0].label must be a non-empty string, got ""'),
        (
            [{k: v for k, v in ALEX.items() if k != "label"}],
            "spans[0].label must be a non-empty string, got nothing",
        ),
        (
            [ALEX, {**PARIS, "label": "ORG"}],
            'spans[1].label "ORG" is not one of this project\'s labels: PERSON, GPE',
        ),
        (
            [{**ALEX, "colour": "red"}],
            'spans[0] has unknown "colour"; a span has start, end, token_start, token_end, label '
            "and may have text, source, kb_id, score, rank, input_hash",
        ),
        ([{**ALEX, "score": "high"}], 'spans[0].score has the wrong type: got "high"'),
        ([{**ALEX, "text": "Alx"}], 'spans[0].text is "Alx", but the text from 0 to 4 is "Alex"'),
        (
            [{**ALEX, "token_end": 1}],
            "spans[0] ends at 4, but its token_end 1 ends at 8; a span ends where its last token ends",
        ),
        (
            [{**ALEX, "start": 1}],
            "spans[0] starts at 1, but its token_start 0 starts at 0; a span starts where its first token starts",
        ),
        (
            [{**PARIS, "token_start": 5, "token_end": 4}],
            "spans[0] covers tokens 5 to 4; they need 0 <= token_start <= token_end < 6, "
            "the task's number of tokens",
        ),
        (
            [{**PARIS, "token_end": 6}],
            "spans[0] covers tokens 4 to 6; they need 0 <= token_start <= token_end < 6, "
            "the task's number of tokens",
        ),
        ([{**ALEX, "token_start": True}], "spans[0].token_start must be an integer, got true"),
        (
            [{"start": 1, "end": 4, "label": "PERSON"}],
            "spans[0] starts at 1, inside a token; a span covers whole tokens: "
            "its start is where one of the task's tokens starts",
        ),
        (
            [{"start": 0, "end": 3, "label": "PERSON"}],
            "spans[0] ends at 3, inside a token; a span covers whole tokens: "
            "its end is where one of the task's tokens ends",
        ),
        (
            [{"start": 0, "end": 8, "label": "PERSON", "token_start": 0, "token_end": 1}, ALEX],
            "spans[0] (PERSON 0-8) and spans[1] (PERSON 0-4) overlap; "
            "ner_manual spans may not overlap (spans_manual allows it)",
        ),
        (
            [PARIS, {**PARIS, "label": "PERSON"}],
            "spans[0] (GPE 16-21) and spans[1] (PERSON 16-21) overlap; "
            "ner_manual spans may not overlap (spans_manual allows it)",
        ),
    ],
)
def test_bad_spans_are_refused(spans, message):
    assert ner_refusal(spans=spans) == message


def test_span_offsets_count_code_points():
    text = "😀 Ada"
    served = {
        "text": text,
        "tokens": [{"text": "😀", "start": 0, "end": 1}, {"text": "Ada", "start": 2, "end": 5}],
        "_input_hash": 1,
        "_task_hash": 2,
    }
    span = {"start": 2, "end": 5, "token_start": 1, "token_end": 1, "label": "PERSON", "text": "Ada"}
    assert check_answer("ner_manual", LABELS, as_given(served, spans=[span]), served=served)["spans"] == [
        span
    ]
    utf16 = {**span, "start": 3, "end": 6}
    assert refused(check_answer, "ner_manual", LABELS, as_given(served, spans=[utf16]), served=served) == (
        "spans[0] runs from 3 to 6; a span needs 0 <= start < end <= 5, "
        "the length of the text in characters (code points)"
    )


def test_a_span_with_only_character_offsets_gets_its_tokens():
    cleaned = ner(spans=[{"start": 9, "end": 21, "label": "PERSON"}])
    assert cleaned["spans"] == [{"start": 9, "end": 21, "label": "PERSON", "token_start": 2, "token_end": 4}]


def test_spans_manual_allows_overlaps():
    served = {**NER, "_view_id": "spans_manual"}
    both = [{**ALEX, "end": 8, "token_end": 1}, ALEX]
    assert check_answer("ner_manual", LABELS, as_given(served, spans=both), served=served)["spans"] == both


def test_a_label_outside_the_set_is_allowed_when_the_task_came_with_it():
    served = {**NER, "spans": [{**PARIS, "label": "CITY"}]}
    answer = as_given(served, spans=[ALEX, {**PARIS, "label": "CITY"}])
    assert check_answer("ner_manual", LABELS, answer, served=served)["spans"][1]["label"] == "CITY"
    # Without the served task only the digest speaks, and it doesn't cover spans: ask.
    with pytest.raises(NeedsServedTask):
        check_answer("ner_manual", LABELS, answer, digest=content_digest("ner_manual", served))


def test_no_label_set_takes_any_label():
    assert check_answer("ner_manual", None, as_given(NER, spans=[{**ALEX, "label": "X"}]), served=NER)


def test_spans_need_a_text():
    served = {"tokens": [], "_input_hash": 1, "_task_hash": 2}
    assert check_answer("ner_manual", LABELS, as_given(served, spans=[], answer="ignore"), served=served)
    assert refused(check_answer, "ner_manual", LABELS, as_given(served, spans=[ALEX]), served=served) == (
        'the task has no "text" to mark spans in; answer it with "spans": []'
    )


def test_tokens_may_be_added_to_a_task_served_without_them():
    served = {k: v for k, v in NER.items() if k != "tokens"}
    cleaned = check_answer("ner_manual", LABELS, as_given(served, tokens=TOKENS, spans=[ALEX]), served=served)
    assert cleaned["tokens"] == TOKENS
    bad = [{**TOKENS[0], "end": 30}]
    assert refused(
        check_answer, "ner_manual", LABELS, as_given(served, tokens=bad, spans=[ALEX]), served=served
    ) == (
        "tokens[0] runs from 0 to 30; tokens lie in the text (22 characters), in order, without overlapping"
    )
    wrong_text = [{**TOKENS[0], "text": "Alx"}]
    assert refused(
        check_answer, "ner_manual", LABELS, as_given(served, tokens=wrong_text, spans=[ALEX]), served=served
    ) == ('tokens[0].text is "Alx", but the text from 0 to 4 is "Alex"')


def test_spans_without_tokens_are_checked_against_the_text():
    served = {"text": TEXT, "_input_hash": 1, "_task_hash": 2}
    span = {"start": 1, "end": 3, "label": "PERSON"}
    assert check_answer("ner_manual", LABELS, as_given(served, spans=[span]), served=served)["spans"] == [
        span
    ]
    backwards = {**span, "token_start": 2, "token_end": 1}
    assert refused(
        check_answer, "ner_manual", LABELS, as_given(served, spans=[backwards]), served=served
    ) == ("spans[0] has token_start 2 after token_end 1")


# -- choice and classification --------------------------------------------------------


def choice(accept: Any, style: str | None = "multiple", **changes: Any) -> dict[str, Any]:
    return check_answer(
        "choice", LABELS, as_given(CHOICE, accept=accept, **changes), served=CHOICE, choice_style=style
    )


def test_choice_accepts_option_ids():
    assert choice(["Politics", "Tech"])["accept"] == ["Politics", "Tech"]
    assert choice([], answer="reject")["accept"] == []
    assert choice(["Tech"], style="single")["accept"] == ["Tech"]


@pytest.mark.parametrize(
    ("accept", "style", "message"),
    [
        ("Tech", "multiple", '"accept" must be a list of option ids, got "Tech"'),
        (
            ["Sports"],
            "multiple",
            '"accept" holds "Sports", which is not an option of this task; its options are "Tech", "Politics"',
        ),
        (
            [1],
            "multiple",
            '"accept" holds 1, which is not an option of this task; its options are "Tech", "Politics"',
        ),
        (["Tech", "Tech"], "multiple", '"accept" holds "Tech" twice; list each chosen option once'),
        (
            ["Tech", "Politics"],
            "single",
            '"accept" holds 2 options, but this project is single choice: choose one at most',
        ),
    ],
)
def test_bad_choices_are_refused(accept, style, message):
    assert refused(choice, accept, style) == message


def test_choice_options_are_served_content():
    assert refused(choice, ["Sports"], options=[*OPTIONS, {"id": "Sports", "text": "Sports"}]) == (
        'the answer changes "options", which its task was served with; '
        "a choice answer may change only answer and accept"
    )


def test_integer_option_ids_are_not_strings():
    served = {**CHOICE, "options": [{"id": 1, "text": "one"}, {"id": True, "text": "yes"}]}
    answer = as_given(served, accept=[1])
    assert check_answer("choice", None, answer, served=served)["accept"] == [1]
    assert refused(check_answer, "choice", None, {**answer, "accept": ["1"]}, served=served).startswith(
        '"accept" holds "1", which is not an option'
    )


def test_classification_label_is_served_content():
    def classify(**changes: Any) -> dict[str, Any]:
        return check_answer(
            "classification", ["Tech"], as_given(CLASSIFICATION, **changes), served=CLASSIFICATION
        )

    assert classify(answer="reject")["label"] == "Tech"
    assert refused(classify, label="Politics") == (
        'the answer changes "label", which its task was served with; '
        "a classification answer may change only answer"
    )
    assert refused(classify, accept=["Tech"]) == (
        'the answer adds "accept", which its task was served without; '
        "a classification answer may change only answer"
    )
