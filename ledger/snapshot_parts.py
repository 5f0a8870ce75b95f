"""Building blocks of the snapshotter, shared with its worker processes.

`LedgerReader` yields raw ledger messages from a sequence on (following, or once to the
stream's end) and notices history gaps; `PartCommitter` buffers their rows per dataset,
writes row groups, and lists finished files in the manifest — the commit point.
`ledger.snapshots` runs them in one process, `ledger.snapshot_workers` in several.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from operator import itemgetter

from nats.aio.client import Client
from nats.aio.msg import Msg

from ledger.columns import DATASET_AT, ColumnBuffer, Row
from ledger.errors import LedgerError
from ledger.pull import pull_all, pull_follow
from ledger.snapshot_store import Manifest, PartFile, PartWriter, SnapshotStore
from ledger.streams import EVENTS_STREAM, events_subject

__all__ = ["HistoryGap", "LedgerReader", "PartCommitter", "SnapshotOptions"]


class HistoryGap(LedgerError):
    """The stream no longer holds events that no snapshot has: history would be partial."""


@dataclass(frozen=True)
class SnapshotOptions:
    """How big files and row groups get, and how often a follower commits."""

    file_rows: int = 1_000_000
    """Commit (finish every open file) after this many events."""
    row_group_rows: int = 100_000
    """Rows per Parquet row group (DuckDB reads 100k–1M-row groups best)."""
    interval: float = 10.0
    """Following: commit buffered events at least this often (seconds)."""
    fetch_batch: int = 1000
    workers: int = 0
    """Processes writing slices of the ledger at once (one-shot runs of the whole ledger);
    0: one per usable CPU (`available_cpus`), up to 8, once each gets
    `messages_per_worker` messages."""
    messages_per_worker: int = 50_000


class LedgerReader:
    """Ledger messages from `start_seq` on, through a pull consumer; None when idle.

    Reads go through `ledger.pull` (`pull_all` once to the end, `pull_follow` when
    following): several times faster than nats.py's `fetch` on a long ledger, and
    bounded in bytes, so messages of any size never make the reader a slow consumer.
    """

    def __init__(
        self,
        nc: Client,
        *,
        start_seq: int,
        dataset: str | None = None,
        durable: str | None = None,
        allowed_missing: int = 0,
        batch: int = 1000,
    ) -> None:
        self.nc = nc
        self.start_seq = start_seq
        self.subject = events_subject(dataset, ">") if dataset else "quorum.events.>"
        self.whole_stream = dataset is None
        self.durable = durable
        self.allowed_missing = allowed_missing
        self.batch = batch
        self.pending = 0
        self.missing = 0
        self._expected = start_seq

    def _check_gap(self, seq: int) -> None:
        if self.whole_stream and seq > self._expected:
            self.missing += seq - self._expected
            if self.missing > self.allowed_missing:
                raise HistoryGap(
                    f"history gap: ledger messages {self._expected:,}–{seq - 1:,} are gone from the "
                    f"stream and in no snapshot. Nothing past sequence {self._expected - 1:,} was "
                    f"committed. If an archive from `ledger export` holds them, restore it on a fresh "
                    f"NATS server with `ledger replay --from ARCHIVE`"
                )
        self._expected = seq + 1

    async def messages(self, *, follow: bool, idle: float) -> AsyncIterator[tuple[int, bytes] | None]:
        """(sequence, message bytes) in stream order; following, None when idle for `idle` s.

        Both ways read through `ledger.pull`, bounded in bytes whatever the messages' size.
        """
        source: AsyncGenerator[Msg | None, None]
        if follow:
            source = pull_follow(
                self.nc,
                EVENTS_STREAM,
                self.subject,
                self.start_seq,
                durable=self.durable,
                idle=idle,
                batch=self.batch,
            )
        else:
            source = pull_all(self.nc, EVENTS_STREAM, self.subject, self.start_seq, self.batch)
        async with contextlib.aclosing(source):
            async for msg in source:
                if msg is None:
                    yield None
                    continue
                meta = msg.metadata
                seq = meta.sequence.stream
                self._check_gap(seq)
                self.pending = meta.num_pending
                yield seq, msg.data


class PartCommitter:
    """Rows buffered per dataset, written as row groups, committed to the manifest."""

    def __init__(self, store: SnapshotStore, manifest: Manifest, options: SnapshotOptions) -> None:
        self.store = store
        self.manifest = manifest
        self.options = options
        self.buffers: dict[str, ColumnBuffer] = {}
        self.writers: dict[str, PartWriter] = {}
        self.uncommitted = 0
        self.last_seq = manifest.through_seq
        self.written: list[PartFile] = []
        self.pending: list[PartFile] = []

    def add(self, rows: list[Row]) -> None:
        """Buffer the rows of one ledger message (all of one dataset, as appended)."""
        for dataset, group in itertools.groupby(rows, key=itemgetter(DATASET_AT)):
            buffer = self.buffers.setdefault(dataset, ColumnBuffer())
            batch = list(group)
            buffer.extend(batch)
            if buffer.rows >= self.options.row_group_rows:
                self._flush(dataset)
            self.uncommitted += len(batch)

    def _flush(self, dataset: str) -> None:
        buffer = self.buffers[dataset]
        if buffer.rows == 0:
            return
        writer = self.writers.get(dataset)
        if writer is None:
            writer = self.writers[dataset] = self.store.writer(dataset, self.options.row_group_rows)
        writer.write(buffer.take())

    def roll(self) -> None:
        """Finish every open file; the files wait in `pending` for the next commit."""
        try:
            for dataset in list(self.buffers):
                self._flush(dataset)
            self.pending.extend(writer.finish() for writer in self.writers.values() if writer.rows)
        except BaseException:
            self.abort()
            raise
        self.writers.clear()
        self.buffers.clear()
        self.uncommitted = 0

    def commit(self, replace: set[str] | None = None) -> list[PartFile]:
        """Finish every open file and list it, with any pending, in a new manifest.

        `replace` names datasets whose earlier files the new ones supersede (replay of
        one dataset); their old files are deleted once the new manifest is in place.
        """
        self.roll()
        finished, self.pending = self.pending, []
        new_paths = {f.path for f in finished}
        kept = [
            f
            for f in self.manifest.files
            if f.path not in new_paths and (replace is None or f.dataset not in replace)
        ]
        superseded = [f.path for f in self.manifest.files if f.path not in new_paths and f not in kept]
        self.manifest.files = sorted(kept + finished, key=lambda f: (f.dataset, f.first_seq))
        self.manifest.through_seq = max(self.manifest.through_seq, self.last_seq)
        self.store.write_manifest(self.manifest)
        self.store.remove(superseded)
        self.written.extend(finished)
        return finished

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        self.writers.clear()
        self.buffers.clear()
        self.store.remove([f.path for f in self.pending])
        self.pending = []
