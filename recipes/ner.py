"""`ner.manual`: highlight entity spans by hand, text pre-tokenised by spaCy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from recipes.loaders import get_stream, validate_source
from recipes.nlp import add_tokens, load_nlp
from recipes.registry import Components, parse_labels, recipe

__all__ = ["ner_manual"]


@recipe("ner.manual")
def ner_manual(
    dataset: str,
    spacy_model: str,
    source: str | Path,
    label: str | list[str] | None,
    *,
    loader: str | None = None,
) -> Components:
    """Mark entity spans in `source` with `label`s; tokens come from `spacy_model`.

    `spacy_model` is `blank:<lang>` for tokenisation only, or an installed pipeline.
    """
    validate_dataset_name(dataset)
    labels = parse_labels(label)
    nlp = load_nlp(spacy_model)
    total = validate_source(source, loader)

    def stream() -> Iterator[dict[str, Any]]:
        examples = (set_hashes(eg) for eg in get_stream(source, loader))
        for eg in add_tokens(nlp, examples):
            eg["_view_id"] = "ner_manual"
            yield eg

    return Components(
        recipe="ner.manual",
        dataset=dataset,
        view_id="ner_manual",
        stream=stream(),
        config={"labels": labels, "lang": nlp.lang},
        total=total,
    )
