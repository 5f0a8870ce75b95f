"""Building blocks of the snapshotter, shared with its worker processes.

`LedgerReader` yields raw ledger messages from a sequence on (following, or once to the
stream's end) and notices history gaps; `PartCommitter` buffers their rows per dataset,
writes row groups, and lists finished files in the manifest — the commit point.
`ledger.snapshots` runs them in one process, `ledger.snapshot_workers` in several.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from operator import itemgetter

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ledger.columns import DATASET_AT, ColumnBuffer, Row
from ledger.errors import LedgerError
from ledger.pull import pull_all
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

    A one-shot read (`follow=False`) goes through `ledger.pull.pull_all`, several
    times faster than nats.py's `fetch` on a long ledger.
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
        self.js = nc.jetstream()
        self.start_seq = start_seq
        self.subject = events_subject(dataset, ">") if dataset else "quorum.events.>"
        self.whole_stream = dataset is None
        self.durable = durable
        self.allowed_missing = allowed_missing
        self.batch = batch
        self.pending = 0
        self.missing = 0
        self._expected = start_seq

    async def _subscribe(self) -> tuple[object, str]:
        if self.durable:
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(EVENTS_STREAM, self.durable)
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(self.start_seq, 1),
            filter_subject=self.subject,
            inactive_threshold=None if self.durable else 60.0,
            mem_storage=not self.durable,
        )
        psub = await self.js.pull_subscribe(
            self.subject, durable=self.durable, stream=EVENTS_STREAM, config=config
        )
        info = await psub.consumer_info()
        self.pending = info.num_pending or 0
        return psub, info.name

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
        if not follow:
            async for item in self._drain():
                yield item
            return
        # Following: a pull consumer that waits `idle` seconds for news, then yields None.
        psub, name = await self._subscribe()
        try:
            while True:
                try:
                    msgs = await psub.fetch(self.batch, timeout=idle)  # type: ignore[attr-defined]
                except NatsTimeoutError:
                    yield None
                    continue
                for msg in msgs:
                    meta = msg.metadata
                    seq = meta.sequence.stream
                    self._check_gap(seq)
                    self.pending = meta.num_pending
                    yield seq, msg.data
        finally:
            try:
                await psub.unsubscribe()  # type: ignore[attr-defined]
                if not self.durable:
                    await self.js.delete_consumer(EVENTS_STREAM, name)
            except Exception:
                pass  # an ephemeral consumer expires by itself (inactive_threshold)

    async def _drain(self) -> AsyncIterator[tuple[int, bytes]]:
        """Every message up to the stream's end at the start, in order, then stop."""
        async for msg in pull_all(self.nc, EVENTS_STREAM, self.subject, self.start_seq, self.batch):
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
