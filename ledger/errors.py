"""The root of Quorum's error hierarchy and the ledger's own errors.

Every error Quorum raises on purpose derives from `QuorumError`; its message says
what is wrong and how to fix it. Driver errors (nats, DuckDB, spaCy) are translated
into these at the edge of the package that talks to the driver.
"""

from __future__ import annotations

__all__ = [
    "InvalidName",
    "LedgerError",
    "LedgerUnavailable",
    "QuorumError",
    "UnknownDataset",
    "UnknownEventVersion",
]


class QuorumError(Exception):
    """Base of every error Quorum raises deliberately; the message is for people."""

    exit_code = 1
    """What the `quorum` command exits with: 1, or 2 for a usage error (a bad recipe file)."""


class LedgerError(QuorumError):
    """Something went wrong reading or writing the JetStream ledger."""


class LedgerUnavailable(LedgerError):
    """NATS could not be reached, or JetStream is not enabled on it."""


class InvalidName(QuorumError, ValueError):
    """A dataset or session name that cannot become a NATS subject token."""


class UnknownDataset(LedgerError):
    """A command named a dataset the ledger has never seen."""


class UnknownEventVersion(LedgerError):
    """An event carries a schema version this Quorum cannot read or upcast."""
