"""Which Parquet snapshots the projections read, and how their columns map onto `events`.

The snapshotter (`ledger snapshot`, `ledger/snapshots.py`) owns the files and their
manifest; this module only reads the manifest: the files it lists hold every event up
to `through_seq`, and events after that come from the live tail (`projections.tail`).
A time-travel snapshot (`ledger replay --to-seq/--until --out DIR`) is read alone,
without the tail: it is the ledger as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from nats.aio.client import Client

from ledger.errors import LedgerError
from ledger.snapshot_store import PartFile, SnapshotStore
from ledger.snapshots import check_history
from ledger.streams import ensure_streams, ledger_identity
from projections.tail import TAIL_SCHEMA

__all__ = ["SnapshotSet", "SnapshotUnreadable", "load_snapshots", "repair_hint"]


class SnapshotUnreadable(LedgerError):
    """A file the snapshot manifest lists is missing, truncated or not Parquet."""

    def __init__(self, location: str, part: PartFile, problem: str) -> None:
        super().__init__(
            f"snapshot file {part.path} in {location} is {problem}: {_repair(location, part.dataset)}"
        )


@dataclass(frozen=True)
class SnapshotSet:
    """Snapshot files that together hold every event up to `last_seq`.

    Built from a manifest by `load_snapshots` (`paths` per dataset), or by hand from a
    directory in the snapshot layout (`root`), whose parts are then found by name.
    """

    root: Path | None = None
    last_seq: int = 0
    paths: dict[str, list[str]] | None = None
    frozen: bool = False
    """A time-travel cut: read without the live tail."""
    location: str = ""

    def files(self, dataset: str | None = None) -> list[str]:
        """The Parquet parts of `dataset` (or of every dataset), in sequence order."""
        if self.paths is not None:
            if dataset is not None:
                return list(self.paths.get(dataset, []))
            return [path for name in sorted(self.paths) for path in self.paths[name]]
        if self.root is None or self.last_seq <= 0:
            return []
        pattern = f"dataset={dataset or '*'}/part-*.parquet"
        return [str(p) for p in sorted(self.root.glob(pattern), key=_first_seq)]

    def select_columns(self, columns: Iterable[str]) -> str:
        """A SELECT list giving the snapshot files the columns (and types) of the tail."""
        files = self.files()
        local = files and "://" not in files[0]
        present = set(pq.read_schema(files[0]).names) if local else set(TAIL_SCHEMA.names)
        parts = []
        for name in columns:
            arrow_type = TAIL_SCHEMA.field(name).type
            if name in present:
                parts.append(name)
            else:
                parts.append(f"CAST(NULL AS {_duck_type(str(arrow_type))}) AS {name}")
        return ", ".join(parts)


def repair_hint(snapshots: SnapshotSet) -> str:
    """What to run when a read fails and snapshot files were part of the query."""
    if not snapshots.files():
        return ""
    return f". If a snapshot file is damaged, {_repair(snapshots.location, 'NAME')}"


def _repair(location: str, dataset: str) -> str:
    where = f" --snapshot-dir {location}" if location else ""
    return (
        f"`ledger verify{where}` names damaged files and `ledger replay --dataset {dataset}{where}` "
        f"rewrites that dataset's files from the ledger"
    )


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


async def load_snapshots(nc: Client, location: str | Path | None) -> SnapshotSet:
    """The committed snapshots at `location` for the ledger behind `nc`.

    No location, or one without a manifest yet: no snapshots, the projections read the
    whole ledger from the stream. Raises `ForeignSnapshots` for another ledger's
    directory and `HistoryGap` when the stream lost events the snapshots don't have.
    """
    js = nc.jetstream()
    kv = await ensure_streams(js)
    store = SnapshotStore(location) if location is not None else None
    manifest = store.read_manifest() if store is not None else None
    if store is None or manifest is None:
        await check_history(js, kv, 0)
        return SnapshotSet()
    manifest = store.load(await ledger_identity(js))
    if manifest.cut is None:
        await check_history(js, kv, manifest.through_seq)
    paths: dict[str, list[str]] = {}
    for part, full in zip(manifest.files, store.full_paths(manifest.files), strict=True):
        _check_size(store, part)
        paths.setdefault(part.dataset, []).append(full)
    return SnapshotSet(
        last_seq=manifest.through_seq,
        paths=paths,
        frozen=manifest.cut is not None,
        location=store.location,
    )


def _check_size(store: SnapshotStore, part: PartFile) -> None:
    """Catch missing and truncated files before DuckDB trips over them mid-query."""
    size = store.file_size(part.path)
    if size is None:
        raise SnapshotUnreadable(store.location, part, "missing")
    if size != part.bytes:
        raise SnapshotUnreadable(
            store.location, part, f"{size:,} bytes where the manifest says {part.bytes:,}"
        )
