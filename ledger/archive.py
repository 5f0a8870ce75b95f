"""`ledger export` / `ledger import`: the whole ledger as a portable Parquet archive.

An archive *is* a snapshot directory (same layout, same manifest, same columns), so
analysts can read it with DuckDB, and `ledger import` can take any snapshot directory
too. Import publishes the archived messages, in their original order and grouping, to
this server's ledger: disaster recovery, or moving a project between clusters.

Import is idempotent: the last archived sequence it published is kept in the config
bucket (`ledger.import.<archive ledger id>`), a re-run carries on from there, and each
message is published with a `Nats-Msg-Id` made of the archive's ledger id and its
sequence there, so even a re-run right after a crash adds nothing twice. The dataset
configurations are restored from the last `DatasetConfigured` event of each dataset
that is not dropped, unless the server already has one.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow.parquet as pq
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ledger.columns import events_from_rows
from ledger.datasets import DatasetInfo, get_dataset, save_dataset
from ledger.errors import LedgerError, UnknownDataset, UnknownEventVersion
from ledger.events import DatasetConfigured, DatasetDropped, Event, encode_batch
from ledger.snapshot_store import PartFile, SnapshotStore
from ledger.snapshots import SnapshotOptions, SnapshotReport, snapshot
from ledger.store import subject_kind
from ledger.streams import EVENTS_STREAM, ensure_streams, events_subject, ledger_identity

__all__ = ["ImportReport", "export_ledger", "import_archive"]

Progress = Callable[[int, int], None]
_WINDOW = 500


@dataclass
class ImportReport:
    messages: int = 0
    events: int = 0
    skipped_messages: int = 0
    datasets_configured: list[str] = field(default_factory=list)
    archive_ledger: str = ""


async def export_ledger(
    nc: Client, target: SnapshotStore, *, on_progress: Progress | None = None
) -> SnapshotReport:
    """Write the whole ledger to `target`, which must be new or empty."""
    if target.read_manifest() is not None or any(target.part_paths()):
        raise LedgerError(f"{target.location} is not empty: an export writes a new archive")
    return await snapshot(nc, target, SnapshotOptions(file_rows=2_000_000), on_progress=on_progress)


def _rows(store: SnapshotStore, part: PartFile, after_seq: int) -> Iterator[dict[str, Any]]:
    try:
        with store.open_file(part.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=20_000):
                for row in batch.to_pylist():
                    if row["seq"] > after_seq:
                        yield row
    except OSError as exc:
        raise LedgerError(
            f"archive file {part.path} is unreadable ({exc}); nothing past it was imported"
        ) from None


def _messages(
    store: SnapshotStore, files: list[PartFile], after_seq: int
) -> Iterator[tuple[int, list[Event]]]:
    """Archived ledger messages in sequence order: (archived seq, events)."""
    by_dataset: dict[str, list[PartFile]] = {}
    for part in sorted(files, key=lambda f: f.first_seq):
        by_dataset.setdefault(part.dataset, []).append(part)

    def dataset_rows(parts: list[PartFile]) -> Iterator[dict[str, Any]]:
        for part in parts:
            if part.last_seq > after_seq:
                yield from _rows(store, part, after_seq)

    merged = heapq.merge(
        *(dataset_rows(parts) for parts in by_dataset.values()), key=lambda r: (r["seq"], r["position"])
    )
    seq: int | None = None
    group: list[dict[str, Any]] = []
    for row in merged:
        if row["seq"] != seq and group:
            yield seq, events_from_rows(group)  # type: ignore[misc]
            group = []
        seq = row["seq"]
        group.append(row)
    if group:
        yield seq, events_from_rows(group)  # type: ignore[misc]


class _Marker(msgspec.Struct):
    seq: int = 0


async def _marker(kv: KeyValue, key: str) -> int:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return 0
    return msgspec.json.decode(entry.value or b"{}", type=_Marker).seq


async def import_archive(
    nc: Client, source: SnapshotStore, *, on_progress: Progress | None = None
) -> ImportReport:
    """Publish the archive's events into this ledger; see the module docstring."""
    manifest = source.read_manifest()
    if manifest is None:
        raise LedgerError(f"{source.location} is not a Quorum archive: it has no _quorum_manifest.json")
    js = nc.jetstream()
    kv = await ensure_streams(js)
    if manifest.ledger_id == await ledger_identity(js):
        raise LedgerError(f"{source.location} was exported from this very ledger: nothing to import")
    key = f"ledger.import.{manifest.ledger_id}"
    done = await _marker(kv, key)
    report = ImportReport(archive_ledger=manifest.ledger_id)
    last: dict[str, Event] = {}
    pending: list[Any] = []
    total = manifest.through_seq
    try:
        for seq, events in _messages(source, manifest.files, 0):
            for event in events:
                if isinstance(event, DatasetConfigured | DatasetDropped):
                    last[event.dataset] = event
            if seq <= done:
                report.skipped_messages += 1
                continue
            pending.append(_publish(js, events, f"imp-{manifest.ledger_id}-{seq}"))
            report.messages += 1
            report.events += len(events)
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending = []
                await kv.put(key, msgspec.json.encode(_Marker(seq)))
            if on_progress is not None:
                on_progress(seq, total)
        await asyncio.gather(*pending)
    except (KeyError, msgspec.ValidationError) as exc:
        raise UnknownEventVersion(
            f"the archive holds an event this Quorum cannot rebuild ({exc}); upgrade Quorum to import it. "
            f"Everything before it was imported; a re-run carries on from there"
        ) from None
    await kv.put(key, msgspec.json.encode(_Marker(max(done, total))))
    for dataset, event in sorted(last.items()):
        if isinstance(event, DatasetConfigured) and await _restore_config(kv, event):
            report.datasets_configured.append(dataset)
    return report


async def _publish(js: Any, events: list[Event], msg_id: str) -> None:
    # The archive message's own ledger and sequence: an equal id is provably the same
    # message, so a re-run right after a crash adds nothing (while two equal batches
    # the archive holds at different places, e.g. accept, reject, accept, both land).
    first = events[0]
    await js.publish(
        events_subject(first.dataset, subject_kind(first)),
        encode_batch(events),
        stream=EVENTS_STREAM,
        headers={"Nats-Msg-Id": msg_id},
        timeout=30,
    )


async def _restore_config(kv: KeyValue, event: DatasetConfigured) -> bool:
    """Save the dataset's configuration from its config event, unless one exists."""
    try:
        await get_dataset(kv, event.dataset)
        return False
    except UnknownDataset:
        pass
    config = dict(event.config)
    routing = config.pop("routing", {}) or {}
    known = set(DatasetInfo.__struct_fields__)
    info = DatasetInfo(
        dataset=event.dataset,
        recipe=event.recipe,
        view_id=event.view_id,
        config=config,
        **{k: v for k, v in routing.items() if k in known},
    )
    await save_dataset(kv, info)
    return True
