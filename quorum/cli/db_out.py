"""`quorum db-out`: print a dataset as Prodigy-style JSONL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import msgspec
import typer

from ledger.connection import connect
from ledger.datasets import get_dataset
from ledger.names import validate_dataset_name
from ledger.streams import ensure_streams
from projections.datasets import answers, to_prodigy
from quorum.cli.options import DataDir
from quorum.natsd import nats_server
from quorum.settings import load_settings

__all__ = ["db_out", "export_dataset", "register"]

_encoder = msgspec.json.Encoder()


async def export_dataset(
    url: str, dataset: str, out: BinaryIO, *, session: str | None = None, answer: str | None = None
) -> int:
    """Write the dataset's current answers to `out` as JSONL; return how many."""
    nc = await connect(url)
    try:
        await get_dataset(await ensure_streams(nc.jetstream()), dataset)
        count = 0
        async for event in answers(nc, dataset, session=session, answer=answer):
            out.write(_encoder.encode(to_prodigy(event)) + b"\n")
            count += 1
        return count
    finally:
        await nc.close()


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
    data_dir: DataDir = None,
) -> None:
    """Print a dataset as JSONL: the latest answer per task per session.

    Works while a recipe is running (it finds its NATS through the data dir) and after.
    Example: quorum db-out news > annotations.jsonl
    """
    validate_dataset_name(dataset)
    if answer is not None and answer not in ("accept", "reject", "ignore"):
        raise typer.BadParameter("use accept, reject or ignore", param_hint="--answer")
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        if output is None:
            asyncio.run(export_dataset(url, dataset, sys.stdout.buffer, session=session, answer=answer))
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as handle:
                count = asyncio.run(export_dataset(url, dataset, handle, session=session, answer=answer))
            typer.echo(f"✔ wrote {count:,} answers to {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command("db-out")(db_out)
