"""The snapshotter: the EVENTS stream written out as zstd Parquet, restartably.

`snapshot` reads the ledger from just after the manifest's `through_seq` with a durable
pull consumer, buffers rows per dataset into row groups, and commits: every open part
is finished (renamed into place) and a new manifest lists them with the new
`through_seq`. It commits every `file_rows` events, at the end of a one-shot run, and
every `interval` seconds while following. Killed at any point, the next run starts
from the last manifest and removes whatever the killed run left unlisted, so there is
never a duplicate or a gap.

`replay` rebuilds snapshots from the stream (all of them, or one dataset's), and writes
time-travel cuts (`to_seq`, `until_ms`) to a separate root. A history gap — events the
stream no longer holds that no snapshot has — is an error, never a silent partial
replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from ledger.columns import RECORDED_AT, Row, message_rows
from ledger.errors import LedgerError
from ledger.projectable import Skips, load_quarantine
from ledger.snapshot_parts import HistoryGap, LedgerReader, PartCommitter, SnapshotOptions
from ledger.snapshot_status import StatusReporter, check_no_follower
from ledger.snapshot_store import Cut, Manifest, PartFile, SnapshotStore
from ledger.snapshot_workers import available_cpus, write_ranges
from ledger.streams import EVENTS_STREAM, ensure_streams, ledger_identity

__all__ = [
    "SNAPSHOTTER",
    "HistoryGap",
    "SnapshotOptions",
    "SnapshotReport",
    "check_history",
    "purged_messages",
    "record_purge",
    "replay",
    "snapshot",
]

SNAPSHOTTER = "quorum-snapshotter"
_PURGED_KEY = "ledger.purged"
Progress = Callable[[int, int], None]


@dataclass
class SnapshotReport:
    """What a snapshot or replay run did."""

    messages: int = 0
    events: int = 0
    files: list[PartFile] = field(default_factory=list)
    through_seq: int = 0
    seconds: float = 0.0
    orphans_removed: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


class _Purged(msgspec.Struct):
    messages: int = 0
    """Purges recorded as a bare total (before `purges` existed)."""
    purges: dict[str, int] = msgspec.field(default_factory=dict)
    """Messages per purge, keyed `<dataset>@<tombstone seq>`."""


async def _read_purged(kv: KeyValue) -> _Purged:
    try:
        entry = await kv.get(_PURGED_KEY)
    except Exception:  # KeyNotFoundError: nothing was ever purged
        return _Purged()
    return msgspec.json.decode(entry.value or b"{}", type=_Purged)


async def purged_messages(kv: KeyValue) -> int:
    """How many ledger messages `ledger compact` purged (dropped datasets), ever."""
    purged = await _read_purged(kv)
    return purged.messages + sum(purged.purges.values())


async def record_purge(kv: KeyValue, dataset: str, before_seq: int, count: int) -> None:
    """Record, *before* purging, that `count` of `dataset`'s messages below `before_seq` go.

    Keyed by the purge and never lowered, so a compaction killed mid-purge and run
    again neither leaves the purge unaccounted (a false history gap) nor counts it twice.
    """
    purged = await _read_purged(kv)
    key = f"{dataset}@{before_seq}"
    if count > purged.purges.get(key, 0):
        purged.purges[key] = count
        await kv.put(_PURGED_KEY, msgspec.json.encode(purged))


async def check_history(js: JetStreamContext, kv: KeyValue, after_seq: int) -> None:
    """Raise `HistoryGap` if messages after `after_seq` are gone from the stream.

    Messages removed by `ledger compact` (dropped datasets) are accounted for: they are
    only ever purged below a snapshotted tombstone, so they can be missing only when
    reading from the very start.
    """
    state = (await js.stream_info(EVENTS_STREAM)).state
    if state.last_seq <= after_seq:
        return
    if after_seq == 0 and state.last_seq - state.messages <= await purged_messages(kv):
        return
    if after_seq > 0 and state.first_seq <= after_seq + 1:
        return  # deletions inside the range are caught while reading (`LedgerReader`)
    raise HistoryGap(
        f"history gap: the ledger stream starts at sequence {state.first_seq:,}, but events from "
        f"{after_seq + 1:,} on are in no snapshot (the stream was purged or limited). Nothing was "
        f"written. If an archive from `ledger export` holds those events, restore it on a fresh "
        f"NATS server (`NATS_URL=... ledger replay --from ARCHIVE` imports it and rebuilds the "
        f"snapshots)"
    )


def _keep(rows: list[Row], cut: Cut | None) -> list[Row]:
    if cut is None or cut.until_ms is None:
        return rows
    until = cut.until_ms
    return [row for row in rows if row[RECORDED_AT] <= until]


async def _run(
    nc: Client,
    store: SnapshotStore,
    manifest: Manifest,
    options: SnapshotOptions,
    *,
    dataset: str | None = None,
    durable: str | None = None,
    follow: bool = False,
    to_seq: int | None = None,
    cut: Cut | None = None,
    replace: set[str] | None = None,
    on_progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    reporter: StatusReporter | None = None,
) -> SnapshotReport:
    js = nc.jetstream()
    kv = await ensure_streams(js)
    start = time.perf_counter()
    after = manifest.through_seq if replace is None else 0
    if dataset is None:
        await check_history(js, kv, after)
    allowed = await purged_messages(kv) if after == 0 else 0
    last_seq = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    workers = _worker_count(options, last_seq - after)
    one_shot = dataset is None and not follow and to_seq is None and cut is None
    if one_shot and workers > 1 and last_seq - after >= workers:
        return await _run_parallel(
            nc, store, manifest, options, after, last_seq, workers, allowed, on_progress
        )
    skips = Skips(await load_quarantine(nc, dataset))  # what can't be projected gets no row
    reader = LedgerReader(
        nc,
        start_seq=after + 1,
        dataset=dataset,
        durable=durable,
        allowed_missing=allowed,
        batch=options.fetch_batch,
    )
    committer = PartCommitter(store, manifest, options)
    report = SnapshotReport(through_seq=manifest.through_seq)
    last_commit = time.monotonic()
    try:
        async for item in reader.messages(follow=follow, idle=min(1.0, options.interval)):
            if item is not None:
                seq, data = item
                if to_seq is not None and seq > to_seq:
                    break
                rows = _keep(message_rows(seq, data, skips), cut)
                committer.add(rows)
                committer.last_seq = seq
                report.messages += 1
                report.events += len(rows)
                if on_progress is not None:
                    on_progress(report.messages, reader.pending)
            due = follow and time.monotonic() - last_commit >= options.interval
            if replace is not None and committer.uncommitted >= options.file_rows:
                committer.roll()  # one dataset's files are swapped in a single commit at the end
            elif committer.uncommitted >= options.file_rows or (due and committer.uncommitted):
                committer.commit(replace)
                last_commit = time.monotonic()
                if reporter is not None:
                    await reporter.ok(manifest.through_seq)
            elif due:
                last_commit = time.monotonic()
            if item is None and reporter is not None:
                await reporter.idle()
            if stop is not None and stop.is_set():
                break
            if not follow and reader.pending == 0 and item is not None:
                break
    except BaseException:
        committer.abort()
        raise
    if to_seq is not None:
        committer.last_seq = max(
            committer.last_seq, min(to_seq, (await js.stream_info(EVENTS_STREAM)).state.last_seq)
        )
    committer.commit(replace)
    report.files = committer.written
    report.through_seq = manifest.through_seq
    report.seconds = time.perf_counter() - start
    return report


def _worker_count(options: SnapshotOptions, messages: int) -> int:
    if options.workers:
        return options.workers
    cores = min(available_cpus(), 8)
    return max(1, min(cores, messages // options.messages_per_worker))


async def _run_parallel(
    nc: Client,
    store: SnapshotStore,
    manifest: Manifest,
    options: SnapshotOptions,
    after: int,
    last_seq: int,
    workers: int,
    allowed_missing: int,
    on_progress: Progress | None,
) -> SnapshotReport:
    """`_run` for a one-shot run over the whole ledger, in `workers` processes."""
    start = time.perf_counter()
    url = nc.connected_url.geturl() if nc.connected_url else ""
    results = await write_ranges(
        url,
        store,
        after + 1,
        last_seq,
        workers=workers,
        options=options,
        on_progress=on_progress,
    )
    files = [part for result in results for part in result.files]
    missing = sum(result.missing for result in results)
    if missing > allowed_missing:
        store.remove([f.path for f in files])
        raise HistoryGap(
            f"history gap: {missing - allowed_missing:,} ledger messages after sequence {after:,} are "
            f"gone from the stream and in no snapshot. Nothing was committed"
        )
    committer = PartCommitter(store, manifest, options)
    committer.pending.extend(files)
    committer.last_seq = last_seq
    committer.commit()
    return SnapshotReport(
        messages=sum(result.messages for result in results),
        events=sum(result.events for result in results),
        files=files,
        through_seq=manifest.through_seq,
        seconds=time.perf_counter() - start,
    )


async def snapshot(
    nc: Client,
    store: SnapshotStore,
    options: SnapshotOptions | None = None,
    *,
    follow: bool = False,
    on_progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> SnapshotReport:
    """Write every ledger event not yet snapshotted to Parquet; keep going if `follow`."""
    js = nc.jetstream()
    kv = await ensure_streams(js)
    if not follow:
        await check_no_follower(kv, store.location)  # a follower is the root's one writer
    manifest = store.load(await ledger_identity(js))
    if manifest.cut is not None:
        raise LedgerError(
            f"{store.location} is a time-travel snapshot (a cut of the ledger); it is not "
            f"followed. Snapshot into another directory"
        )
    if store.read_manifest() is None:
        store.write_manifest(manifest)  # claim the directory before writing any file
    orphans = store.remove_orphans(manifest)
    options = options or SnapshotOptions()
    reporter = StatusReporter(kv, store.location) if follow else None
    if reporter is not None:
        await reporter.starting()
    try:
        # Everything already in the stream goes the one-shot way (fast, in worker processes
        # when far behind), so a follower restarted after downtime catches up quickly; a
        # stop meanwhile commits what was read (in-process; worker processes finish first).
        report = await _run(nc, store, manifest, options, on_progress=on_progress, stop=stop)
        if reporter is not None and not (stop is not None and stop.is_set()):
            await reporter.ok(report.through_seq)
            followed = await _run(
                nc, store, manifest, options, durable=SNAPSHOTTER, follow=True, stop=stop, reporter=reporter
            )
            report.messages += followed.messages
            report.events += followed.events
            report.files += followed.files
            report.through_seq = followed.through_seq
            report.seconds += followed.seconds
    except Exception as exc:
        if reporter is not None:
            await reporter.failing(str(exc))  # for /health: serving goes on, reads replay the stream
        raise
    if reporter is not None:
        await reporter.stopped(report.through_seq)
    report.orphans_removed = orphans
    return report


async def replay(
    nc: Client,
    store: SnapshotStore,
    options: SnapshotOptions | None = None,
    *,
    dataset: str | None = None,
    to_seq: int | None = None,
    until_ms: int | None = None,
    on_progress: Progress | None = None,
) -> SnapshotReport:
    """Rebuild snapshots from the stream.

    Without a cut, rebuilds `store` in place: one dataset's files (`dataset`), or all
    of them (the manifest is reset first, so readers fall back to the stream while the
    files are rewritten). With `to_seq` / `until_ms`, writes the ledger as it was then
    into `store`, which must be empty: a time-travel snapshot, read without the tail.
    """
    js = nc.jetstream()
    await ensure_streams(js)
    identity = await ledger_identity(js)
    options = options or SnapshotOptions()
    if to_seq is not None or until_ms is not None:
        if store.read_manifest() is not None or any(store.part_paths()):
            raise LedgerError(
                f"{store.location} is not empty: a time-travel replay writes a new snapshot "
                f"directory (pass --out with a new path)"
            )
        cut = Cut(to_seq=to_seq, until_ms=until_ms)
        manifest = Manifest(ledger_id=identity, cut=cut)
        store.write_manifest(manifest)
        return await _run(
            nc, store, manifest, options, dataset=dataset, to_seq=to_seq, cut=cut, on_progress=on_progress
        )
    manifest = store.load(identity)
    if manifest.cut is not None:
        raise LedgerError(f"{store.location} is a time-travel snapshot; replay into another directory")
    await check_no_follower(await ensure_streams(js), store.location)  # see `snapshot`
    store.remove_orphans(manifest)
    if dataset is None or manifest.through_seq == 0:
        store.write_manifest(Manifest(ledger_id=identity))
        store.remove([f.path for f in manifest.files])
        return await _run(nc, store, Manifest(ledger_id=identity), options, on_progress=on_progress)
    return await _run(
        nc,
        store,
        manifest,
        options,
        dataset=dataset,
        to_seq=manifest.through_seq,
        replace={dataset},
        on_progress=on_progress,
    )
