"""Quorum's composition root: CLI wiring, the embedded NATS server and process ownership.

Domain code lives in `ledger/`, `feed/`, `projections/` and `recipes/`; this package
only connects them. `quorum.recipe` is the decorator for recipe files
(`quorum my.recipe … -F recipe.py`).
"""

from __future__ import annotations

from recipes.api import recipe

__all__ = ["__version__", "recipe"]

__version__ = "0.1.0"
