"""Where the Parquet snapshots are, and how their columns map onto the `events` view.

The snapshotter (`ledger snapshot`) owns the files; this module only finds and reads
them: `dataset=<name>/part-<first_seq>-<last_seq>.parquet` under one root, every event
with a stream sequence up to `last_seq` in them. Events after `last_seq` come from the
live tail (`projections.tail`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from projections.tail import TAIL_SCHEMA

__all__ = ["SnapshotSet", "find_snapshots"]


@dataclass(frozen=True)
class SnapshotSet:
    """The snapshot files under `root` that cover the ledger up to `last_seq`."""

    root: Path | None = None
    last_seq: int = 0

    def files(self, dataset: str | None = None) -> list[Path]:
        """The Parquet parts of `dataset` (or of every dataset), in sequence order."""
        if self.root is None or self.last_seq <= 0:
            return []
        pattern = f"dataset={dataset or '*'}/part-*.parquet"
        return sorted(self.root.glob(pattern), key=_first_seq)

    def select_columns(self, columns: Iterable[str]) -> str:
        """A SELECT list giving the snapshot files the columns (and types) of the tail."""
        files = self.files()
        present = set(pq.read_schema(files[0]).names) if files else set()
        parts = []
        for name in columns:
            arrow_type = TAIL_SCHEMA.field(name).type
            if name in present:
                parts.append(name)
            else:
                parts.append(f"CAST(NULL AS {_duck_type(str(arrow_type))}) AS {name}")
        return ", ".join(parts)


def _duck_type(arrow_type: str) -> str:
    simple = {"int64": "BIGINT", "int32": "INTEGER", "string": "VARCHAR"}
    if arrow_type in simple:
        return simple[arrow_type]
    if arrow_type == "list<item: string>":
        return "VARCHAR[]"
    return 'STRUCT(start BIGINT, "end" BIGINT, label VARCHAR, token_start BIGINT, token_end BIGINT)[]'


def _first_seq(path: Path) -> int:
    try:
        return int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return 0


def find_snapshots(root: Path | None = None) -> SnapshotSet:
    """The finished snapshots under `root`, as far as the snapshotter says it got.

    Only the snapshotter knows the last sequence it has written for *every* dataset (a
    file name gives one dataset's range, and guessing from the newest file could skip
    another dataset's unflushed events). Until it records that position, this returns
    no snapshots and the projections read the whole ledger from JetStream — correct,
    only slower; pass `SnapshotSet(root, last_seq)` where the position is known.
    """
    del root
    return SnapshotSet()
