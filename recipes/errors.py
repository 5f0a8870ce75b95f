"""Errors raised while loading sources and setting up recipes."""

from __future__ import annotations

from ledger.errors import QuorumError

__all__ = ["BadSource", "RecipeDefinitionError", "RecipeError", "RecipeUsageError"]


class RecipeError(QuorumError):
    """A recipe cannot start: unknown pipeline, bad label list, unknown recipe…"""


class BadSource(RecipeError):
    """A source file cannot be read: names the file, the line and the fix."""


class RecipeUsageError(RecipeError):
    """A recipe used wrongly: a bad `-F` file, components or stream. Exit code 2, as for
    a bad command line, and nothing is queued."""

    exit_code = 2


class RecipeDefinitionError(RecipeUsageError):
    """A recipe's definition is wrong: its decorator, its name, its file."""
