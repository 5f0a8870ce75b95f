"""`prodigy.components.preprocess`: tokens and sentences for streams, with spaCy.

Both functions are lazy generators over a stream of examples and leave the spaCy
pipeline they are given as it was: sentence boundaries for a pipeline without a parser
or sentence splitter come from a separate `sentencizer`, never from adding one to `nlp`.
Tokens are `recipes.nlp.add_tokens`'s, the format every Quorum view reads.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from ledger.hashing import set_hashes
from recipes import nlp as quorum_nlp
from recipes.compat.prodigy.util import log
from recipes.errors import RecipeError

__all__ = ["add_tokens", "split_sentences"]

Example = dict[str, Any]


def add_tokens(
    nlp: Any,
    stream: Iterable[Example],
    skip: bool = False,
    overwrite: bool = False,
    batch_size: int = 32,
) -> Iterator[Example]:
    """Add `tokens` to each example and `token_start`/`token_end` to its spans.

    An example that has tokens keeps them (its spans are matched to those) unless
    `overwrite` is true. A span whose `start` or `end` falls inside a token cannot be
    annotated token by token: it raises `RecipeError` naming the span, or with `skip`
    the example is dropped (and logged).
    """
    examples = iter(stream)
    while batch := list(itertools.islice(examples, batch_size)):
        fresh = [eg for eg in batch if overwrite or "tokens" not in eg]
        retokenized = {id(eg) for eg in fresh}
        for eg in fresh:
            _text(eg)
            for span in _spans(eg):
                if "start" in span and "end" in span:
                    # Indices from the old tokens would not fit the new ones.
                    span.pop("token_start", None)
                    span.pop("token_end", None)
        for _ in quorum_nlp.add_tokens(nlp, fresh, batch_size=batch_size):
            pass  # it fills the examples in place
        for eg in batch:
            if id(eg) not in retokenized:
                _match_spans_to_tokens(eg)
            problem = _misaligned_span(eg)
            if problem is None:
                yield eg
            elif skip:
                log(f"PREPROCESS: skipped an example: {problem}", eg)
            else:
                raise RecipeError(
                    f"{problem}: fix the span's offsets, or pass skip=True to leave out such examples"
                )


def split_sentences(
    nlp: Any, stream: Iterable[Example], batch_size: int = 32, min_length: int = -1
) -> Iterator[Example]:
    """One example per sentence, with the spans that lie inside it, new hashes.

    Each sentence example is a copy of its source example (meta and all) with the
    sentence as `text`, the spans that fall entirely within the sentence moved to its
    offsets (token indices too, where the span had them), and its own `_input_hash` and
    `_task_hash`. Tokens are not kept: tokenize the sentences with `add_tokens`. An
    example whose text is shorter than `min_length` characters is passed on whole.
    """
    from spacy.pipeline import Sentencizer

    sentencizer = Sentencizer()
    pairs = ((_text(eg), eg) for eg in stream)
    for doc, eg in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
        if len(eg["text"]) < min_length:
            yield set_hashes(eg)
            continue
        if not doc.has_annotation("SENT_START"):
            doc = sentencizer(doc)
        for sent in doc.sents:
            if sent.text.strip():
                yield _sentence_example(eg, doc, sent)


def _sentence_example(eg: Example, doc: Any, sent: Any) -> Example:
    dropped = ("text", "spans", "tokens", "_input_hash", "_task_hash")
    task = copy.deepcopy({key: value for key, value in eg.items() if key not in dropped})
    task["text"] = sent.text
    if "spans" in eg:
        task["spans"] = []
    for span in _spans(eg):
        start, end = span.get("start"), span.get("end")
        if not (isinstance(start, int) and isinstance(end, int)):
            continue
        if start < sent.start_char or end > sent.end_char:
            continue  # outside this sentence, or across its boundary
        moved = copy.deepcopy(span)
        moved["start"], moved["end"] = start - sent.start_char, end - sent.start_char
        tokens = doc.char_span(start, end, alignment_mode="expand")
        if "token_start" in span and tokens is not None:
            moved["token_start"], moved["token_end"] = tokens.start - sent.start, tokens.end - 1 - sent.start
        task["spans"].append(moved)
    return set_hashes(task, overwrite=True)


def _text(eg: Example) -> str:
    text = eg.get("text") if isinstance(eg, dict) else None
    if not isinstance(text, str):
        raise RecipeError(f'an example has no "text" string to process: {str(eg)[:80]}')
    return text


def _spans(eg: Example) -> list[dict[str, Any]]:
    spans = eg.get("spans")
    return [s for s in spans if isinstance(s, dict)] if isinstance(spans, list) else []


def _match_spans_to_tokens(eg: Example) -> None:
    """Give spans without token indices those of the example's own tokens."""
    tokens = eg["tokens"] if isinstance(eg["tokens"], list) else []
    starts = {t.get("start"): i for i, t in enumerate(tokens) if isinstance(t, dict)}
    ends = {t.get("end"): i for i, t in enumerate(tokens) if isinstance(t, dict)}
    for span in _spans(eg):
        if "token_start" not in span and span.get("start") in starts and span.get("end") in ends:
            span["token_start"], span["token_end"] = starts[span["start"]], ends[span["end"]]


def _misaligned_span(eg: Example) -> str | None:
    """Why a span of `eg` does not start and end on token boundaries, or None."""
    tokens = eg.get("tokens")
    tokens = [t if isinstance(t, dict) else {} for t in tokens] if isinstance(tokens, list) else []
    for span in _spans(eg):
        start, end = span.get("start"), span.get("end")
        if start is None or end is None:
            continue  # a span given by token indices only
        first, last = span.get("token_start"), span.get("token_end")
        aligned = (
            isinstance(first, int)
            and isinstance(last, int)
            and 0 <= first <= last < len(tokens)
            and tokens[first].get("start") == start
            and tokens[last].get("end") == end
        )
        if not aligned:
            text = str(eg.get("text", ""))
            return (
                f'span "{text[start:end]}" (characters {start}-{end}) of "{text[:60]}" does not '
                f"start and end on token boundaries"
            )
    return None
