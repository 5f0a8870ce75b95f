"""`mark`: show the stream in any view and record accept / reject / ignore."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from recipes.api import recipe
from recipes.args import parse_labels
from recipes.errors import RecipeError
from recipes.loaders import PREFLIGHT_RECORDS, CountedStream, get_stream, validate_source
from recipes.views import VIEW_IDS

__all__ = ["mark"]


@recipe(
    "mark",
    dataset=("Dataset to save answers to", "positional", None, str),
    source=("Examples to annotate: .jsonl, .json, .csv or .txt", "positional", None, str),
    view_id=(f"View to show: {', '.join(sorted(VIEW_IDS))}", "option", "v", str),
    label=("Label to add to every task (shown with it)", "option", "l", str),
    loader=("Loader to use instead of the file suffix: jsonl, json, csv, txt", "option", "lo", str),
)
def mark(
    dataset: str,
    source: str,
    view_id: str = "text",
    label: str | None = None,
    loader: str | None = None,
) -> dict[str, Any]:
    """Show each example in one view and record accept, reject or ignore.

    Prints this run's counts when the server stops.

    Example: quorum mark checked examples/news.jsonl --view-id classification --label Tech
    """
    validate_dataset_name(dataset)
    if view_id not in VIEW_IDS:
        raise RecipeError(f"unknown view {view_id!r} for mark: use one of {', '.join(sorted(VIEW_IDS))}")
    labels = parse_labels(label) if label else []
    if len(labels) > 1:
        raise RecipeError(f"mark adds one label to every task; got {', '.join(labels)}")
    total = validate_source(source, loader, limit=PREFLIGHT_RECORDS)
    counts: Counter[str] = Counter()

    def stream() -> Iterator[dict[str, Any]]:
        for eg in get_stream(source, loader):
            if labels:
                eg["label"] = labels[0]
            set_hashes(eg)
            yield eg

    def update(answers: list[dict[str, Any]]) -> None:
        counts.update(str(eg.get("answer")) for eg in answers)

    def on_exit(ctrl: Any) -> None:
        figures = ", ".join(f"{counts[a]} {a}" for a in ("accept", "reject", "ignore"))
        print(f"{dataset}: {figures} this run ({ctrl.total_annotated} answers in the dataset)")

    config: dict[str, Any] = {"labels": labels} if labels else {}
    return {
        "dataset": dataset,
        "view_id": view_id,
        "stream": CountedStream(stream, total),
        "config": config,
        "update": update,
        "on_exit": on_exit,
    }
