"""Every recipe a command line can run: the built-ins, then the `-F` files.

Importing the built-in modules registers them (`@recipe`); `load` adds the files. The
registry itself (`recipes.registry`) imports no recipe, so nothing here is circular.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

import recipes.mark
import recipes.ner
import recipes.textcat
from recipes.components import Components, check_components
from recipes.errors import RecipeUsageError
from recipes.files import load_recipe_files
from recipes.registry import REGISTRY, get_recipe, replaced

__all__ = ["BUILT_IN", "RecipeCall", "call_recipe", "get_recipe", "load", "replaced"]

BUILT_IN = (recipes.ner.ner_manual, recipes.textcat.textcat_manual, recipes.mark.mark)


def load(files: Iterable[str | Path] = ()) -> list[str]:
    """The built-ins plus the recipes `files` define; returns every recipe name."""
    load_recipe_files(files)
    return sorted(REGISTRY)


class RecipeCall(msgspec.Struct, frozen=True):
    """A recipe call as the command line made it, for processes that make it again
    (feed workers, for `validate_answer` and `before_db`)."""

    name: str
    files: list[str] = []
    args: dict[str, Any] = {}

    def encode(self) -> str:
        """As JSON; arguments that aren't plain data (a custom converter's object) can't travel."""
        try:
            return msgspec.json.encode(self, enc_hook=_plain).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            raise RecipeUsageError(
                f"recipe {self.name!r} has validate_answer or before_db, which the feed workers run, "
                f"so they call the recipe too; its arguments must be plain data ({exc})"
            ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def call_recipe(call: RecipeCall) -> Components:
    """Call the recipe `call` names (loading its files first); its checked components.
    The stream is not read."""
    load(call.files)
    return check_components(call.name, get_recipe(call.name).func(**call.args))
