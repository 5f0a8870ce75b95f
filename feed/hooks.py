"""A recipe's callbacks run by the feed workers: `validate_answer`, `before_db`, and
`get_session_id` (the session of a page opened without `?session=`).

The parent passes the recipe call (its name, `-F` files and arguments) in
`QUORUM_RECIPE_CALL` when the recipe has either callback; each worker then calls the
recipe function once at start to get them — it never iterates the stream. A recipe that
loads a large model when called pays that cost once per worker (docs/recipes.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from feed.errors import RecipeFailed, RecipeRejected
from ledger.names import NAME_PATTERN
from ledger.projectable import NotProjectable, example_fields

__all__ = ["ENV", "RecipeHooks"]

ENV = "QUORUM_RECIPE_CALL"

Example = dict[str, Any]


@dataclass(frozen=True)
class RecipeHooks:
    """The callbacks of the served recipe (each None when it has none)."""

    recipe: str = ""
    validate_answer: Callable[[Example], Any] | None = None
    before_db: Callable[[list[Example]], Any] | None = None
    get_session_id: Callable[[], Any] | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RecipeHooks:
        """The hooks of the recipe call in `QUORUM_RECIPE_CALL`, or none."""
        raw = (os.environ if environ is None else environ).get(ENV)
        if not raw:
            return cls()
        # Only now: the recipes (built-in and -F) load in workers whose recipe has hooks.
        from recipes.catalog import RecipeCall, call_recipe

        call = msgspec.json.decode(raw, type=RecipeCall)
        components = call_recipe(call)
        return cls(call.name, components.validate_answer, components.before_db, components.get_session_id)

    def default_session(self) -> str | None:
        """The session the recipe's `get_session_id` names for a page opened without one
        (None without the callback, or when it fails or names no usable session)."""
        if self.get_session_id is None:
            return None
        try:
            name = self.get_session_id()
        except Exception:
            return None
        return name if isinstance(name, str) and NAME_PATTERN.fullmatch(name) else None

    def validate(self, example: Example) -> None:
        """Run `validate_answer`: a ValueError or AssertionError refuses the answer (422)."""
        if self.validate_answer is None:
            return
        try:
            self.validate_answer(example)
        except (ValueError, AssertionError) as exc:
            raise RecipeRejected(str(exc) or f"recipe {self.recipe!r} refused this answer") from None

    def store(self, examples: list[Example]) -> list[Example]:
        """Run `before_db`: what it returns is stored, one dict per answer, or nothing is."""
        if self.before_db is None:
            return examples
        try:
            returned = self.before_db([dict(eg) for eg in examples])
        except Exception as exc:
            raise RecipeFailed(
                f"recipe {self.recipe!r}: before_db raised {type(exc).__name__}: {exc}; nothing was stored"
            ) from None
        if not isinstance(returned, list) or len(returned) != len(examples):
            got = f"{len(returned)} examples" if isinstance(returned, list) else type(returned).__name__
            raise RecipeFailed(
                f"recipe {self.recipe!r}: before_db returned {got} for {len(examples)} answers; it must "
                f"return one dict per answer, in order. Nothing was stored"
            )
        for number, example in enumerate(returned, 1):
            if not isinstance(example, dict):
                raise RecipeFailed(
                    f"recipe {self.recipe!r}: before_db returned a {type(example).__name__} as example "
                    f"{number}, not a dict. Nothing was stored"
                )
            try:
                example_fields(msgspec.json.encode(example))
            except (NotProjectable, TypeError, msgspec.EncodeError) as exc:
                raise RecipeFailed(
                    f"recipe {self.recipe!r}: before_db returned example {number}, which can't be stored: "
                    f"{exc}. Nothing was stored"
                ) from None
        return returned
