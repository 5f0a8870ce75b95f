"""`prodigy.models.matcher.PatternMatcher`, as a recipe written for Prodigy uses it:
(score, task) pairs with spans and hashes, combined matches, scores that learn."""

from __future__ import annotations

import json

import pytest
import spacy

from ledger.hashing import get_input_hash, get_task_hash
from recipes.compat.prodigy.models.matcher import PatternMatcher


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture
def patterns_file(tmp_path):
    path = tmp_path / "pats.jsonl"
    records = [
        {"label": "FRUIT", "pattern": [{"lower": "apple"}]},
        {"label": "ORG", "pattern": "Google", "id": "google"},
        {"label": "DISH", "pattern": [{"lower": "apple"}, {"lower": "pie"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_one_task_per_match_with_spans_meta_and_hashes(nlp, patterns_file):
    matcher = PatternMatcher(nlp).from_disk(patterns_file)
    assert len(matcher) == 3
    assert matcher.labels == ("FRUIT", "ORG", "DISH")
    source = {"text": "Google likes apple pie"}
    results = list(matcher([source]))
    assert [(task["spans"][0]["text"], task["meta"]["pattern"]) for _, task in results] == [
        ("Google", "google"),
        ("apple", 0),
        ("apple pie", 2),
    ]
    score, task = results[0]
    assert score == 0.5 == task["meta"]["score"]
    assert task["spans"] == [
        {
            "start": 0,
            "end": 6,
            "token_start": 0,
            "token_end": 0,
            "text": "Google",
            "label": "ORG",
            "pattern": "google",
        }
    ]
    assert task["_input_hash"] == get_input_hash(task)
    assert task["_task_hash"] == get_task_hash(task, task["_input_hash"])
    assert len({t["_task_hash"] for _, t in results}) == 3
    assert "spans" not in source and "meta" not in source  # the stream's example is left alone


def test_combine_matches_gives_one_task_with_non_overlapping_spans(nlp, patterns_file):
    matcher = PatternMatcher(nlp, combine_matches=True).from_disk(patterns_file)
    [(score, task)] = list(matcher([{"text": "Google likes apple pie", "spans": []}]))
    assert [(s["text"], s["label"]) for s in task["spans"]] == [("Google", "ORG"), ("apple pie", "DISH")]
    assert task["meta"]["pattern"] == "google, 2"
    assert score == 0.5


def test_all_examples_passes_unmatched_ones_through(nlp, patterns_file):
    stream = [{"text": "nothing to see"}, {"text": "Google"}]
    assert [t["text"] for _, t in PatternMatcher(nlp).from_disk(patterns_file)(stream)] == ["Google"]
    everything = list(PatternMatcher(nlp, all_examples=True).from_disk(patterns_file)(stream))
    assert [(s, t["text"]) for s, t in everything] == [(0.0, "nothing to see"), (0.5, "Google")]
    assert "spans" not in everything[0][1] and "_task_hash" in everything[0][1]


def test_update_raises_accepted_and_lowers_rejected_patterns(nlp, patterns_file):
    matcher = PatternMatcher(nlp, prior_correct=5, prior_incorrect=5).from_disk(patterns_file)
    tasks = {t["spans"][0]["text"]: t for _, t in matcher([{"text": "Google likes apple pie"}])}
    loss = matcher.update(
        [
            {**tasks["apple pie"], "answer": "accept"},
            {**tasks["apple"], "answer": "reject"},
            {**tasks["Google"], "answer": "ignore"},
        ]
    )
    assert loss == pytest.approx(0.5)  # (1 - 0.5)**2 + (0 - 0.5)**2
    scores = {t["spans"][0]["text"]: s for s, t in matcher([{"text": "Google likes apple pie"}])}
    assert scores == {"apple pie": 6 / 11, "apple": 5 / 11, "Google": 0.5}


def test_label_task_filter_labels_and_add_patterns(nlp):
    matcher = PatternMatcher(nlp, label_span=False, label_task=True, filter_labels=["POSITIVE"])
    matcher.add_patterns(
        [{"label": "POSITIVE", "pattern": [{"lower": "great"}]}, {"label": "NEGATIVE", "pattern": "awful"}]
    )
    assert len(matcher) == 1
    results = list(matcher([{"text": "great, not awful"}]))
    assert len(results) == 1
    task = results[0][1]
    assert task["label"] == "POSITIVE"
    assert "label" not in task["spans"][0]
    assert task["_task_hash"] == get_task_hash(task, task["_input_hash"])
