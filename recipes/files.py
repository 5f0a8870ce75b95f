"""Recipe files: `quorum my.recipe … -F recipe.py` loads the recipes a file defines.

Each file is imported as a module of its own name (`quorum_recipes.<stem>_<hash>`), with
`import prodigy` giving Quorum's compatible API when no real Prodigy is installed, so a
Prodigy recipe file runs unchanged. A feed worker imports the same file by path to run
its `validate_answer` and `before_db` (`import_recipe_file`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from recipes import api
from recipes.compat import install
from recipes.errors import RecipeDefinitionError, RecipeUsageError
from recipes.registry import REGISTRY

__all__ = ["import_recipe_file", "load_recipe_files", "recipe_file_args"]


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"quorum_recipes.{stem}_{digest}"


def import_recipe_file(path: str | Path) -> ModuleType:
    """Import the recipe file at `path` (once per process); its recipes register."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise RecipeUsageError(
            f"recipe file {path} does not exist"
            + ("" if not file.exists() else " (it is a directory)")
            + "; pass the path of a .py file with -F"
        )
    name = _module_name(file)
    if name in sys.modules:
        return sys.modules[name]
    install()
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RecipeUsageError(f"recipe file {path} is not a Python file; pass a .py file with -F")
    module = importlib.util.module_from_spec(spec)
    previous = api.set_origin(str(path))
    sys.modules[name] = module
    # The file's own folder is importable, as for `python recipe.py` (helper modules beside it).
    sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise RecipeUsageError(
            f"recipe file {path} has a syntax error on line {exc.lineno}: {exc.msg}"
        ) from None
    except RecipeUsageError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise RecipeUsageError(
            f"recipe file {path} failed while loading, at {Path(where.filename).name} line {where.lineno}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        sys.path.remove(str(file.parent))
        api.set_origin(previous)
    return module


def load_recipe_files(paths: Iterable[str | Path]) -> list[str]:
    """Import every `-F` file; the names of the recipes they define, in order.

    A file that defines no recipe, and a name two files define, are errors.
    """
    names: list[str] = []
    for path in paths:
        before = {name: spec.origin for name, spec in REGISTRY.items()}
        import_recipe_file(path)
        defined = [
            n for n, spec in REGISTRY.items() if spec.origin == str(path) and before.get(n) != str(path)
        ]
        if not defined:
            raise RecipeDefinitionError(
                f"recipe file {path} defines no recipe; decorate a function with "
                f'@prodigy.recipe("name", …) or @quorum.recipe("name", …)'
            )
        names.extend(defined)
    return names


def recipe_file_args(argv: list[str]) -> list[str]:
    """The `-F` / `--file` values in a command line, before the command is parsed."""
    files: list[str] = []
    for i, arg in enumerate(argv):
        if arg in ("-F", "--file") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--file="):
            files.append(arg.split("=", 1)[1])
        elif arg.startswith("-F") and len(arg) > 2:
            files.append(arg[2:])
    return files
