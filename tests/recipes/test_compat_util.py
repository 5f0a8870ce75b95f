"""`prodigy.util` on Quorum: the helpers recipe files import, as a user sees them."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import hashing
from recipes.compat.prodigy.util import (
    INPUT_HASH_ATTR,
    TASK_HASH_ATTR,
    combine_models,
    log,
    msg,
    read_jsonl,
    set_hashes,
    split_string,
    write_jsonl,
)
from recipes.errors import BadSource, RecipeError


def test_split_string_strips_and_drops_empties() -> None:
    assert split_string(" PERSON, ORG,,GPE , ") == ["PERSON", "ORG", "GPE"]
    assert split_string("") == []
    assert split_string(None) == []


def test_set_hashes_are_the_ledgers_and_take_keywords_by_position() -> None:
    eg = {"text": "Hello", "label": "GREETING"}
    set_hashes(eg)
    expected = hashing.set_hashes({"text": "Hello", "label": "GREETING"})
    assert eg[INPUT_HASH_ATTR] == expected["_input_hash"]
    assert eg[TASK_HASH_ATTR] == expected["_task_hash"]
    # Positional input keys, as some recipe files pass them.
    by_title = set_hashes({"title": "A", "text": "x"}, ("title",))
    assert by_title["_input_hash"] == hashing.get_input_hash({"title": "A"}, ("title",))


def test_set_hashes_keeps_existing_hashes_unless_overwritten() -> None:
    eg = {"text": "Hello", "_input_hash": 1, "_task_hash": 2}
    assert set_hashes(eg)["_input_hash"] == 1
    assert set_hashes(eg, overwrite=True)["_input_hash"] == hashing.get_input_hash({"text": "Hello"})


def test_read_jsonl_reads_any_objects_lazily(tmp_path: Path) -> None:
    path = tmp_path / "patterns.jsonl"
    path.write_text('{"label": "ORG", "pattern": "Acme"}\n\n{"label": "GPE", "pattern": "Paris"}\n')
    lines = read_jsonl(path)
    assert next(lines) == {"label": "ORG", "pattern": "Acme"}
    assert list(lines) == [{"label": "GPE", "pattern": "Paris"}]


def test_read_jsonl_names_file_and_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "patterns.jsonl"
    path.write_text('{"label": "ORG"}\n{"label": \n')
    lines = read_jsonl(path)
    assert next(lines) == {"label": "ORG"}
    with pytest.raises(BadSource, match=r"line 2 of patterns\.jsonl is not valid JSON"):
        next(lines)


def test_read_jsonl_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BadSource, match=r"missing\.jsonl does not exist"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_write_jsonl_round_trips_unicode(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    records = [{"text": "Zoë in Zürich"}, {"text": "二", "meta": {"n": 1}}]
    write_jsonl(path, iter(records))
    assert list(read_jsonl(path)) == records
    assert "Zoë" in path.read_text(encoding="utf-8")


def test_write_jsonl_dash_writes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl("-", [{"text": "a"}])
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"text": "a"}]


def test_msg_writes_every_kind_of_message_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    msg.info("Loading")
    msg.good("Saved", "3 examples")
    msg.warn("Careful")
    msg.text("Plain")
    msg.divider("Section")
    msg.fail("Broken")
    out, err = capsys.readouterr()
    assert out == ""
    for text in ("Loading", "Saved", "3 examples", "Careful", "Plain", "Section", "Broken"):
        assert text in err


def test_msg_fail_with_exits_exits_with_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        msg.fail("Can't find dataset", "Create it first", exits=1)
    assert exited.value.code == 1
    assert "Can't find dataset" in capsys.readouterr().err


def test_msg_show_false_and_no_print(capsys: pytest.CaptureFixture[str]) -> None:
    msg.info("hidden", show=False)
    assert msg.text("kept", no_print=True) == "kept"
    assert capsys.readouterr().err == ""


@pytest.fixture
def no_logging_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("QUORUM_LOGGING", raising=False)
    monkeypatch.delenv("PRODIGY_LOGGING", raising=False)
    return monkeypatch


def test_log_is_silent_by_default(
    no_logging_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log("RECIPE: started", {"dataset": "news"})
    assert capsys.readouterr().err == ""


def test_log_basic_prints_the_message_verbose_the_details(
    no_logging_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_logging_env.setenv("QUORUM_LOGGING", "basic")
    log("RECIPE: started", {"dataset": "news"})
    err = capsys.readouterr().err
    assert "RECIPE: started" in err and "news" not in err
    no_logging_env.setenv("QUORUM_LOGGING", "verbose")
    log("RECIPE: started", {"dataset": "news"})
    assert "'dataset': 'news'" in capsys.readouterr().err


def test_log_honours_prodigy_logging(
    no_logging_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_logging_env.setenv("PRODIGY_LOGGING", "basic")
    log("from an old set-up")
    assert "from an old set-up" in capsys.readouterr().err


class Model:
    """A model in the loop: scores each example with a fixed score, marks it, counts updates."""

    def __init__(self, name: str, score: float, loss: float | None) -> None:
        self.name, self.score, self.loss = name, score, loss
        self.updates: list[list[dict[str, Any]]] = []

    def __call__(self, stream: Iterable[dict[str, Any]]) -> Iterator[tuple[float, dict[str, Any]]]:
        for eg in stream:
            eg["model"] = self.name
            yield self.score, eg

    def update(self, examples: list[dict[str, Any]]) -> float | None:
        self.updates.append(list(examples))
        return self.loss


def test_combine_models_interleaves_lazily_with_separate_examples() -> None:
    one, two = Model("one", 0.9, 1.5), Model("two", 0.2, 2.0)
    predict, update = combine_models(one, two)
    endless = ({"text": f"t{i}"} for i in itertools.count())
    first = list(itertools.islice(predict(endless), 4))
    assert [(score, eg["model"], eg["text"]) for score, eg in first] == [
        (0.9, "one", "t0"),
        (0.2, "two", "t0"),
        (0.9, "one", "t1"),
        (0.2, "two", "t1"),
    ]
    answers = [{"text": "t0", "answer": "accept"}]
    assert update(answers) == 3.5
    assert one.updates == two.updates == [answers]


def test_combine_models_in_batches_and_with_predict_update_pairs() -> None:
    one = Model("one", 0.9, None)
    two = Model("two", 0.1, 1.0)
    predict, update = combine_models(one, (two, two.update), batch_size=2)
    pairs = list(predict([{"text": "a"}, {"text": "b"}, {"text": "c"}]))
    assert [(eg["model"], eg["text"]) for _, eg in pairs] == [
        ("one", "a"),
        ("one", "b"),
        ("two", "a"),
        ("two", "b"),
        ("one", "c"),
        ("two", "c"),
    ]
    assert update([]) == 1.0  # a model that returns no loss counts 0


def test_combine_models_rejects_what_is_not_a_model() -> None:
    with pytest.raises(RecipeError, match="the second model is a str"):
        combine_models(Model("one", 0.5, 0.0), "matcher")
