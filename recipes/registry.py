"""The recipe registry: recipes are registered functions returning `Components`.

A recipe is a plain function; the CLI (`quorum <recipe> …`) is a thin wrapper around
it, and Python code can call it directly.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes.errors import RecipeError

__all__ = ["RECIPES", "Components", "get_recipe", "parse_labels", "recipe"]


@dataclass
class Components:
    """What a recipe hands to Quorum: the dataset, its view, its stream and config."""

    recipe: str
    dataset: str
    view_id: str
    stream: Iterable[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)
    # How many examples the source holds (known after validation), for progress bars.
    total: int | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.stream)


RECIPES: dict[str, Callable[..., Components]] = {}


def recipe(name: str) -> Callable[[Callable[..., Components]], Callable[..., Components]]:
    """Register a recipe function under `name` (e.g. `ner.manual`)."""

    def register(func: Callable[..., Components]) -> Callable[..., Components]:
        RECIPES[name] = func
        return func

    return register


def get_recipe(name: str) -> Callable[..., Components]:
    """The recipe called `name`, or a `RecipeError` that suggests the closest names."""
    import recipes.ner
    import recipes.textcat  # noqa: F401

    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(name, RECIPES, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise RecipeError(f"unknown recipe {name!r}.{hint} Available: {', '.join(sorted(RECIPES))}")


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
