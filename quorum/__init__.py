"""Quorum's composition root: settings, CLI wiring, logging and the embedded NATS server.

Domain code lives in `ledger/`, `feed/`, `projections/` and `recipes/`; this package
only connects them.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
