"""The recipe API: `@recipe("name", arg=(help, kind, shortcut, converter), …)`.

A recipe is a plain function that returns a components dict (`dataset`, `stream`,
`view_id`, `config`, callbacks…; see `recipes.components`). The decorator registers it
under a command name and describes its arguments for the command line, in the argument
tuples Prodigy's recipes use:

    @recipe(
        "news.classify",
        dataset=("Dataset to save answers to", "positional", None, str),
        source=("Examples to annotate", "positional", None, str),
        label=("Comma-separated labels", "option", "l", split_string),
        exclusive=("Labels are mutually exclusive", "flag", "E", bool),
    )
    def classify(dataset, source, label=None, exclusive=False): ...

An argument without a tuple is described by the signature: no default makes it
positional, a `bool` default a flag, any other default an option; a type hint (`int`,
`float`, `str`, `Path`) converts it. The decorated function is returned unchanged, so
Python code calls it directly.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recipes.errors import RecipeDefinitionError
from recipes.registry import register
from recipes.spec import Arg, RecipeSpec

__all__ = ["KINDS", "Arg", "RecipeSpec", "describe", "recipe", "set_origin"]

KINDS = ("positional", "option", "flag")
"""How an argument is given on the command line."""

_MISSING = inspect.Parameter.empty


def _hint_converter(hint: Any) -> Callable[[str], Any] | None:
    """A converter from a plain type hint (`int`, `Path | None`…), or None for text."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return typing.cast(Callable[[str], Any], hint) if hint in (int, float, Path) else None


def _arg(name: str, param: inspect.Parameter, spec: Any, hints: dict[str, Any], where: str) -> Arg:
    has_default = param.default is not _MISSING
    default = param.default if has_default else None
    if spec is None:
        if not has_default:
            kind = "positional"
        elif isinstance(param.default, bool):
            kind = "flag"
        else:
            kind = "option"
        return Arg(name, "", kind, None, _hint_converter(hints.get(name)), default, not has_default)
    if not isinstance(spec, tuple) or not 1 <= len(spec) <= 4:
        raise RecipeDefinitionError(
            f"{where}: argument {name!r} is described by {spec!r}; use a tuple "
            f"(help, kind, shortcut, converter), e.g. ('Labels', 'option', 'l', split_string)"
        )
    help_text, kind, shortcut, converter = (*spec, None, None, None)[:4]
    kind = kind or ("positional" if not has_default else "option")
    if kind not in KINDS:
        raise RecipeDefinitionError(
            f"{where}: argument {name!r} has kind {kind!r}; use one of {', '.join(KINDS)}"
        )
    if shortcut is not None and (not isinstance(shortcut, str) or not shortcut.strip("-")):
        raise RecipeDefinitionError(f"{where}: argument {name!r} has shortcut {shortcut!r}; use a letter")
    if converter is not None and not callable(converter):
        raise RecipeDefinitionError(f"{where}: the converter of argument {name!r} is not callable")
    if converter is None:
        converter = _hint_converter(hints.get(name))
    # A positional argument with a default may be left out (Prodigy's optional positionals).
    required = kind == "positional" and not has_default
    if kind == "flag":
        default = bool(default)
    return Arg(name, help_text or "", kind, shortcut and shortcut.strip("-"), converter, default, required)


def describe(name: str, func: Callable[..., Any], specs: dict[str, Any], origin: str) -> RecipeSpec:
    """The `RecipeSpec` of `func` with the decorator's argument tuples `specs`."""
    where = f"recipe {name!r}"
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise RecipeDefinitionError(f"recipe name {name!r} is not a single word such as 'ner.manual'")
    if not callable(func):
        raise RecipeDefinitionError(f"{where}: @recipe decorates {func!r}, which is not a function")
    signature = inspect.signature(func)
    unknown = sorted(set(specs) - set(signature.parameters))
    if unknown:
        raise RecipeDefinitionError(
            f"{where}: the decorator describes {', '.join(unknown)}, which the function does not take"
        )
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: arguments stay text
        hints = {}
    args = tuple(
        _arg(param_name, param, specs.get(param_name), hints, where)
        for param_name, param in signature.parameters.items()
        if param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    )
    return RecipeSpec(name, func, args, origin, inspect.getdoc(func) or "")


_origin = "built-in"


def set_origin(origin: str) -> str:
    """Recipes registered from now on come from `origin` (a `-F` file); returns the previous."""
    global _origin
    previous, _origin = _origin, origin
    return previous


def recipe(name: str, **specs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the recipe `name`; see the module docstring."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        register(describe(name, func, specs, _origin))
        return func

    return decorate
