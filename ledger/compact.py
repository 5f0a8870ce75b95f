"""`ledger compact`: purge dropped datasets for good and merge small snapshot files.

1. Snapshot first, so every tombstone (`DatasetDropped`) is in the files.
2. For each dropped dataset, purge its ledger messages *before* its last tombstone
   from the EVENTS stream (the tombstone and anything after it stay, so a replay
   still knows the dataset was dropped). How many go is counted from the snapshot
   files and recorded *before* the purge, so a later replay from the start does not
   mistake them for a history gap, even when compaction is killed mid-purge.
3. Rewrite the snapshot files: a dropped dataset's files keep only the rows from the
   tombstone on; runs of small files (under half of `file_rows`) are merged. The new
   manifest is committed before any old file is deleted.

What remains replays byte-identically: compaction only removes events that the
projections already ignore (everything of a dataset before its last drop).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq
from nats.aio.client import Client

from ledger.errors import LedgerError
from ledger.snapshot_store import Manifest, PartFile, SnapshotStore
from ledger.snapshots import SnapshotOptions, record_purge, snapshot
from ledger.streams import EVENTS_STREAM, ensure_streams, events_subject, ledger_identity

__all__ = ["CompactReport", "compact"]


@dataclass
class CompactReport:
    purged_messages: int = 0
    dropped_datasets: list[str] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def _last_drops(store: SnapshotStore, manifest: Manifest) -> dict[str, int]:
    """The sequence of each dataset's last tombstone, from the snapshot files."""
    drops: dict[str, int] = {}
    for part in manifest.files:
        with store.open_file(part.path) as handle:
            table = pq.read_table(handle, columns=["seq", "kind"], filters=[("kind", "=", "dataset_dropped")])
        if table.num_rows:
            drops[part.dataset] = max(drops.get(part.dataset, 0), pc.max(table.column("seq")).as_py())
    return drops


def _messages_before(store: SnapshotStore, manifest: Manifest, dataset: str, before_seq: int) -> int:
    """How many of `dataset`'s ledger messages below `before_seq` the snapshot files hold."""
    seqs: set[int] = set()
    for part in manifest.dataset_files(dataset):
        if part.first_seq < before_seq:
            with store.open_file(part.path) as handle:
                table = pq.read_table(handle, columns=["seq"], filters=[("seq", "<", before_seq)])
            seqs.update(pc.unique(table.column("seq")).to_pylist())
    return len(seqs)


async def _purge(nc: Client, dataset: str, before_seq: int) -> int:
    """Purge `dataset`'s ledger messages below `before_seq`; return how many went."""
    request = json.dumps({"filter": events_subject(dataset, ">"), "seq": before_seq}).encode()
    reply = json.loads((await nc.request(f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}", request, timeout=30)).data)
    if "error" in reply:
        raise LedgerError(
            f"NATS refused to purge {dataset}: {reply['error'].get('description', reply['error'])}"
        )
    return int(reply.get("purged", 0))


def _plan(files: list[PartFile], small: int, dropped_from: int | None) -> list[list[PartFile]]:
    """Groups of one dataset's files to rewrite together (each group becomes one file)."""
    groups: list[list[PartFile]] = []
    run: list[PartFile] = []
    for part in sorted(files, key=lambda f: f.first_seq):
        if dropped_from is not None and part.first_seq < dropped_from:
            groups.append([part])  # holds purged rows: rewrite it alone, filtered
        elif part.rows < small:
            run.append(part)
            if sum(f.rows for f in run) >= 2 * small:
                groups.append(run)
                run = []
            continue
        if len(run) > 1:
            groups.append(run)
        run = []
    if len(run) > 1:
        groups.append(run)
    return groups


def _rewrite(
    store: SnapshotStore, group: list[PartFile], keep_from: int, row_group_rows: int
) -> PartFile | None:
    """Write the rows of `group` with seq >= `keep_from` as one new file (None if none are left)."""
    writer = store.writer(group[0].dataset, row_group_rows)
    try:
        for part in group:
            with store.open_file(part.path) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=row_group_rows):
                    if keep_from > 0:
                        batch = batch.filter(pc.greater_equal(batch.column("seq"), keep_from))
                    writer.write(batch)
        if writer.rows == 0:
            writer.abort()
            return None
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


async def compact(
    nc: Client,
    store: SnapshotStore,
    options: SnapshotOptions | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> CompactReport:
    """Purge dropped datasets' history and merge small files; see the module docstring."""
    options = options or SnapshotOptions()
    js = nc.jetstream()
    kv = await ensure_streams(js)
    await snapshot(nc, store, options)
    manifest = store.load(await ledger_identity(js))
    report = CompactReport(
        files_before=len(manifest.files), bytes_before=sum(f.bytes for f in manifest.files)
    )
    drops = _last_drops(store, manifest)
    for dataset, seq in sorted(drops.items()):
        held = _messages_before(store, manifest, dataset, seq)
        await record_purge(kv, dataset, seq, held)
        purged = max(held, await _purge(nc, dataset, seq))  # held: a killed run purged them
        if purged:
            await record_purge(kv, dataset, seq, purged)  # no-op unless the files held fewer
            report.purged_messages += purged
            report.dropped_datasets.append(dataset)
    groups = [
        group
        for dataset in manifest.datasets()
        for group in _plan(manifest.dataset_files(dataset), options.file_rows // 2, drops.get(dataset))
    ]
    replaced: list[PartFile] = []
    written: list[PartFile] = []
    for done, group in enumerate(groups, 1):
        new = _rewrite(store, group, drops.get(group[0].dataset, 0), options.row_group_rows)
        replaced.extend(group)
        if new is not None:
            written.append(new)
        if on_progress is not None:
            on_progress(done, len(groups))
    new_paths = {f.path for f in written}
    kept = [f for f in manifest.files if f not in replaced]
    manifest.files = sorted(kept + written, key=lambda f: (f.dataset, f.first_seq))
    store.write_manifest(manifest)
    store.remove([f.path for f in replaced if f.path not in new_paths])
    report.files_after = len(manifest.files)
    report.bytes_after = sum(f.bytes for f in manifest.files)
    return report
