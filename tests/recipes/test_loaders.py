"""Source loaders: streamed, checked, and every error names the file and line."""

from __future__ import annotations

import json

import pytest

from recipes.args import parse_labels
from recipes.catalog import get_recipe
from recipes.errors import BadSource, RecipeError
from recipes.loaders import get_stream, source_options, validate_source


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
        get_recipe("ner.manual").func("d", "en_core_web_xl", source, "A")
    with pytest.raises(RecipeError, match="unknown language"):
        get_recipe("ner.manual").func("d", "blank:zz", source, "A")


# Issue 11 §5: limits and bad input. Every refusal names the file and line and says what
# to do; `validate_source` sees it before a recipe queues anything.


def test_record_over_the_size_limit_names_file_and_line(tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"text": "a"}\n{"text": "b"}\n{"text": "' + b"x" * (1024 * 1024 + 1) + b'"}\n')
    with pytest.raises(
        BadSource, match=r"line 3 of big\.jsonl is 1\.0 MB, over the limit of 1\.0 MB.*--max-task-bytes"
    ):
        validate_source(big)
    assert validate_source(big, max_record_bytes=2 * 1024 * 1024) == 3
    with source_options(max_record_bytes=2 * 1024 * 1024):
        assert validate_source(big) == 3


def test_size_limit_applies_to_every_format(tmp_path):
    limit = 64
    long = "y" * 100
    cases = {
        "a.txt": (f"short\n{long}\n", "line 2 of a.txt"),
        "a.csv": (f"text\nshort\n{long}\n", "line 3 of a.csv"),
        "a.json": (json.dumps([{"text": "short"}, {"text": long}]), "record 2 of a.json"),
        "a.jsonl": (json.dumps({"text": long}) + "\n", "line 1 of a.jsonl"),
    }
    for name, (content, where) in cases.items():
        with pytest.raises(BadSource, match=f"{where} is 1\\d\\d bytes, over the limit of 64 bytes"):
            validate_source(write(tmp_path / name, content), max_record_bytes=limit)


def test_latin1_text_names_file_line_and_encoding_and_reads_with_encoding(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes("first line\ncafé au lait\n".encode("latin-1"))
    with pytest.raises(
        BadSource,
        match=r"line 2 of notes\.txt is not valid utf-8 \(byte 0xe9 at column 4\).*--encoding latin-1",
    ):
        validate_source(source)
    assert [e["text"] for e in get_stream(source, encoding="latin-1")] == ["first line", "café au lait"]
    with source_options(encoding="latin-1"):
        assert [e["text"] for e in get_stream(source)][1] == "café au lait"


def test_encoding_errors_name_the_line_in_every_format(tmp_path):
    for name, content, where in (
        ("a.jsonl", '{"text": "ok"}\n{"text": "café"}\n', "line 2 of a.jsonl"),
        ("a.csv", "text\nok\ncafé\n", "line 3 of a.csv"),
        ("a.json", '[\n{"text": "ok"},\n{"text": "café"}\n]', "line 3 of a.json"),
    ):
        path = tmp_path / name
        path.write_bytes(content.encode("latin-1"))
        with pytest.raises(BadSource, match=f"{where} is not valid utf-8"):
            validate_source(path)
        assert validate_source(path, encoding="latin-1") == 2


def test_unknown_encoding_says_what_to_pass(tmp_path):
    with pytest.raises(BadSource, match="unknown encoding 'klingon'.*utf-8, latin-1 or cp1252"):
        validate_source(write(tmp_path / "a.txt", "x\n"), encoding="klingon")


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    bom = b"\xef\xbb\xbf"
    sources = {
        "a.jsonl": b'{"text": "caf\xc3\xa9"}\r\n{"text": "b"}\r\n',
        "a.txt": "café\r\nb\r\n".encode(),
        "a.csv": b"text,source\r\ncaf\xc3\xa9,web\r\nb,web\r\n",
        "a.json": b'[{"text": "caf\xc3\xa9"}, {"text": "b"}]',
    }
    for name, content in sources.items():
        path = tmp_path / name
        path.write_bytes(bom + content)
        assert [e["text"] for e in get_stream(path)] == ["café", "b"], name


def test_utf16_source_reads_line_by_line(tmp_path):
    source = tmp_path / "wide.txt"
    source.write_bytes("héllo\nwörld\n\nthird\n".encode("utf-16"))
    assert [e["text"] for e in get_stream(source, encoding="utf-16")] == ["héllo", "wörld", "third"]


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(BadSource, match=r"line 1 of deep\.jsonl is nested too deeply"):
        validate_source(write(tmp_path / "deep.jsonl", '{"text": "a", "x": ' + deep + "}\n"))
    with pytest.raises(BadSource, match=r"deep\.json is nested too deeply"):
        validate_source(write(tmp_path / "deep.json", deep))


def test_recipes_refuse_a_bad_source_before_returning_a_stream(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes("ok\ncafé\n".encode("latin-1"))
    with pytest.raises(BadSource, match="line 2 of notes.txt is not valid utf-8"):
        get_recipe("textcat.manual").func("d", source, "A")
    with source_options(encoding="latin-1"):
        components = get_recipe("textcat.manual").func("d", source, "A")
        assert [eg["text"] for eg in components["stream"]] == ["ok", "café"]
