"""Compatibility layers that let recipe files written for other tools run on Quorum.

`install()` makes `import prodigy` (and `prodigy.util`, `prodigy.components.loaders`…)
load `recipes.compat.prodigy` when no real Prodigy is installed, so a Prodigy recipe
file runs unchanged; `quorum … -F recipe.py` calls it before loading the file.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["alias", "install"]


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `name` and `name.sub…` as the modules under `target`, one object each."""

    def __init__(self, name: str, target: str) -> None:
        self.name, self.target = name, target

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name and not fullname.startswith(self.name + "."):
            return None
        real = self.target + fullname[len(self.name) :]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target + spec.name[len(self.name) :])

    def exec_module(self, module: ModuleType) -> None:
        """The target module ran when it was imported."""


def alias(name: str, target: str) -> None:
    """Let `import name…` give the modules `target…` (once per name)."""
    if not any(isinstance(f, _Alias) and f.name == name for f in sys.meta_path):
        # First: a submodule would otherwise load a second time, from the package path.
        sys.meta_path.insert(0, _Alias(name, target))


def install() -> bool:
    """Make `import prodigy` give Quorum's compatible API, unless a real Prodigy is
    installed (then that one is used). Returns whether Quorum's is in place."""
    if any(isinstance(f, _Alias) and f.name == "prodigy" for f in sys.meta_path):
        return True
    if "prodigy" in sys.modules or importlib.util.find_spec("prodigy") is not None:
        return False
    alias("prodigy", "recipes.compat.prodigy")
    return True
