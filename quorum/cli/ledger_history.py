"""The `ledger` commands for history: snapshot, replay, verify, quarantine, export, import,
compact.

Each command is a thin wrapper: it finds NATS (the data dir's embedded server, or
NATS_URL), runs one function of the `ledger` package with a progress bar on stderr,
and prints a one-line summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from nats.aio.client import Client
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.archive import export_ledger, import_archive
from ledger.compact import compact
from ledger.connection import connect
from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from ledger.projectable import QuarantineReport, Unprojectable, quarantine
from ledger.snapshot_store import SnapshotStore
from ledger.snapshots import SnapshotOptions, SnapshotReport, replay, snapshot
from ledger.verify import verify
from quorum.cli.options import DataDir, SnapshotDir, ToSeq, Until, parse_until
from recipes.settings import Settings, load_settings

__all__ = ["register"]

T = TypeVar("T")
err = Console(stderr=True)

FileRows = Annotated[
    int, typer.Option("--file-rows", min=1, help="Events per Parquet file before a commit starts a new one")
]
RowGroupRows = Annotated[
    int, typer.Option("--row-group-rows", min=1, help="Rows per Parquet row group (DuckDB likes 100k-1M)")
]

Workers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=0,
        help="Processes writing slices of the ledger at once (0: one per usable CPU, up to 8, "
        "each with at least 50,000 ledger messages). Only runs over the whole ledger split; "
        "each worker holds up to --file-rows events in memory",
    ),
]


@contextlib.contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr; yields `update(done, total)`."""
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=max(total, done))

        yield update


def _pending(update: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """Adapt `update(done, total)` to callbacks that report (done, still pending)."""
    return lambda done, pending: update(done, done + pending)


def _with_nats(settings: Settings, work: Callable[[Client], Awaitable[T]]) -> T:
    async def main(url: str) -> T:
        nc = await connect(url)
        try:
            return await work(nc)
        finally:
            await nc.close()

    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        return asyncio.run(main(url))


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _summary(verb: str, report: SnapshotReport, location: str) -> None:
    mb = report.bytes / 1e6
    rate = report.events / report.seconds if report.seconds else 0
    err.print(
        f"[green]✔[/] {verb} {report.events:,} events ({report.messages:,} ledger messages) into "
        f"{_count(len(report.files), 'file')}, {mb:,.1f} MB, in {report.seconds:.1f} s "
        f"({rate:,.0f} events/s); "
        f"{location} now covers the ledger to sequence {report.through_seq:,}",
        highlight=False,
        soft_wrap=True,
    )


def snapshot_cmd(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running: snapshot new events as they arrive (Ctrl+C stops)")
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, help="With --follow: commit new events at least this often (s)"),
    ] = 10.0,
    file_rows: FileRows = 1_000_000,
    row_group_rows: RowGroupRows = 100_000,
    workers: Workers = 0,
    snapshot_dir: SnapshotDir = None,
    data_dir: DataDir = None,
) -> None:
    """Write the ledger's new events to zstd Parquet files, one folder per dataset.

    Restartable: killed at any point, the next run carries on from the last commit
    without a duplicate or a gap. With --follow it is the long-running snapshotter.

    Example: ledger snapshot --follow --snapshot-dir s3://annotations/quorum
    """
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    store = SnapshotStore(settings.snapshot_location)
    options = SnapshotOptions(
        file_rows=file_rows, row_group_rows=row_group_rows, interval=interval, workers=workers
    )

    async def run(nc: Client) -> SnapshotReport:
        if not follow:
            with _bar("Snapshotting") as update:
                return await snapshot(nc, store, options, on_progress=_pending(update))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        err.print(f"Following the ledger into {store.location} (commits every {interval:g} s; Ctrl+C stops)")
        return await snapshot(nc, store, options, follow=True, stop=stop)

    report = _with_nats(settings, run)
    if report.orphans_removed:
        err.print(f"removed {len(report.orphans_removed)} unfinished files of an interrupted run")
    _summary("snapshotted", report, store.location)


def replay_cmd(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Rebuild only this dataset's files")
    ] = None,
    until: Until = None,
    to_seq: ToSeq = None,
    out: Annotated[
        str | None,
        typer.Option("--out", help="Write to this new directory (required with --until / --to-seq)"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="First import this archive (ledger export) into the server, then replay"),
    ] = None,
    file_rows: FileRows = 1_000_000,
    row_group_rows: RowGroupRows = 100_000,
    workers: Workers = 0,
    snapshot_dir: SnapshotDir = None,
    data_dir: DataDir = None,
) -> None:
    """Rebuild snapshots from the ledger: all of them, one dataset's, or the past.

    Deterministic: delete every snapshot, replay, and db-out prints the same bytes.
    Time travel writes the ledger as it was into a new directory; read it with
    `quorum db-out DATASET --snapshot-dir DIR` (or `quorum db-out DATASET --until T`).

    Example: ledger replay --until 2026-11-16 --out monday && quorum db-out news --snapshot-dir monday
    """
    if dataset is not None:
        validate_dataset_name(dataset)
    until_ms = parse_until(until)
    cut = until_ms is not None or to_seq is not None
    if cut and out is None:
        raise typer.BadParameter(
            "time travel writes a new snapshot directory: add --out DIR", param_hint="--out"
        )
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    store = SnapshotStore(out or settings.snapshot_location)
    options = SnapshotOptions(file_rows=file_rows, row_group_rows=row_group_rows, workers=workers)

    async def run(nc: Client) -> SnapshotReport:
        if source is not None:
            with _bar("Importing") as update:
                imported = await import_archive(nc, SnapshotStore(source), on_progress=update)
            err.print(f"imported {imported.events:,} events from {source}")
        with _bar("Replaying") as update:
            return await replay(
                nc,
                store,
                options,
                dataset=dataset,
                to_seq=to_seq,
                until_ms=until_ms,
                on_progress=_pending(update),
            )

    _summary("replayed", _with_nats(settings, run), store.location)


def verify_cmd(
    quick: Annotated[
        bool, typer.Option("--quick", help="Check files and manifest only, without reading the stream")
    ] = False,
    snapshot_dir: SnapshotDir = None,
    data_dir: DataDir = None,
) -> None:
    """Check the snapshots: checksums, sequence coverage, gaps, overlaps, corrupt files.

    Exits 1 when something needs fixing, and says what to run for each problem. Files
    nobody reads (orphan), a snapshot behind the stream (behind) and events set aside
    with `ledger quarantine` (quarantined) are listed but are not failures. Without
    --quick it also names every event readers skip because it can't be projected
    (unprojectable), with the `ledger quarantine` command that sets it aside.

    Example: ledger verify || ledger replay --dataset news
    """
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    store = SnapshotStore(settings.snapshot_location)

    async def run(nc: Client) -> Any:
        with _bar("Verifying") as update:
            return await verify(nc, store, quick=quick, on_progress=update)

    report = _with_nats(settings, run)
    if report.problems:
        table = Table("problem", "dataset", "detail", "fix", show_lines=False)
        for problem in report.problems:
            table.add_row(problem.kind, problem.dataset or "—", problem.detail, problem.fix)
        Console(soft_wrap=False).print(table)
    if report.unprojectable:
        addresses = " ".join(item.address for item in report.unprojectable)
        err.print(
            f"{_count(len(report.unprojectable), 'event')} can't be projected; readers skip them with a "
            f"warning. Look at them (`ledger dump --dataset NAME`), then set them aside: "
            f"ledger quarantine {addresses} --reason '…'",
            highlight=False,
            soft_wrap=True,
        )
    checked = f", {report.messages_checked:,} ledger messages compared" if not quick else ""
    verdict = "[green]✔ snapshots are sound[/]" if report.ok else "[red]✘ snapshots need repair[/]"
    err.print(
        f"{verdict}: {_count(report.files, 'file')}, {report.rows:,} events "
        f"to sequence {report.through_seq:,}{checked}",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(1)


def _listed(items: list[Unprojectable]) -> str:
    by_dataset: dict[str, list[str]] = {}
    for item in items:
        by_dataset.setdefault(item.dataset or "?", []).append(item.address)
    return "; ".join(
        f"{dataset}: {', '.join(addresses)}" for dataset, addresses in sorted(by_dataset.items())
    )


def quarantine_cmd(
    events: Annotated[
        list[str],
        typer.Argument(
            metavar="SEQ[:POSITION]",
            help="Events as `ledger verify` names them: SEQ:POSITION is one event of ledger message SEQ; "
            "SEQ alone is every event of that message that can't be projected",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str,
        typer.Option("--reason", "-r", help="Why, for whoever reads the ledger later (kept in the record)"),
    ] = "",
    data_dir: DataDir = None,
) -> None:
    """Set aside ledger events that can't be projected, so every reader skips them quietly.

    Answers recorded before the server checked them can hold what no snapshot row can: a
    span like [1], a start past 2**63, a label that is a number. Readers (db-out, stats,
    sql, agreement, the dashboard, snapshot, replay) skip such an event, with a warning
    each time, and `ledger verify` fails and names it. Look at it first (`ledger dump
    --dataset NAME`), then quarantine it: a record appended to the ledger names the
    event, the warnings stop, and verify lists it as quarantined. Only events that can't
    be projected are taken; the other events of the same ledger message stay. Nothing
    is deleted: to remove a dataset's history for good, `quorum drop` it, then `ledger
    compact`.

    Example: ledger verify; ledger quarantine 1234:2 1240 --reason "spans from the old upload bug"
    """
    settings = load_settings(data_dir=data_dir)

    async def run(nc: Client) -> QuarantineReport:
        return await quarantine(nc, events, reason)

    report = _with_nats(settings, run)
    if report.already:
        err.print(f"already quarantined: {_listed(report.already)}", highlight=False, soft_wrap=True)
    if report.added:
        err.print(
            f"[green]✔[/] quarantined {_count(len(report.added), 'event')} ({_listed(report.added)}): "
            f"readers skip them without a warning from now on, and `ledger verify` lists them as quarantined",
            highlight=False,
            soft_wrap=True,
        )


def export_cmd(
    target: Annotated[str, typer.Argument(help="New directory or URI for the archive")],
    data_dir: DataDir = None,
) -> None:
    """Write the whole ledger to a portable Parquet archive (a snapshot directory).

    Example: ledger export backups/quorum-2026-11-22 && ledger import backups/quorum-2026-11-22
    """
    settings = load_settings(data_dir=data_dir)
    store = SnapshotStore(target)

    async def run(nc: Client) -> SnapshotReport:
        with _bar("Exporting") as update:
            return await export_ledger(nc, store, on_progress=_pending(update))

    _summary("exported", _with_nats(settings, run), target)


def import_cmd(
    source: Annotated[str, typer.Argument(help="An archive from `ledger export` (or a snapshot directory)")],
    data_dir: DataDir = None,
) -> None:
    """Load an archive's events into this server's ledger; safe to run twice.

    Example: NATS_URL=nats://new-cluster:4222 ledger import backups/quorum-2026-11-22
    """
    settings = load_settings(data_dir=data_dir)

    async def run(nc: Client) -> Any:
        with _bar("Importing") as update:
            return await import_archive(nc, SnapshotStore(source), on_progress=update)

    report = _with_nats(settings, run)
    configured = f"; configured {', '.join(report.datasets_configured)}" if report.datasets_configured else ""
    already = f" ({report.skipped_messages:,} already imported)" if report.skipped_messages else ""
    err.print(
        f"[green]✔[/] imported {report.events:,} events in {report.messages:,} ledger messages"
        f"{already}{configured}",
        highlight=False,
        soft_wrap=True,
    )


def compact_cmd(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask before purging")] = False,
    file_rows: FileRows = 1_000_000,
    snapshot_dir: SnapshotDir = None,
    data_dir: DataDir = None,
) -> None:
    """Purge dropped datasets from the ledger for good, and merge small snapshot files.

    A dropped dataset's events before its drop are deleted from the EVENTS stream and
    from the snapshots; nothing else changes, and replay stays byte-identical. See
    docs/ledger.md for what a purge means for privacy requests.

    Example: quorum drop old-news --yes && ledger compact --yes
    """
    if not yes and not typer.confirm("Purge the history of every dropped dataset for good?"):
        err.print("nothing purged")
        raise typer.Exit(1)
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    store = SnapshotStore(settings.snapshot_location)

    async def run(nc: Client) -> Any:
        with _bar("Compacting") as update:
            return await compact(nc, store, SnapshotOptions(file_rows=file_rows), on_progress=update)

    report = _with_nats(settings, run)
    dropped = ", ".join(report.dropped_datasets) or "none"
    err.print(
        f"[green]✔[/] purged {report.purged_messages:,} ledger messages (dropped datasets: {dropped}); "
        f"files {report.files_before} → {report.files_after}, "
        f"{report.bytes_before / 1e6:,.1f} → {report.bytes_after / 1e6:,.1f} MB",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("snapshot")(snapshot_cmd)
    app.command("replay")(replay_cmd)
    app.command("verify")(verify_cmd)
    app.command("quarantine")(quarantine_cmd)
    app.command("export")(export_cmd)
    app.command("import")(import_cmd)
    app.command("compact")(compact_cmd)
