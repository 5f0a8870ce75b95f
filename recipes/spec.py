"""What the registry knows of a recipe: its function and its command-line arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arg", "RecipeSpec"]


@dataclass(frozen=True)
class Arg:
    """One argument of a recipe, as the command line offers it."""

    name: str
    help: str = ""
    kind: str = "positional"
    shortcut: str | None = None
    converter: Callable[[str], Any] | None = None
    default: Any = None
    required: bool = True

    @property
    def flag(self) -> str:
        """`--name-with-dashes`, as on the command line."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class RecipeSpec:
    """A registered recipe: its function and its arguments, in signature order."""

    name: str
    func: Callable[..., Any]
    args: tuple[Arg, ...]
    origin: str = "built-in"
    """`built-in`, or the path of the `-F` file that defined it."""
    doc: str = field(default="", compare=False)

    @property
    def summary(self) -> str:
        """The first line of the docstring, for `quorum --help`."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""
