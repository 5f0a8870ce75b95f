"""Stateless HTTP feed workers: the Litestar app, task routing, tokens, answer intake.

Feed workers never keep state between requests; everything lives in NATS.
"""

from __future__ import annotations

__all__: list[str] = []
