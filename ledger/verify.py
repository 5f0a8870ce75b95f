"""`ledger verify`: check the snapshots against their manifest and against the stream.

Four layers, cheapest first:

1. every listed file exists, has the recorded size and checksum, and opens as
   Parquet with the recorded row count and sequence range (*corrupt* otherwise);
2. per dataset, file ranges do not overlap (*overlap*), and nothing under the root is
   unlisted (*orphan*: harmless, removed by the next snapshot run);
3. unless `quick`, the stream is read up to `through_seq` and, per dataset, the ledger
   messages in each file's range are compared with the messages in the file, so an
   event the stream has and no file does is a *gap*;
4. unless `quick`, every event of the stream is checked against `ledger.projectable`'s
   rule: one that can't be projected is *unprojectable* (readers skip it with a
   warning) until `ledger quarantine` sets it aside (*quarantined*, a note). A message
   whose every event is such holds no row, so no file is expected to hold it.

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

from ledger.columns import message_rows
from ledger.errors import LedgerError
from ledger.projectable import Skips, Unprojectable, load_quarantine
from ledger.snapshot_store import Manifest, PartFile, SnapshotStore
from ledger.store import Ledger
from ledger.streams import EVENTS_STREAM, ensure_streams, ledger_identity

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the snapshots, and the command that fixes it."""

    kind: str  # corrupt | missing | overlap | gap | unprojectable | orphan | behind | quarantined
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
    unprojectable: list[Unprojectable] = field(default_factory=list)
    """Events that can't be projected and are not quarantined (`ledger quarantine` takes them)."""

    @property
    def ok(self) -> bool:
        """Nothing needs repair: orphans and a snapshot behind the stream are only notes."""
        return not any(p.kind not in _NOTES for p in self.problems)


_NOTES = {"orphan", "behind", "quarantined"}


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
        last = manifest.through_seq if manifest.cut is not None else state.last_seq
        skips = await _check_stream(nc, manifest.through_seq, last, held, report, on_progress)
        _check_unprojectable(store, manifest, skips, report)
    return report


async def _check_stream(
    nc: Client,
    through_seq: int,
    last_seq: int,
    held: dict[str, set[int]],
    report: VerifyReport,
    on_progress: Callable[[int, int], None] | None,
) -> Skips:
    """Every ledger message up to `through_seq` that has rows must be in a file of its
    dataset; returns the events up to `last_seq` that can't be projected."""
    missing: Counter[str] = Counter()
    first_missing: dict[str, int] = {}
    skips = Skips(await load_quarantine(nc), warn=False)
    async for raw in Ledger(nc).read_raw(to_seq=last_seq):
        dataset = raw.subject.split(".")[2]
        rows = message_rows(raw.seq, raw.data, skips, dataset)
        if raw.seq <= through_seq:
            report.messages_checked += 1
            if rows and raw.seq not in held.get(dataset, ()):
                missing[dataset] += 1
                first_missing.setdefault(dataset, raw.seq)
        if on_progress is not None:
            on_progress(raw.seq, last_seq)
    for dataset, count in sorted(missing.items()):
        detail = f"{count:,} ledger messages from sequence {first_missing[dataset]:,} on are in no file"
        report.problems.append(Problem("gap", dataset, detail, _replay_fix(dataset)))
    return skips


def _file_holding(store: SnapshotStore, manifest: Manifest, item: Unprojectable) -> str | None:
    """The file that holds a row of `item` (one written before such events were left out)."""
    for part in manifest.dataset_files(item.dataset or ""):
        if not part.first_seq <= item.seq <= part.last_seq:
            continue
        try:
            with store.open_file(part.path) as handle:
                table = pq.read_table(handle, columns=["position"], filters=[("seq", "=", item.seq)])
        except Exception:  # a damaged file is reported as corrupt already
            continue
        positions = table.column("position").to_pylist()
        if positions and (item.position is None or item.position in positions):
            return part.path
    return None


def _check_unprojectable(
    store: SnapshotStore, manifest: Manifest, skips: Skips, report: VerifyReport
) -> None:
    """One problem per event that can't be projected, with the command that fixes it."""
    for item, quarantined in [(i, False) for i in skips.skipped] + [(i, True) for i in skips.quarantined]:
        dataset = item.dataset or "?"
        what = f" ({item.kind} {item.event_id})" if item.event_id else ""
        detail = f"event {item.address}{what}: {item.reason}"
        path = _file_holding(store, manifest, item)
        if path is not None:
            detail += f"; {path} holds it (written before Quorum left such events out)"
            report.problems.append(Problem("unprojectable", dataset, detail, _replay_fix(dataset)))
        elif quarantined:
            why = skips.quarantine.reasons.get(item.key) or "no reason given"
            detail += f"; quarantined ({why})"
            report.problems.append(
                Problem("quarantined", dataset, detail, "nothing: readers skip it quietly")
            )
        else:
            report.problems.append(
                Problem("unprojectable", dataset, detail, f"ledger quarantine {item.address}")
            )
        if not quarantined:
            report.unprojectable.append(item)
