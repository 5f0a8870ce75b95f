"""`quorum stats`: datasets, sessions and answer counts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ledger.connection import connect
from ledger.datasets import get_dataset, list_datasets
from ledger.natsd import nats_server
from ledger.streams import ensure_streams
from quorum.cli.options import DataDir
from recipes.settings import load_settings

if TYPE_CHECKING:
    from projections.reports import DatasetCounts

__all__ = ["collect_stats", "register", "stats"]


async def _names(url: str, dataset: str | None) -> list[str]:
    nc = await connect(url)
    try:
        kv = await ensure_streams(nc.jetstream())
        if dataset:
            await get_dataset(kv, dataset)
            return [dataset]
        return await list_datasets(kv)
    finally:
        await nc.close()


def collect_stats(
    url: str, dataset: str | None = None, snapshot_dir: str | None = None
) -> list[DatasetCounts]:
    """Stats for `dataset`, or for every dataset, read from the projections."""
    from projections.duck import load_projections  # DuckDB and Arrow load for this command only
    from projections.reports import dataset_counts

    names = asyncio.run(_names(url, dataset))
    if not names:
        return []
    loading = load_projections(url, dataset=dataset, materialize=True, snapshot_dir=snapshot_dir)
    with asyncio.run(loading) as projections:
        return dataset_counts(projections, names)


def stats(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset")] = None,
    data_dir: DataDir = None,
) -> None:
    """Show datasets, their sessions and answer counts.

    Example: quorum stats   or   quorum stats news
    """
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        results = collect_stats(url, dataset, settings.snapshot_location)
    console = Console()
    if not results:
        console.print("No datasets yet. Start one with a recipe, e.g. quorum ner.manual …")
        return
    table = Table(title="Quorum datasets")
    for column in ("dataset", "recipe", "answers", "accept", "reject", "ignore", "sessions"):
        table.add_column(
            column, justify="right" if column in ("answers", "accept", "reject", "ignore") else "left"
        )
    for item in results:
        sessions = ", ".join(f"{name} ({count})" for name, count in sorted(item.sessions.items()))
        table.add_row(
            item.dataset,
            item.recipe,
            f"{item.total:,}",
            f"{item.answers.get('accept', 0):,}",
            f"{item.answers.get('reject', 0):,}",
            f"{item.answers.get('ignore', 0):,}",
            sessions or "-",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
