"""Writing snapshot files from several processes at once, one ledger range each.

A big `ledger snapshot` or full `ledger replay` is CPU-bound in Python (decoding
messages, building Arrow columns), so it splits the sequence range it has to cover
into contiguous slices and gives each to a worker process. Every worker reads its
slice through its own consumer and writes finished, checksummed files, but never
touches the manifest: the parent lists all the files in one manifest commit once
every worker is done, so readers see the old snapshots or the complete new ones.

A worker dies with its parent (`PR_SET_PDEATHSIG`), so a killed snapshotter leaves at
most unlisted files, which the next run removes as orphans. It runs with the cyclic
garbage collector paused between files: the rows it buffers are millions of tuples
without cycles, and collecting over them took half of the time spent building them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from ledger.columns import message_rows
from ledger.connection import connect
from ledger.processes import die_with_parent
from ledger.projectable import Skips, load_quarantine
from ledger.snapshot_parts import LedgerReader, PartCommitter, SnapshotOptions
from ledger.snapshot_store import Manifest, PartFile, SnapshotStore

__all__ = ["RangeResult", "available_cpus", "split_range", "write_ranges"]

_progress: Synchronized[int] | None = None


@dataclass(frozen=True)
class _Slice:
    url: str
    location: str
    first_seq: int
    last_seq: int
    options: SnapshotOptions


@dataclass(frozen=True)
class RangeResult:
    """What one worker wrote: finished files (not yet in any manifest) and counts."""

    files: list[PartFile]
    messages: int
    events: int
    missing: int
    """Sequence numbers in the slice that the stream no longer holds."""


def available_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a
    container's CPU limit), so a pod limited to one CPU on a 64-core node starts one
    worker, not 64 that each buffer a file's rows."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return cpus


def split_range(first_seq: int, last_seq: int, workers: int) -> list[tuple[int, int]]:
    """`workers` contiguous, nearly equal slices of `first_seq..last_seq` (inclusive)."""
    total = last_seq - first_seq + 1
    workers = max(1, min(workers, total))
    bounds = [first_seq + total * i // workers for i in range(workers + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(workers)]


def _init_worker(progress: Synchronized[int]) -> None:
    global _progress
    _progress = progress
    die_with_parent(signal.SIGKILL)  # not Linux: an orphan finishes its slice
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl+C means
    gc.disable()  # collected by hand after each file (see the module docstring)


def _write_slice(job: _Slice) -> RangeResult:
    return asyncio.run(_write_slice_async(job))


async def _write_slice_async(job: _Slice) -> RangeResult:
    options = job.options
    store = SnapshotStore(job.location)
    nc = await connect(job.url)
    try:
        # Missing messages are counted here and judged by the parent, which knows the budget.
        reader = LedgerReader(nc, start_seq=job.first_seq, allowed_missing=1 << 62, batch=options.fetch_batch)
        committer = PartCommitter(store, Manifest(ledger_id=""), options)
        skips = Skips(await load_quarantine(nc))  # what can't be projected gets no row
        messages = events = 0
        try:
            async for item in reader.messages(follow=False, idle=1.0):
                assert item is not None  # not following: every item is a message
                seq, data = item
                if seq > job.last_seq:
                    break
                rows = message_rows(seq, data, skips)
                committer.add(rows)
                committer.last_seq = seq
                messages += 1
                events += len(rows)
                if _progress is not None and messages % 256 == 0:
                    with _progress.get_lock():
                        _progress.value += 256
                if committer.uncommitted >= options.file_rows:
                    committer.roll()
                    gc.collect()
                if seq == job.last_seq or reader.pending == 0:
                    break
            committer.roll()
        except BaseException:
            committer.abort()
            raise
        missing = job.last_seq - job.first_seq + 1 - messages
        return RangeResult(committer.pending, messages, events, missing)
    finally:
        await nc.close()


async def write_ranges(
    url: str,
    store: SnapshotStore,
    first_seq: int,
    last_seq: int,
    *,
    workers: int,
    options: SnapshotOptions,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[RangeResult]:
    """Write `first_seq..last_seq` with `workers` processes; the caller commits the files.

    On any failure every file the workers finished is removed before the error is
    raised, so nothing half-written is left for a manifest to list.
    """
    slices = [
        _Slice(url, store.location, first, last, options)
        for first, last in split_range(first_seq, last_seq, workers)
    ]
    total = last_seq - first_seq + 1
    context = multiprocessing.get_context("spawn")  # no forked copy of this event loop
    progress = context.Value("q", 0)
    pool = ProcessPoolExecutor(
        len(slices), mp_context=context, initializer=_init_worker, initargs=(progress,)
    )
    with pool:
        futures = [asyncio.wrap_future(pool.submit(_write_slice, job)) for job in slices]
        try:
            pending = set(futures)
            while pending:
                _, pending = await asyncio.wait(pending, timeout=0.25)
                if on_progress is not None:
                    done = min(progress.value, total)
                    on_progress(done, total - done)
            results = [future.result() for future in futures]
        except BaseException:
            _stop(pool)
            for future in futures:
                if future.done() and not future.cancelled() and future.exception() is None:
                    store.remove([f.path for f in future.result().files])
            raise
    if on_progress is not None:
        on_progress(total, 0)
    return results


def _stop(pool: ProcessPoolExecutor) -> None:
    """Kill the workers now rather than waiting for their slices to finish."""
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
    pool.shutdown(wait=False, cancel_futures=True)
