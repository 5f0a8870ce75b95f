"""`textcat.manual`: classify whole texts.

One label gives the `classification` view (accept / reject that label); several give
the `choice` view, one option per label — single choice with `exclusive`, else
multiple choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from recipes.loaders import get_stream, validate_source
from recipes.registry import Components, parse_labels, recipe

__all__ = ["textcat_manual"]


@recipe("textcat.manual")
def textcat_manual(
    dataset: str,
    source: str | Path,
    label: str | list[str] | None,
    *,
    exclusive: bool = False,
    loader: str | None = None,
) -> Components:
    """Label texts in `source` with one or more of `label`."""
    validate_dataset_name(dataset)
    labels = parse_labels(label)
    total = validate_source(source, loader)
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
    return Components(
        recipe="textcat.manual",
        dataset=dataset,
        view_id=view_id,
        stream=stream(),
        config=config,
        total=total,
    )
