"""What a recipe returns, checked: the components dict as a typed `Components`.

A recipe returns Prodigy's components dict. `check_components` turns it into
`Components`, refusing what can't run (one line naming the recipe and the fix, exit
code 2) and warning about keys it doesn't know. Where each callback runs in a
multi-worker server is documented in docs/recipes.md:

- the recipe runner (the `quorum` parent): `stream`, `exclude`, `update`, `progress`,
  `on_load`, `on_exit`;
- the feed workers: `validate_answer`, `before_db`, `get_session_id`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

from recipes.errors import RecipeUsageError
from recipes.views import VIEW_IDS, missing_fields

__all__ = ["CALLBACKS", "KNOWN_KEYS", "Components", "UnknownComponent", "check_components"]

CALLBACKS = (
    "update",
    "before_db",
    "validate_answer",
    "on_load",
    "on_exit",
    "progress",
    "get_session_id",
    "task_router",
)
KNOWN_KEYS = frozenset({"dataset", "stream", "view_id", "config", "exclude", "db", *CALLBACKS})


class UnknownComponent(UserWarning):
    """A recipe returned a key Quorum doesn't know (a typo, or a newer Prodigy key)."""


Example = dict[str, Any]


@dataclass
class Components:
    """A recipe's components, checked. `stream` is lazy: nothing is read until served."""

    recipe: str
    dataset: str
    view_id: str
    stream: Iterable[Example]
    config: dict[str, Any] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    db: bool = True
    update: Callable[[list[Example]], Any] | None = None
    before_db: Callable[[list[Example]], list[Example]] | None = None
    validate_answer: Callable[[Example], Any] | None = None
    on_load: Callable[[Any], Any] | None = None
    on_exit: Callable[[Any], Any] | None = None
    progress: Callable[..., float | None] | None = None
    get_session_id: Callable[[], str] | None = None
    task_router: Callable[..., Any] | None = None
    total: int | None = None
    """How many examples the stream holds, when the recipe knows (`len(stream)`)."""

    def __iter__(self) -> Iterator[Example]:
        return iter(self.stream)


def _checked_stream(recipe: str, view_id: str, stream: Iterable[Any]) -> Iterator[Example]:
    """The stream, each task checked as it is pulled: a dict, or the stream fails."""
    for number, task in enumerate(stream, 1):
        if not isinstance(task, dict):
            raise RecipeUsageError(
                f"recipe {recipe!r}: task {number} of its stream is a {type(task).__name__}, not a "
                f"dict; a stream yields one dict per task, e.g. {{'text': '…'}}"
            )
        yield task


def peek_checked(components: Components) -> Components:
    """Check the stream's first task now (it is kept): a recipe whose stream is wrong from
    the start — not dicts, or tasks without the fields the view needs — fails before
    anything is queued. A later task without them is still served: the web app shows
    what is wrong on its card, and the annotator skips it."""
    stream = _checked_stream(components.recipe, components.view_id, components.stream)
    first = list(itertools.islice(stream, 1))
    for task in first:
        view = task.get("_view_id") or components.view_id
        missing = missing_fields(view, task)
        if missing:
            raise RecipeUsageError(
                f"recipe {components.recipe!r}: task 1 of its stream has no {', '.join(missing)}, "
                f"which the {view!r} view needs"
            )
    components.stream = itertools.chain(first, stream)
    return components


def check_components(recipe: str, result: Any) -> Components:
    """`result` of the recipe `recipe` as `Components`, or a `RecipeUsageError`."""
    if not isinstance(result, Mapping):
        raise RecipeUsageError(
            f"recipe {recipe!r} returned a {type(result).__name__}; a recipe returns a dict of "
            f"components such as {{'dataset': …, 'stream': …, 'view_id': …}}"
        )
    unknown = sorted(set(result) - KNOWN_KEYS)
    if unknown:
        warnings.warn(
            f"recipe {recipe!r} returned {', '.join(map(repr, unknown))}, which Quorum does not know "
            f"and ignores (known: {', '.join(sorted(KNOWN_KEYS))})",
            UnknownComponent,
            stacklevel=2,
        )
    stream = result.get("stream")
    if stream is None or isinstance(stream, str | bytes | Mapping) or not isinstance(stream, Iterable):
        raise RecipeUsageError(
            f"recipe {recipe!r} returned no stream; return 'stream': an iterable of tasks "
            f"(a list or a generator of dicts)"
        )
    dataset = result.get("dataset")
    if dataset is None or dataset is False:
        raise RecipeUsageError(
            f"recipe {recipe!r} returned no dataset; Quorum routes and saves every answer in one "
            f"(with 'db': False nothing is saved), so return 'dataset': the name given on the "
            f"command line"
        )
    if not isinstance(dataset, str) or not dataset:
        raise RecipeUsageError(f"recipe {recipe!r} returned dataset {dataset!r}; return its name as text")
    view_id = result.get("view_id")
    if view_id not in VIEW_IDS:
        raise RecipeUsageError(
            f"recipe {recipe!r} returned view_id {view_id!r}, which Quorum has no view for; use one "
            f"of {', '.join(sorted(VIEW_IDS))}"
        )
    config = result.get("config") or {}
    if not isinstance(config, Mapping):
        raise RecipeUsageError(f"recipe {recipe!r} returned config {config!r}; return a dict")
    for name in CALLBACKS:
        if result.get(name) is not None and not callable(result[name]):
            raise RecipeUsageError(f"recipe {recipe!r} returned {name} = {result[name]!r}, not a function")
    exclude = result.get("exclude") or []
    if isinstance(exclude, str):
        exclude = [exclude]
    # How many tasks the stream holds, when it knows: a list, or a stream with a `total`.
    total = getattr(stream, "total", len(stream) if isinstance(stream, Sized) else None)
    return Components(
        recipe=recipe,
        dataset=dataset,
        view_id=view_id,
        stream=stream,
        config=dict(config),
        exclude=list(exclude),
        db=result.get("db") is not False,
        total=total,
        **{name: result.get(name) for name in CALLBACKS},
    )
