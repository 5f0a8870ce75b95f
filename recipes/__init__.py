"""Annotation workflows: loaders, spaCy glue and the registered recipes."""

from __future__ import annotations

from recipes.errors import BadSource, RecipeError
from recipes.registry import RECIPES, Components, get_recipe, recipe

__all__ = ["RECIPES", "BadSource", "Components", "RecipeError", "get_recipe", "recipe"]
