"""Patterns files: loaded with one clear line per mistake, matches pre-highlighted as
non-overlapping spans on spaCy's tokens, existing spans kept."""

from __future__ import annotations

import json

import pytest
import spacy

from recipes.errors import RecipeError
from recipes.patterns import PatternSpans, check_labels, load_patterns, make_patterns


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def write_patterns(path, *records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def highlight(nlp, patterns, *examples):
    return list(PatternSpans(nlp, patterns)(examples))


def test_token_and_phrase_patterns_match_with_offsets_and_token_indices(tmp_path, nlp):
    path = write_patterns(
        tmp_path / "pats.jsonl",
        {"label": "ORG", "pattern": [{"lower": "google"}]},
        {"label": "ORG", "pattern": "Apple Inc.", "id": "apple"},
    )
    text = "Both GOOGLE and Apple Inc. hire."
    [eg] = highlight(nlp, load_patterns(path), {"text": text})
    assert [t["text"] for t in eg["tokens"]] == ["Both", "GOOGLE", "and", "Apple", "Inc.", "hire", "."]
    assert eg["spans"] == [
        {
            "start": 5,
            "end": 11,
            "token_start": 1,
            "token_end": 1,
            "text": "GOOGLE",
            "label": "ORG",
            "pattern": 0,
        },
        {
            "start": 16,
            "end": 26,
            "token_start": 3,
            "token_end": 4,
            "text": "Apple Inc.",
            "label": "ORG",
            "pattern": "apple",
        },
    ]
    for span in eg["spans"]:
        assert text[span["start"] : span["end"]] == span["text"]


def test_phrase_patterns_match_the_exact_text(nlp):
    patterns = make_patterns([{"label": "ORG", "pattern": "Apple"}])
    [eg] = highlight(nlp, patterns, {"text": "an apple from Apple"})
    assert [s["text"] for s in eg["spans"]] == ["Apple"]


def test_overlapping_matches_keep_the_longest_then_the_earliest(nlp):
    patterns = make_patterns(
        [
            {"label": "FRUIT", "pattern": [{"lower": "apple"}]},
            {"label": "DISH", "pattern": [{"lower": "apple"}, {"lower": "pie"}]},
            {"label": "A", "pattern": [{"lower": "x"}, {"lower": "y"}]},
            {"label": "B", "pattern": [{"lower": "y"}, {"lower": "z"}]},
        ]
    )
    [eg] = highlight(nlp, patterns, {"text": "apple pie and x y z"})
    assert [(s["text"], s["label"]) for s in eg["spans"]] == [("apple pie", "DISH"), ("x y", "A")]


def test_existing_spans_are_kept_and_matches_over_them_dropped(nlp):
    patterns = make_patterns([{"label": "ORG", "pattern": [{"lower": "apple"}]}])
    example = {"text": "Apple Corps and apple", "spans": [{"start": 0, "end": 11, "label": "BAND"}]}
    [eg] = highlight(nlp, patterns, example)
    assert eg["spans"] == [
        {"start": 0, "end": 11, "label": "BAND", "token_start": 0, "token_end": 1},
        {
            "start": 16,
            "end": 21,
            "token_start": 3,
            "token_end": 3,
            "text": "apple",
            "label": "ORG",
            "pattern": 0,
        },
    ]


def test_examples_without_a_match_pass_through_with_tokens(nlp):
    patterns = make_patterns([{"label": "ORG", "pattern": "Apple"}])
    [eg] = highlight(nlp, patterns, {"text": "nothing here"})
    assert "spans" not in eg
    assert len(eg["tokens"]) == 2


def test_pattern_labels_outside_the_recipe_labels_are_named(tmp_path):
    path = write_patterns(
        tmp_path / "pats.jsonl",
        {"label": "ORG", "pattern": "Apple"},
        {"label": "GPE", "pattern": "Paris"},
        {"label": "GPE", "pattern": "Rome"},
    )
    patterns = load_patterns(path)
    check_labels(patterns, ["ORG", "GPE"])
    with pytest.raises(RecipeError, match=r"GPE \(line 2 of pats\.jsonl and 1 more\).*--label") as info:
        check_labels(patterns, ["ORG", "PERSON"])
    assert "\n" not in str(info.value)


BAD_LINES = [
    ("{not json", r"line 2 of bad\.jsonl is not valid JSON: .* at column \d+"),
    ('["ORG", "Apple"]', r"line 2 of bad\.jsonl is a list, not an object"),
    ('{"pattern": "Apple"}', r'line 2 of bad\.jsonl has no "label"'),
    ('{"label": " ", "pattern": "Apple"}', r'line 2 of bad\.jsonl has no "label"'),
    ('{"label": "ORG"}', r'line 2 of bad\.jsonl has a "pattern" that is neither'),
    ('{"label": "ORG", "pattern": ""}', r'line 2 of bad\.jsonl has an empty "pattern"'),
    ('{"label": "ORG", "pattern": []}', r'line 2 of bad\.jsonl has a "pattern" that is neither'),
    ('{"label": "ORG", "pattern": ["apple"]}', r'line 2 of bad\.jsonl has a "pattern" that is neither'),
    ('{"label": "ORG", "pattern": 7}', r'line 2 of bad\.jsonl has a "pattern" that is neither'),
    (
        '{"label": "ORG", "pattern": [{"lower": "a"}, {"lowr": "b"}]}',
        r"line 2 of bad\.jsonl has an invalid token pattern: token 2 has an unknown attribute 'lowr'",
    ),
    (
        '{"label": "ORG", "pattern": [{"LENGTH": "long"}]}',
        r"line 2 of bad\.jsonl has an invalid token pattern: token 1 LENGTH 'long' should be",
    ),
    (
        '{"label": "ORG", "pattern": [{"TEXT": {"REGEX": "("}}]}',
        r"line 2 of bad\.jsonl has an invalid token pattern: a REGEX does not compile",
    ),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_each_bad_line_is_one_clear_line_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"label": "ORG", "pattern": "Apple"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message) as info:
        load_patterns(path)
    assert "\n" not in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(RecipeError, match=r"patterns file .*nope\.jsonl does not exist"):
        load_patterns(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"no patterns in empty\.jsonl"):
        load_patterns(empty)


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = tmp_path / "pats.jsonl"
    path.write_text('\n{"label": "ORG", "pattern": "Apple"}\n\n{"label": "ORG"}\n', encoding="utf-8")
    with pytest.raises(RecipeError, match=r"line 4 of pats\.jsonl"):
        load_patterns(path)


def test_a_pattern_the_pipeline_cannot_serve_fails_at_start_naming_its_line(tmp_path, nlp):
    path = write_patterns(
        tmp_path / "pats.jsonl",
        {"label": "ORG", "pattern": "Apple"},
        {"label": "X", "pattern": [{"POS": "NOUN"}]},
    )
    with pytest.raises(RecipeError, match=r"line 2 of pats\.jsonl can't match with pipeline 'en': .*POS"):
        PatternSpans(nlp, load_patterns(path))


def test_patterns_from_code_are_named_by_position():
    with pytest.raises(RecipeError, match=r'pattern 2 has no "label"'):
        make_patterns([{"label": "A", "pattern": "a"}, {"pattern": "b"}])


def test_patterns_on_attributes_set_after_tokenising_match_too(nlp):
    from spacy.tokens import Token

    Token.set_extension("quorum_test_fruit", getter=lambda t: t.lower_ in {"apple", "pear"}, force=True)
    patterns = make_patterns([{"label": "FRUIT", "pattern": [{"_": {"quorum_test_fruit": True}, "OP": "+"}]}])
    [eg] = highlight(nlp, patterns, {"text": "a pear, an Apple pear"})
    assert [(s["text"], s["token_start"], s["token_end"]) for s in eg["spans"]] == [
        ("pear", 1, 1),
        ("Apple pear", 4, 5),
    ]


def test_a_file_not_in_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"label": "ORG", "pattern": "Apple"}\n{"label": "ORG", "pattern": "Caf\xe9"}\n')
    with pytest.raises(RecipeError, match=r"line 2 of latin\.jsonl is not valid UTF-8 \(byte 0xe9"):
        load_patterns(path)
