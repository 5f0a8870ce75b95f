"""Errors raised while loading sources and setting up recipes."""

from __future__ import annotations

from ledger.errors import QuorumError

__all__ = ["BadSource", "RecipeError"]


class RecipeError(QuorumError):
    """A recipe cannot start: unknown pipeline, bad label list, unknown recipe…"""


class BadSource(RecipeError):
    """A source file cannot be read: names the file, the line and the fix."""
