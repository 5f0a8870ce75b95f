"""Every recipe a command line can run: the built-ins, then the `-F` files.

Importing the built-in modules registers them (`@recipe`); `load` adds the files. The
registry itself (`recipes.registry`) imports no recipe, so nothing here is circular.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import recipes.mark
import recipes.ner
import recipes.textcat
from recipes.files import load_recipe_files
from recipes.registry import REGISTRY, get_recipe, replaced

__all__ = ["BUILT_IN", "get_recipe", "load", "replaced"]

BUILT_IN = (recipes.ner.ner_manual, recipes.textcat.textcat_manual, recipes.mark.mark)


def load(files: Iterable[str | Path] = ()) -> list[str]:
    """The built-ins plus the recipes `files` define; returns every recipe name."""
    load_recipe_files(files)
    return sorted(REGISTRY)
