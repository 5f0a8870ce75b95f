"""`quorum db-out`: print a dataset as Prodigy-style JSONL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from quorum.cli.options import DataDir, SnapshotDir, ToSeq, Until, parse_until
from recipes.settings import load_settings

if TYPE_CHECKING:
    from ledger.snapshot_store import Cut

__all__ = ["db_out", "export_dataset", "register"]


def export_dataset(
    url: str,
    dataset: str,
    out: BinaryIO,
    *,
    session: str | None = None,
    answer: str | None = None,
    snapshot_dir: str | None = None,
    cut: Cut | None = None,
) -> int:
    """Write the dataset's current answers to `out` as JSONL; return how many.

    Reads the `dataset_examples` projection (Parquet snapshots plus the live tail of the
    ledger) and streams it in batches, so memory stays flat however large the dataset:
    the answer keys go to a temporary table first, which DuckDB can spill, so the sort
    that follows has its memory to itself.
    """
    from projections.duck import load_projections  # DuckDB and Arrow load for this command only
    from projections.export import export_jsonl

    projections = asyncio.run(
        load_projections(url, dataset=dataset, materialize=True, snapshot_dir=snapshot_dir, cut=cut)
    )
    with projections:
        return export_jsonl(projections, dataset, out, session=session, answer=answer)


def db_out(
    dataset: Annotated[str, typer.Argument(help="Dataset to export")],
    session: Annotated[
        str | None, typer.Option(help="Only this session's answers (the name after ?session=)")
    ] = None,
    answer: Annotated[
        str | None, typer.Option(help="Only answers of this kind: accept, reject or ignore")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")
    ] = None,
    until: Until = None,
    to_seq: ToSeq = None,
    data_dir: DataDir = None,
    snapshot_dir: SnapshotDir = None,
) -> None:
    """Print a dataset as JSONL: the latest answer per task per session.

    Works while a recipe is running (it finds its NATS through the data dir) and after.
    Time travel: --until 2026-11-16 prints the dataset as it was at the end of that day.

    Example: quorum db-out news > annotations.jsonl
    """
    validate_dataset_name(dataset)
    if answer is not None and answer not in ("accept", "reject", "ignore"):
        raise typer.BadParameter("use accept, reject or ignore", param_hint="--answer")
    from ledger.snapshot_store import Cut  # with Arrow: for this command only

    cut = Cut(to_seq=to_seq, until_ms=parse_until(until)) if until or to_seq else None
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:

        def export(out: BinaryIO) -> int:
            return export_dataset(
                url,
                dataset,
                out,
                session=session,
                answer=answer,
                snapshot_dir=settings.snapshot_location,
                cut=cut,
            )

        if output is None:
            export(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as handle:
                count = export(handle)
            typer.echo(f"✔ wrote {count:,} answers to {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command("db-out")(db_out)
