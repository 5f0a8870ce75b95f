"""The views the web app has, and what a task needs for each (checked as it is queued)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REQUIRED_FIELDS", "VIEW_IDS", "missing_fields"]

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "classification": ("text",),
    "text": ("text",),
    "choice": ("options",),
    "ner_manual": ("text", "tokens"),
    "spans_manual": ("text", "tokens"),
}
"""A task of each view needs these keys (`tokens`: recipes add them with spaCy)."""

VIEW_IDS = frozenset(REQUIRED_FIELDS)


def missing_fields(view_id: str, task: Mapping[str, Any]) -> list[str]:
    """The keys `task` lacks for `view_id` (an unknown view has no requirements here)."""
    return [name for name in REQUIRED_FIELDS.get(view_id, ()) if task.get(name) in (None, "", [])]
