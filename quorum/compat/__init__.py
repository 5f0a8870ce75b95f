"""`quorum.compat.prodigy`: Prodigy's recipe API on Quorum; `install()` makes it `prodigy`.

The code lives in `recipes.compat`; this package only gives it its public name.
"""

from __future__ import annotations

from recipes.compat import alias, install

__all__ = ["install"]

alias("quorum.compat.prodigy", "recipes.compat.prodigy")
