"""The recipe registry: every recipe's `RecipeSpec`, by command name.

Filled by `@recipe` (recipes.api) as modules load: the built-ins (`recipes.builtin`)
and the user's `-F` files (`recipes.files`). A recipe from a file replaces a built-in of
the same name, and `replaced` remembers it so the command line can say so; two files
defining the same name is an error.
"""

from __future__ import annotations

import difflib

from recipes.errors import RecipeDefinitionError, RecipeError
from recipes.spec import RecipeSpec

__all__ = ["REGISTRY", "get_recipe", "register", "replaced"]

REGISTRY: dict[str, RecipeSpec] = {}
replaced: list[RecipeSpec] = []
"""Built-ins a `-F` file replaced, in order."""


def register(spec: RecipeSpec) -> None:
    """Add `spec`, replacing a built-in (remembered in `replaced`) or its own earlier version."""
    existing = REGISTRY.get(spec.name)
    if existing is not None and existing.origin != spec.origin:
        if existing.origin != "built-in":
            raise RecipeDefinitionError(
                f"recipe {spec.name!r} is defined in both {existing.origin} and {spec.origin}; "
                f"rename one of them or pass only one with -F"
            )
        replaced.append(existing)
    REGISTRY[spec.name] = spec


def get_recipe(name: str) -> RecipeSpec:
    """The recipe called `name`, or a `RecipeError` that suggests the closest names."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise RecipeError(f"unknown recipe {name!r}.{hint} Available: {', '.join(sorted(REGISTRY))}")
