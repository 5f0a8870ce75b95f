"""Quorum's ledger: the event model, hashing, JetStream streams, append and read.

The ledger is the source of truth. Everything else in Quorum — datasets, counts,
agreement — is a projection that can be rebuilt from it. This package never holds
state of its own outside NATS.
"""

from __future__ import annotations

from ledger.errors import (
    InvalidName,
    LedgerError,
    LedgerUnavailable,
    QuorumError,
    UnknownDataset,
    UnknownEventVersion,
)
from ledger.hashing import get_input_hash, get_task_hash, set_hashes

__all__ = [
    "InvalidName",
    "LedgerError",
    "LedgerUnavailable",
    "QuorumError",
    "UnknownDataset",
    "UnknownEventVersion",
    "get_input_hash",
    "get_task_hash",
    "set_hashes",
]
