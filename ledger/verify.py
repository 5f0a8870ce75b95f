"""`ledger verify`: check the snapshots against their manifest and against the stream.

Three layers, cheapest first:

1. every listed file exists, has the recorded size and checksum, and opens as
   Parquet with the recorded row count and sequence range (*corrupt* otherwise);
2. per dataset, file ranges do not overlap (*overlap*), and nothing under the root is
   unlisted (*orphan*: harmless, removed by the next snapshot run);
3. unless `quick`, the stream is read up to `through_seq` and, per dataset, the ledger
   messages in each file's range are compared with the messages in the file, so an
   event the stream has and no file does is a *gap*.

Each problem says what to run to fix it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq
from nats.aio.client import Client

from ledger.errors import LedgerError
from ledger.snapshot_store import PartFile, SnapshotStore
from ledger.store import Ledger
from ledger.streams import EVENTS_STREAM, ensure_streams, ledger_identity

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the snapshots, and the command that fixes it."""

    kind: str  # corrupt | missing | overlap | gap | orphan | behind
    dataset: str | None
    detail: str
    fix: str


@dataclass
class VerifyReport:
    files: int = 0
    rows: int = 0
    through_seq: int = 0
    stream_last_seq: int = 0
    messages_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing needs repair: orphans and a snapshot behind the stream are only notes."""
        return not any(p.kind not in _NOTES for p in self.problems)


_NOTES = {"orphan", "behind"}


def _replay_fix(dataset: str) -> str:
    return f"ledger replay --dataset {dataset}"


def _check_file(store: SnapshotStore, part: PartFile) -> tuple[Problem | None, set[int]]:
    """Check one file; return a problem (or None) and the ledger messages it holds."""
    fix = _replay_fix(part.dataset)
    size = store.file_size(part.path)
    if size is None:
        return Problem("missing", part.dataset, f"{part.path} is listed but gone", fix), set()
    if size != part.bytes or store.checksum(part.path)[1] != part.checksum:
        detail = f"{part.path}: size or checksum differs from the manifest (the file changed or is truncated)"
        return Problem("corrupt", part.dataset, detail, fix), set()
    try:
        with store.open_file(part.path) as handle:
            table = pq.read_table(handle, columns=["seq", "dataset"])
    except Exception as exc:  # pyarrow raises several types for damaged files
        return Problem(
            "corrupt", part.dataset, f"{part.path}: unreadable ({exc})", _replay_fix(part.dataset)
        ), set()
    seqs = table.column("seq")
    wrong = (
        table.num_rows != part.rows
        or (
            table.num_rows
            and (pc.min(seqs).as_py() != part.first_seq or pc.max(seqs).as_py() != part.last_seq)
        )
        or pc.any(pc.not_equal(table.column("dataset"), part.dataset)).as_py()
    )
    if wrong:
        detail = f"{part.path}: rows or sequence range differ from the manifest"
        return Problem("corrupt", part.dataset, detail, fix), set()
    return None, set(pc.unique(seqs).to_pylist())


async def verify(
    nc: Client,
    store: SnapshotStore,
    *,
    quick: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Compare the snapshots at `store` with the ledger; see the module docstring."""
    js = nc.jetstream()
    await ensure_streams(js)
    manifest = store.read_manifest()
    if manifest is None:
        raise LedgerError(f"{store.location} holds no snapshots yet: run `ledger snapshot` first")
    manifest = store.load(await ledger_identity(js))
    state = (await js.stream_info(EVENTS_STREAM)).state
    report = VerifyReport(
        files=len(manifest.files), through_seq=manifest.through_seq, stream_last_seq=state.last_seq
    )
    held: dict[str, set[int]] = {}
    for part in manifest.files:
        problem, seqs = _check_file(store, part)
        report.rows += part.rows
        if problem is not None:
            report.problems.append(problem)
        held.setdefault(part.dataset, set()).update(seqs)
    for dataset in manifest.datasets():
        parts = sorted(manifest.dataset_files(dataset), key=lambda f: f.first_seq)
        for before, after in itertools.pairwise(parts):
            if after.first_seq <= before.last_seq:
                detail = f"{before.path} and {after.path} cover the same ledger messages"
                report.problems.append(Problem("overlap", dataset, detail, _replay_fix(dataset)))
    listed = {f.path for f in manifest.files}
    for path in store.part_paths():
        if path not in listed:
            report.problems.append(
                Problem("orphan", None, f"{path} is not in the manifest", "ledger snapshot")
            )
    if manifest.cut is None and state.last_seq > manifest.through_seq:
        behind = state.last_seq - manifest.through_seq
        detail = f"the ledger is {behind:,} messages past the snapshots (sequence {manifest.through_seq:,})"
        report.problems.append(Problem("behind", None, detail, "ledger snapshot"))
    if not quick:
        await _check_stream(nc, manifest.through_seq, held, report, on_progress)
    return report


async def _check_stream(
    nc: Client,
    through_seq: int,
    held: dict[str, set[int]],
    report: VerifyReport,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Every ledger message up to `through_seq` must be in a file of its dataset."""
    missing: Counter[str] = Counter()
    first_missing: dict[str, int] = {}
    async for raw in Ledger(nc).read_raw(to_seq=through_seq):
        report.messages_checked += 1
        dataset = raw.subject.split(".")[2]
        if raw.seq not in held.get(dataset, ()):
            missing[dataset] += 1
            first_missing.setdefault(dataset, raw.seq)
        if on_progress is not None:
            on_progress(report.messages_checked, through_seq)
    for dataset, count in sorted(missing.items()):
        detail = f"{count:,} ledger messages from sequence {first_missing[dataset]:,} on are in no file"
        report.problems.append(Problem("gap", dataset, detail, _replay_fix(dataset)))
