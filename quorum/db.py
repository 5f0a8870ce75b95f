"""`quorum.db`: the Python database API under Quorum's public name (see `recipes.db`)."""

from __future__ import annotations

from recipes.db import Database, connect

__all__ = ["Database", "connect"]
