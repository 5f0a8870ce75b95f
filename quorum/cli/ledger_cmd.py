"""The `ledger` command: inspect the JetStream ledger."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import msgspec
import typer

from ledger.connection import connect
from ledger.store import Ledger
from quorum.cli import QuorumGroup, run_cli
from quorum.cli.options import DataDir
from quorum.natsd import nats_server
from quorum.settings import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    cls=QuorumGroup,
    help="Inspect Quorum's ledger, the JetStream EVENTS stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_encoder = msgspec.json.Encoder()


async def _dump(url: str, dataset: str | None) -> int:
    nc = await connect(url)
    count = 0
    try:
        async for entry in Ledger(nc).read(dataset):
            for event in entry.events:
                line = {
                    "seq": entry.seq,
                    **msgspec.structs.asdict(event),
                    "kind": type(event).__struct_config__.tag,
                }
                sys.stdout.buffer.write(_encoder.encode(line) + b"\n")
                count += 1
    finally:
        await nc.close()
    return count


@app.command("dump")
def dump(
    dataset: Annotated[str | None, typer.Option(help="Only events of this dataset")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print every event of the ledger as JSON lines, in stream order.

    Example: ledger dump --dataset news | head
    """
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        asyncio.run(_dump(url, dataset))


@app.callback()
def _root() -> None:
    """Inspect Quorum's ledger, the JetStream EVENTS stream."""


def main(args: list[str] | None = None) -> None:
    """Entry point of the `ledger` console script."""
    from quorum.cli import ledger_history

    ledger_history.register(app)
    run_cli(app, args)
