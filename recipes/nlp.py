"""spaCy glue: load a pipeline by name and turn texts into Prodigy-style tokens."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from recipes.errors import RecipeError

__all__ = ["add_tokens", "load_nlp"]


def load_nlp(spec: str) -> Any:
    """`blank:<lang>`, an installed pipeline name, or a path to one."""
    import spacy

    if spec.startswith("blank:"):
        lang = spec.split(":", 1)[1]
        try:
            return spacy.blank(lang)
        except Exception:
            raise RecipeError(
                f"unknown language {lang!r} in {spec!r}; use a code spaCy knows, e.g. blank:en"
            ) from None
    try:
        return spacy.load(Path(spec) if Path(spec).exists() else spec, exclude=["ner"])
    except OSError:
        raise RecipeError(
            f"can't find spaCy pipeline {spec!r}: install it (pip install <package>), pass a "
            f"path to a trained pipeline, or use blank:en for tokenisation only"
        ) from None


def add_tokens(nlp: Any, stream: Iterable[dict[str, Any]], batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Add `tokens` (text/start/end/id/ws) to each example; snap existing spans to tokens."""
    examples = iter(stream)
    pairs = ((eg["text"], eg) for eg in examples)
    for doc, eg in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
        eg["tokens"] = [
            {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
            for t in doc
        ]
        spans = eg.get("spans")
        if isinstance(spans, list):
            for span in spans:
                if isinstance(span, dict) and "start" in span and "end" in span and "token_start" not in span:
                    char_span = doc.char_span(span["start"], span["end"], alignment_mode="expand")
                    if char_span is not None:
                        span["token_start"] = char_span.start
                        span["token_end"] = char_span.end - 1
        yield eg
