"""Argument converters recipes share, for the `@recipe` argument tuples."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from recipes.errors import RecipeError

__all__ = ["parse_labels", "split_string"]


def split_string(text: str | None) -> list[str]:
    """`"a, b,,c "` as `["a", "b", "c"]`: the converter for comma-separated options."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_labels(value: str | Iterable[str] | None) -> list[str]:
    """Labels from `A,B,C`, a list, or a text file with one label per line."""
    if value is None:
        raise RecipeError("no labels given: pass --label PERSON,ORG (comma-separated) or a file")
    if isinstance(value, str):
        path = Path(value)
        if "," not in value and path.suffix in (".txt", ".labels") and path.is_file():
            raw = path.read_text(encoding="utf-8").splitlines()
        else:
            raw = value.split(",")
    else:
        raw = [part for item in value for part in item.split(",")]
    labels = [label.strip() for label in raw]
    if not labels or any(not label for label in labels):
        raise RecipeError(
            f"bad label list {value!r}: labels are comma-separated and none may be empty, "
            f"e.g. --label PERSON,ORG"
        )
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise RecipeError(f"bad label list {value!r}: {', '.join(dupes)} given more than once")
    return labels
