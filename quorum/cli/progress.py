"""`quorum progress`: queued / out / answered per session, without handing anything out."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from feed.status import QueueStatus, queue_status
from ledger.connection import connect
from ledger.datasets import get_dataset
from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from ledger.streams import ensure_streams
from quorum.cli.options import DataDir
from recipes.settings import load_settings

__all__ = ["read_progress", "register"]


async def read_progress(url: str, dataset: str) -> QueueStatus:
    """The dataset's queue status (see `feed.status.queue_status`)."""
    nc = await connect(url)
    try:
        info = await get_dataset(await ensure_streams(nc.jetstream()), dataset)
        return await queue_status(nc, info)
    finally:
        await nc.close()


def progress(
    dataset: Annotated[str, typer.Argument(help="Dataset to report on")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    data_dir: DataDir = None,
) -> None:
    """Show the queue of a dataset: tasks queued, out (held unanswered) and answered, per session.

    Reading it hands out nothing. Example: quorum progress news --json
    """
    validate_dataset_name(dataset)
    settings = load_settings(None, data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        status = asyncio.run(read_progress(url, dataset))
    if as_json:
        typer.echo(msgspec.json.encode(status).decode())
        return
    mode = {"none": "no overlap", "full": "full overlap", "k": f"{status.annotations_per_task} per task"}[
        status.mode
    ]
    console = Console()
    console.print(
        f"[bold]{status.dataset}[/] ({mode}): {status.total:,} tasks · {status.queued:,} queued · "
        f"{status.out:,} out · {status.answered:,} answers"
    )
    table = Table("session", "queued", "out", "answered")
    for row in status.sessions:
        table.add_row(
            row.session, "-" if row.queued is None else f"{row.queued:,}", f"{row.out:,}", f"{row.answered:,}"
        )
    console.print(table)
    if status.progress is not None:
        console.print(f"The recipe reports {status.progress:.0%} done.")
    if status.stream == "streaming":
        console.print(
            "The recipe's stream is still being read: more tasks are queued as annotators need them."
        )
    if status.warning:
        console.print(f"[yellow]⚠ {status.warning}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("progress")(progress)
