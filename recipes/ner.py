"""`ner.manual`: highlight entity spans by hand, text pre-tokenised by spaCy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from recipes.api import recipe
from recipes.args import parse_labels
from recipes.loaders import PREFLIGHT_RECORDS, CountedStream, get_stream, validate_source
from recipes.nlp import add_tokens, load_nlp

__all__ = ["ner_manual"]


@recipe(
    "ner.manual",
    dataset=("Dataset to save answers to, e.g. news", "positional", None, str),
    spacy_model=("blank:en for tokenisation only, or an installed pipeline", "positional", None, str),
    source=("Examples to annotate: .jsonl, .json, .csv or .txt", "positional", None, str),
    label=("Comma-separated labels, or a .txt file of labels", "option", "l", str),
    patterns=("Match patterns (JSONL) to pre-highlight", "option", "pt", str),
    loader=("Loader to use instead of the file suffix: jsonl, json, csv, txt", "option", "lo", str),
)
def ner_manual(
    dataset: str,
    spacy_model: str,
    source: str,
    label: str | list[str] | None = None,
    patterns: str | None = None,
    loader: str | None = None,
) -> dict[str, Any]:
    """Highlight entity spans by hand, on text tokenised by spaCy.

    Example: quorum ner.manual news blank:en examples/news.jsonl --label PERSON,ORG,PRODUCT,LOCATION
    then open http://localhost:8080/?session=alex  (add --annotations-per-task 2 for two annotators
    per text; --patterns FILE pre-highlights what a pattern file matches)
    """
    validate_dataset_name(dataset)
    labels = parse_labels(label)
    nlp = load_nlp(spacy_model)
    total = validate_source(source, loader, limit=PREFLIGHT_RECORDS)
    highlight = None
    if patterns is not None:
        from recipes.patterns import PatternSpans, check_labels, load_patterns

        loaded = load_patterns(patterns)
        check_labels(loaded, labels)
        highlight = PatternSpans(nlp, loaded)

    def stream() -> Iterator[dict[str, Any]]:
        examples = get_stream(source, loader)
        if highlight is None:
            examples = add_tokens(nlp, (set_hashes(eg) for eg in examples))
        else:  # tokens, then the matches as spans: part of the task, so in its hash
            examples = (set_hashes(eg, overwrite=True) for eg in highlight(examples))
        for eg in examples:
            eg["_view_id"] = "ner_manual"
            yield eg

    return {
        "dataset": dataset,
        "view_id": "ner_manual",
        "stream": CountedStream(stream, total),
        "config": {"labels": labels, "lang": nlp.lang},
    }
