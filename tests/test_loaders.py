"""Source loaders: streamed, checked, and every error names the file and line."""

from __future__ import annotations

import json

import pytest

from recipes.errors import BadSource, RecipeError
from recipes.loaders import get_stream, validate_source
from recipes.registry import get_recipe, parse_labels


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_json_line_names_file_and_line(tmp_path):
    source = write(tmp_path / "news.jsonl", '{"text": "ok"}\n\n{"text": "broken",\n')
    with pytest.raises(BadSource, match=r"line 3 of news\.jsonl is not valid JSON"):
        validate_source(source)


def test_record_without_text_names_the_line(tmp_path):
    source = write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(BadSource, match=r'line 2 of a\.jsonl has no "text"'):
        validate_source(source)


def test_non_object_line(tmp_path):
    source = write(tmp_path / "a.jsonl", "[1, 2]\n")
    with pytest.raises(BadSource, match="line 1 of a.jsonl is a list"):
        validate_source(source)


def test_empty_source_says_no_examples(tmp_path):
    with pytest.raises(BadSource, match="no examples in empty.jsonl"):
        validate_source(write(tmp_path / "empty.jsonl", "\n\n"))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(BadSource, match="does not exist"):
        validate_source(tmp_path / "nope.jsonl")
    with pytest.raises(BadSource, match="no loader for data.xml"):
        validate_source(write(tmp_path / "data.xml", "<a/>"))


def test_json_csv_txt_loaders(tmp_path):
    js = write(tmp_path / "a.json", json.dumps([{"text": "one"}, {"text": "two"}]))
    assert [e["text"] for e in get_stream(js)] == ["one", "two"]
    csv = write(tmp_path / "a.csv", "text,source\nhello,web\nworld,news\n")
    rows = list(get_stream(csv))
    assert rows[0] == {"text": "hello", "meta": {"source": "web"}}
    txt = write(tmp_path / "a.txt", "first line\n\nsecond line\n")
    assert [e["text"] for e in get_stream(txt)] == ["first line", "second line"]
    with pytest.raises(BadSource, match="record 2 of b.json"):
        validate_source(write(tmp_path / "b.json", json.dumps([{"text": "x"}, {"nope": 1}])))
    with pytest.raises(BadSource, match="'text' column"):
        validate_source(write(tmp_path / "b.csv", "title\nx\n"))


def test_bad_label_lists_say_how_to_fix():
    for bad in ("", "A,,B", " , "):
        with pytest.raises(RecipeError, match="comma-separated"):
            parse_labels(bad)
    with pytest.raises(RecipeError, match="A given more than once"):
        parse_labels("A,B,A")
    assert parse_labels(" PERSON, ORG ") == ["PERSON", "ORG"]


def test_label_file(tmp_path):
    assert parse_labels(str(write(tmp_path / "labels.txt", "PERSON\nORG\n"))) == ["PERSON", "ORG"]


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(RecipeError, match="Did you mean ner.manual"):
        get_recipe("ner.manul")


def test_unknown_spacy_pipeline_says_what_to_do(tmp_path):
    source = write(tmp_path / "a.jsonl", '{"text": "x"}\n')
    with pytest.raises(RecipeError, match="can't find spaCy pipeline 'en_core_web_xl'.*blank:en"):
        get_recipe("ner.manual")("d", "en_core_web_xl", source, "A")
    with pytest.raises(RecipeError, match="unknown language"):
        get_recipe("ner.manual")("d", "blank:zz", source, "A")
