"""The live tail: ledger events newer than the last Parquet snapshot, as Arrow rows.

Projections read the snapshots plus this tail, so an answer shows the moment JetStream
acknowledged it. The tail is written in chunks to a Parquet file in a scratch
directory, so reading a long tail (no snapshotter running yet) keeps memory flat.

This module only reads the ledger; it never writes to NATS or to the snapshot dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
from nats.aio.client import Client

from ledger.columns import EVENT_SCHEMA, ColumnBuffer, message_rows
from ledger.columns import entry_rows as _message_rows
from ledger.projectable import Skips, load_quarantine
from ledger.store import Ledger, LedgerEntry

__all__ = ["TAIL_SCHEMA", "TailFile", "entry_rows", "read_tail"]

# The tail has the columns of the snapshot files (ledger/columns.py, docs/ledger.md).
TAIL_SCHEMA = EVENT_SCHEMA


def entry_rows(entry: LedgerEntry) -> list[dict[str, Any]]:
    """The rows of one ledger message, in the order of its events."""
    return _message_rows(entry.seq, entry.events)


class TailFile(msgspec.Struct):
    """The tail as read: its Parquet file, how many events, and the last sequence read."""

    path: Path
    rows: int
    after_seq: int
    last_seq: int


async def read_tail(
    nc: Client,
    path: Path,
    *,
    dataset: str | None = None,
    after_seq: int = 0,
    to_seq: int | None = None,
    chunk: int = 20_000,
) -> TailFile:
    """Write every event with sequence > `after_seq` (of `dataset`, or all) to `path`.

    The file always exists, with zero rows when the tail is empty, so views over it
    need no special case. An event that can't be projected is left out, with a warning
    on stderr unless it was quarantined (`ledger.projectable`).
    """
    skips = Skips(await load_quarantine(nc, dataset))
    buffer = ColumnBuffer()
    count = 0
    last_seq = after_seq
    with pq.ParquetWriter(path, TAIL_SCHEMA, compression="zstd") as writer:
        async for raw in Ledger(nc).read_raw(dataset, start_seq=after_seq + 1, to_seq=to_seq):
            buffer.extend(message_rows(raw.seq, raw.data, skips))
            last_seq = raw.seq
            if buffer.rows >= chunk:
                count += buffer.rows
                writer.write_batch(buffer.take())
        count += buffer.rows
        writer.write_batch(buffer.take())
    return TailFile(path=path, rows=count, after_seq=after_seq, last_seq=last_seq)
