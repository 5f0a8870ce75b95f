"""`textcat.manual`: classify whole texts.

One label gives the `classification` view (accept / reject that label); several give
the `choice` view, one option per label — single choice with `--exclusive`, else
multiple choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from recipes.api import recipe
from recipes.args import parse_labels
from recipes.loaders import PREFLIGHT_RECORDS, CountedStream, get_stream, validate_source

__all__ = ["textcat_manual"]


@recipe(
    "textcat.manual",
    dataset=("Dataset to save answers to, e.g. topics", "positional", None, str),
    source=("Examples to annotate: .jsonl, .json, .csv or .txt", "positional", None, str),
    label=("Comma-separated labels, or a .txt file of labels", "option", "l", str),
    exclusive=("Labels are mutually exclusive (single choice)", "flag", "E", bool),
    loader=("Loader to use instead of the file suffix: jsonl, json, csv, txt", "option", "lo", str),
)
def textcat_manual(
    dataset: str,
    source: str,
    label: str | list[str] | None = None,
    exclusive: bool = False,
    loader: str | None = None,
) -> dict[str, Any]:
    """Classify whole texts: one label gives accept/reject, several give a choice.

    Example: quorum textcat.manual topics examples/news.jsonl --label Tech,Politics --exclusive --feed-overlap
    """
    validate_dataset_name(dataset)
    labels = parse_labels(label)
    total = validate_source(source, loader, limit=PREFLIGHT_RECORDS)
    single = len(labels) == 1
    view_id = "classification" if single else "choice"
    options = [{"id": name, "text": name} for name in labels]

    def stream() -> Iterator[dict[str, Any]]:
        for eg in get_stream(source, loader):
            if single:
                eg["label"] = labels[0]
            else:
                eg["options"] = options
            set_hashes(eg)
            eg["_view_id"] = view_id
            yield eg

    config: dict[str, Any] = {"labels": labels}
    if not single:
        config["choice_style"] = "single" if exclusive else "multiple"
        config["choice_auto_accept"] = exclusive
    return {"dataset": dataset, "view_id": view_id, "stream": CountedStream(stream, total), "config": config}
