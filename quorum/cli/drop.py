"""`quorum drop`: drop a dataset (a tombstone in the ledger; its queue and config go)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ledger.connection import connect
from ledger.drop import DropReport, drop_dataset, previous_drop
from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from ledger.tasks import count_tasks
from quorum.cli.options import DataDir
from recipes.settings import load_settings

__all__ = ["drop", "register", "summary"]


async def _queued(url: str, dataset: str) -> int | None:
    """Tasks queued for `dataset`, or None if a drop of it already finished."""
    nc = await connect(url)
    try:
        if await previous_drop(nc, dataset) is not None:
            return None
        return await count_tasks(nc, dataset)
    finally:
        await nc.close()


async def _drop(url: str, dataset: str) -> DropReport:
    nc = await connect(url)
    try:
        return await drop_dataset(nc, dataset)
    finally:
        await nc.close()


def summary(report: DropReport) -> str:
    """The one line `quorum drop` prints."""
    if report.already_dropped:
        seq, left = report.tombstone_seq, report.purged_tasks
        rest = f"purged {left:,} queued tasks it had left" if left else "nothing left to clean up"
        return f"✔ dataset {report.dataset} was already dropped (tombstone at ledger seq {seq:,}); {rest}"
    consumers = len(report.deleted_consumers)
    return (
        f"✔ dropped {report.dataset}: tombstone at ledger seq {report.tombstone_seq:,}, "
        f"{report.purged_tasks:,} queued tasks purged, {consumers} feed consumer{'s' * (consumers != 1)} "
        f"removed; history stays in the ledger until `ledger compact`"
    )


def drop(
    dataset: Annotated[str, typer.Argument(help="Dataset to drop")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask before dropping")] = False,
    data_dir: DataDir = None,
) -> None:
    """Drop a dataset: it disappears from db-out, stats and the feed; its name is free again.

    Appends a tombstone to the ledger, then purges the dataset's queued tasks and routing
    state and deletes its configuration; a recipe can start it afresh. Its answers stay
    in the ledger (time travel to before the drop still shows them) until `ledger
    compact` purges them for good. Stop the recipe serving the dataset first. Running
    the drop again after an interruption finishes it.

    Example: quorum drop news --yes
    """
    validate_dataset_name(dataset)
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        queued = asyncio.run(_queued(url, dataset))
        if queued is not None and not yes:
            question = (
                f"Drop dataset {dataset!r} and its {queued:,} queued tasks? Its answers stay in "
                f"the ledger until `ledger compact`"
            )
            try:
                confirmed = typer.confirm(question)
            except typer.Abort:  # end of input, or Ctrl+C at the prompt
                confirmed = False
            if not confirmed:
                typer.echo("nothing dropped", err=True)
                raise typer.Exit(1)
        report = asyncio.run(_drop(url, dataset))
    typer.echo(summary(report), err=True)


def register(app: typer.Typer) -> None:
    app.command("drop")(drop)
