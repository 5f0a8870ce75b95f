"""Projections: datasets, sessions and counts derived from the ledger."""

from __future__ import annotations

__all__: list[str] = []
