"""`prodigy.components` on Quorum: loaders, streams, preprocessors and sorters.

Real files in tmp_path and a real spaCy `blank:en` pipeline; what is checked is what a
recipe file sees: the examples, their hashes, and the errors for bad input.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.language import Language

from ledger.hashing import get_input_hash, set_hashes
from recipes.compat.prodigy.components import loaders, sorters, stream
from recipes.compat.prodigy.components.preprocess import add_tokens, split_sentences
from recipes.errors import BadSource, RecipeError
from recipes.loaders import source_options

# The smallest valid PNG: one transparent pixel.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Loaders


def test_each_loader_reads_its_format(tmp_path: Path) -> None:
    assert list(loaders.JSONL(write(tmp_path / "a.jsonl", '{"text": "one"}\n'))) == [{"text": "one"}]
    assert list(loaders.JSON(write(tmp_path / "a.json", '[{"text": "two"}]'))) == [{"text": "two"}]
    assert list(loaders.CSV(write(tmp_path / "a.csv", "text,label,id\nthree,POS,7\n"))) == [
        {"text": "three", "label": "POS", "meta": {"id": "7"}}
    ]
    assert list(loaders.TXT(write(tmp_path / "a.txt", "four\n\nfive\n"))) == [
        {"text": "four"},
        {"text": "five"},
    ]


def test_jsonl_loader_reads_by_format_not_suffix(tmp_path: Path) -> None:
    assert list(loaders.JSONL(write(tmp_path / "export.log", '{"text": "x"}\n'))) == [{"text": "x"}]


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    source = write(tmp_path / "news.jsonl", '{"text": "ok"}\n{"text": "broken",\n')
    examples = loaders.JSONL(source)
    assert next(examples) == {"text": "ok"}
    with pytest.raises(BadSource, match=r"line 2 of news\.jsonl is not valid JSON"):
        next(examples)
    with pytest.raises(BadSource, match=r"line 2 of news\.jsonl is not valid JSON"):
        list(loaders.get_stream(source))


def test_missing_source_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BadSource, match=r"nowhere\.jsonl does not exist"):
        list(loaders.get_stream(tmp_path / "nowhere.jsonl"))
    with pytest.raises(BadSource, match="does not exist"):
        list(stream.get_stream(str(tmp_path / "nowhere.jsonl")))


def test_images_loader_gives_data_uris_and_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(PNG)
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff")
    write(tmp_path / "notes.txt", "not an image")
    (tmp_path / "sub").mkdir()
    examples = list(loaders.Images(tmp_path))
    assert [eg["text"] for eg in examples] == ["a.jpg", "b.png"]
    assert examples[1]["meta"] == {"file": "b.png"}
    header, data = examples[1]["image"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(data) == PNG


def test_images_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BadSource, match="does not exist"):
        list(loaders.Images(tmp_path / "photos"))
    (tmp_path / "big.png").write_bytes(PNG * 100)
    with source_options(max_record_bytes=1000), pytest.raises(BadSource, match=r"big\.png .* over the limit"):
        list(loaders.Images(tmp_path))


def test_get_stream_picks_loader_by_suffix_and_sets_hashes(tmp_path: Path) -> None:
    source = write(tmp_path / "a.txt", "Hello\nWorld\n")
    examples = list(loaders.get_stream(source))
    assert [eg["text"] for eg in examples] == ["Hello", "World"]
    assert examples[0]["_input_hash"] == get_input_hash({"text": "Hello"})
    assert examples[0] == set_hashes({"text": "Hello"})


def test_get_stream_with_an_explicit_loader(tmp_path: Path) -> None:
    source = write(tmp_path / "data", '{"text": "x"}\n')
    assert [eg["text"] for eg in loaders.get_stream(source, None, "jsonl")] == ["x"]  # (source, api, loader)
    with pytest.raises(BadSource, match="no loader for data"):
        list(loaders.get_stream(source))


def test_get_stream_rehash_and_dedup(tmp_path: Path) -> None:
    lines = [
        '{"text": "same", "_input_hash": 1, "_task_hash": 2}',
        '{"text": "same"}',
        '{"text": "other"}',
    ]
    source = write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    kept = list(loaders.get_stream(source))
    assert kept[0]["_input_hash"] == 1  # hashes a source came with are kept
    rehashed = list(loaders.get_stream(source, rehash=True))
    assert rehashed[0]["_input_hash"] == rehashed[1]["_input_hash"] == get_input_hash({"text": "same"})
    assert [eg["text"] for eg in loaders.get_stream(source, rehash=True, dedup=True)] == ["same", "other"]


def test_get_stream_input_key_for_text_files(tmp_path: Path) -> None:
    source = write(tmp_path / "a.txt", "<b>Hi</b>\n<b>Hi</b>\n")
    examples = list(loaders.get_stream(source, input_key="html", dedup=True))
    assert len(examples) == 1
    assert examples[0]["html"] == "<b>Hi</b>"
    assert examples[0]["_input_hash"] == get_input_hash({"html": "<b>Hi</b>"}, ("html",))


def test_get_stream_of_examples_in_memory_and_of_an_image_directory(tmp_path: Path) -> None:
    assert [eg["text"] for eg in loaders.get_stream([{"text": "a"}, {"text": "a"}], dedup=True)] == ["a"]
    with pytest.raises(RecipeError, match="example 2 of the stream is a str"):
        list(loaders.get_stream([{"text": "a"}, "b"]))  # type: ignore[list-item]
    (tmp_path / "cat.png").write_bytes(PNG)
    [image] = loaders.get_stream(tmp_path)
    assert image["text"] == "cat.png" and "_task_hash" in image


def test_get_stream_refuses_stdin_and_remote_apis(tmp_path: Path) -> None:
    with pytest.raises(BadSource, match="standard input is not supported"):
        list(loaders.get_stream("-"))
    with pytest.raises(RecipeError, match="remote API loaders"):
        loaders.get_stream(tmp_path / "a.jsonl", "twitter")


# Stream


def counting(n_texts: int, pulled: list[int]) -> Iterator[dict[str, Any]]:
    for i in range(n_texts):
        pulled.append(i)
        yield {"text": f"text {i}"}


def test_stream_apply_wraps_lazily_and_in_place(tmp_path: Path) -> None:
    source = write(tmp_path / "a.jsonl", '{"text": "a"}\n{"text": "b"}\n')

    def add_options(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for eg in stream:
            eg["options"] = [{"id": 1, "text": "yes"}]
            yield eg

    def upper(examples: Iterable[dict[str, Any]], suffix: str) -> Iterator[dict[str, Any]]:
        for eg in examples:
            eg["text"] = eg["text"].upper() + suffix
            yield eg

    s = stream.get_stream(source, rehash=True)
    assert isinstance(s, stream.Stream)
    s.apply(add_options, stream=s)  # in place, stream named as a keyword
    assert s.apply(upper, "!") is s  # returned, stream as the first argument
    examples = list(s)
    assert [eg["text"] for eg in examples] == ["A!", "B!"]
    assert all(eg["options"] for eg in examples)


def test_stream_apply_reads_nothing_until_iterated(nlp: Language) -> None:
    pulled: list[int] = []
    s = stream.Stream(counting(100, pulled))
    s.apply(add_tokens, nlp, batch_size=2)  # `stream` found by keyword: add_tokens(nlp, stream=…)
    assert pulled == []
    first = next(s)
    assert first["tokens"][0]["text"] == "text"
    assert len(pulled) == 2


# Preprocessors


def test_add_tokens_adds_tokens_and_span_indices(nlp: Language) -> None:
    eg = {"text": "Ada Lovelace wrote code", "spans": [{"start": 0, "end": 12, "label": "PERSON"}]}
    [out] = add_tokens(nlp, [eg])
    assert [t["text"] for t in out["tokens"]] == ["Ada", "Lovelace", "wrote", "code"]
    assert out["spans"][0]["token_start"] == 0
    assert out["spans"][0]["token_end"] == 1


def test_add_tokens_raises_for_a_span_inside_a_token_unless_skip(nlp: Language) -> None:
    good = {"text": "Paris is big"}
    bad = {"text": "Lovelace wrote", "spans": [{"start": 0, "end": 4, "label": "PERSON"}]}
    with pytest.raises(RecipeError, match=r'span "Love" .* token boundaries.*skip=True'):
        list(add_tokens(nlp, [good, bad]))
    assert [eg["text"] for eg in add_tokens(nlp, [good, bad], skip=True)] == ["Paris is big"]


def test_add_tokens_keeps_existing_tokens_unless_overwrite(nlp: Language) -> None:
    tokens = [{"text": "New York", "start": 0, "end": 8, "id": 0, "ws": False}]
    eg = {"text": "New York", "tokens": tokens, "spans": [{"start": 0, "end": 8, "label": "GPE"}]}
    [kept] = add_tokens(nlp, [eg])
    assert kept["tokens"] == tokens
    assert (kept["spans"][0]["token_start"], kept["spans"][0]["token_end"]) == (0, 0)
    [redone] = add_tokens(nlp, [kept], overwrite=True)
    assert [t["text"] for t in redone["tokens"]] == ["New", "York"]
    assert (redone["spans"][0]["token_start"], redone["spans"][0]["token_end"]) == (0, 1)


def test_split_sentences_gives_one_task_per_sentence_with_its_hashes(nlp: Language) -> None:
    text = "Ada wrote code. Paris is big. Bob sleeps."
    spans = [
        {"start": 0, "end": 3, "label": "PERSON", "token_start": 0, "token_end": 0},
        {"start": 16, "end": 21, "label": "GPE", "token_start": 4, "token_end": 4},
        {"start": 10, "end": 20, "label": "ACROSS"},
    ]
    eg = {"text": text, "spans": spans, "meta": {"id": 7}, "_input_hash": 1, "_task_hash": 2}
    tasks = list(split_sentences(nlp, [eg]))
    assert [t["text"] for t in tasks] == ["Ada wrote code.", "Paris is big.", "Bob sleeps."]
    for task in tasks:
        fresh = set_hashes({key: value for key, value in task.items() if not key.startswith("_")})
        assert task["_input_hash"] == get_input_hash({"text": task["text"]})
        assert (task["_input_hash"], task["_task_hash"]) == (fresh["_input_hash"], fresh["_task_hash"])
        assert task["meta"] == {"id": 7}
    assert tasks[0]["spans"] == [spans[0]]
    assert tasks[1]["spans"] == [{"start": 0, "end": 5, "label": "GPE", "token_start": 0, "token_end": 0}]
    assert tasks[2]["spans"] == []
    assert len({t["_task_hash"] for t in tasks}) == 3
    assert nlp.pipe_names == []  # the pipeline given is left as it was


def test_split_sentences_keeps_short_texts_whole_and_runs_lazily(nlp: Language) -> None:
    [short] = split_sentences(nlp, [{"text": "Hi. Bye."}], min_length=20)
    assert short["text"] == "Hi. Bye." and "_input_hash" in short
    pulled: list[int] = []
    sentences = split_sentences(nlp, counting(10**6, pulled), batch_size=4)
    assert next(sentences)["text"] == "text 0"
    assert len(pulled) < 100


def test_preprocessors_name_an_example_without_text(nlp: Language) -> None:
    with pytest.raises(RecipeError, match='no "text" string'):
        list(split_sentences(nlp, [{"image": "cat.png"}]))
    with pytest.raises(RecipeError, match='no "text" string'):
        list(add_tokens(nlp, [{"image": "cat.png"}]))


# Sorters


def endless(scores: list[float]) -> Iterator[tuple[float, dict[str, Any]]]:
    """(score, example) pairs forever, cycling through `scores`."""
    for i, score in enumerate(itertools.cycle(scores)):
        yield score, {"text": f"t{i}", "score": score}


Sorter = Callable[..., Iterator[dict[str, Any]]]
SORTERS: list[Sorter] = [sorters.prefer_uncertain, sorters.prefer_high_scores, sorters.prefer_low_scores]


@pytest.mark.parametrize("sort", SORTERS)
@pytest.mark.parametrize("algorithm", ["ema", "probability"])
def test_sorters_yield_examples_lazily_from_an_endless_stream(sort: Sorter, algorithm: str) -> None:
    examples = list(itertools.islice(sort(endless([0.1, 0.5, 0.9]), algorithm=algorithm, seed=0), 50))
    assert len(examples) == 50
    assert all(isinstance(eg, dict) and eg["text"].startswith("t") for eg in examples)


@pytest.mark.parametrize("algorithm", ["ema", "probability"])
def test_each_sorter_prefers_what_it_names(algorithm: str) -> None:
    def picked(sort: Sorter) -> Counter[str]:
        """How many of 300 chosen examples scored low (<1/3), middling, or high (>2/3)."""
        rng = random.Random(7)
        scored = ((score, {"score": score}) for score in iter(rng.random, None))
        chosen = itertools.islice(sort(scored, algorithm=algorithm, seed=1), 300)
        return Counter(
            "low" if eg["score"] < 1 / 3 else "high" if eg["score"] > 2 / 3 else "mid" for eg in chosen
        )

    high = picked(sorters.prefer_high_scores)
    assert high["high"] > high["mid"] > high["low"]
    low = picked(sorters.prefer_low_scores)
    assert low["low"] > low["mid"] > low["high"]
    uncertain = picked(sorters.prefer_uncertain)
    assert uncertain["mid"] > uncertain["high"] and uncertain["mid"] > uncertain["low"]


def test_probability_sorter_is_repeatable_with_a_seed() -> None:
    def run(seed: int) -> list[str]:
        sort = sorters.prefer_high_scores(endless([0.2, 0.4, 0.6, 0.8]), algorithm="probability", seed=seed)
        return [eg["text"] for eg in itertools.islice(sort, 30)]

    assert run(3) == run(3)


def test_a_stream_of_falling_scores_never_stalls() -> None:
    falling = ((1.0 - i * 1e-6, {"text": f"t{i}"}) for i in itertools.count())
    examples = list(itertools.islice(sorters.prefer_high_scores(falling), 20))
    assert len(examples) == 20


def test_bias_lets_more_examples_through() -> None:
    def pulled_for(bias: float) -> int:
        pulled: list[int] = []

        def scored() -> Iterator[tuple[float, dict[str, Any]]]:
            for i in itertools.count():
                pulled.append(i)
                yield (0.2 if i % 2 else 0.8), {"text": f"t{i}"}

        list(itertools.islice(sorters.prefer_high_scores(scored(), bias=bias), 50))
        return len(pulled)

    assert pulled_for(1.0) < pulled_for(0.0)


def test_sorters_say_what_they_need() -> None:
    with pytest.raises(RecipeError, match=r"\(score, example\) pairs .* got a dict"):
        next(sorters.prefer_uncertain(iter([{"text": "no model"}])))  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="gave the score 'high'"):
        next(sorters.prefer_high_scores(iter([("high", {"text": "x"})])))  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match="unknown algorithm 'random'"):
        sorters.prefer_low_scores(iter([]), algorithm="random")
