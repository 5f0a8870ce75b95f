"""Prodigy's public recipe API, on Quorum: `import prodigy` after `quorum.compat.install()`.

`prodigy.recipe` is Quorum's `recipes.api.recipe`: a decorated function becomes a
`quorum <name>` command, with the same argument tuples. The submodules mirror Prodigy's
documented ones (`prodigy.util`, `prodigy.components.loaders`, `.preprocess`, `.sorters`,
`.db`, `prodigy.models.matcher`).
"""

from __future__ import annotations

from recipes.api import recipe
from recipes.compat.prodigy.util import set_hashes

__all__ = ["recipe", "set_hashes"]
