"""The `ledger` command: inspect the JetStream ledger."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Annotated, Any, BinaryIO, TypeVar

import msgspec
import typer
from nats.aio.client import Client

from ledger.connection import connect
from ledger.events import ANSWERS, Event
from ledger.names import validate_dataset_name, validate_session_name
from ledger.natsd import nats_server
from ledger.store import Ledger
from ledger.streams import ensure_streams
from ledger.tailing import SUBJECT_KINDS, follow_events, last_seq, start_of_last
from quorum.cli import QuorumGroup, run_cli
from quorum.cli.options import DataDir
from recipes.settings import load_settings

T = TypeVar("T")

__all__ = ["app", "main"]

app = typer.Typer(
    cls=QuorumGroup,
    help="Inspect Quorum's ledger, the JetStream EVENTS stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_encoder = msgspec.json.Encoder()
_KINDS = ", ".join(SUBJECT_KINDS)


def _kind(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def _line(seq: int, event: Event) -> bytes:
    """One event as `ledger dump` and `ledger tail` print it: a JSON line with its seq."""
    return _encoder.encode({"seq": seq, **msgspec.structs.asdict(event), "kind": _kind(event)}) + b"\n"


async def _dump(url: str, dataset: str | None) -> int:
    nc = await connect(url)
    count = 0
    try:
        async for entry in Ledger(nc).read(dataset):
            for event in entry.events:
                sys.stdout.buffer.write(_line(entry.seq, event))
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


class _TailFilter(msgspec.Struct, frozen=True):
    dataset: str | None = None
    kind: str | None = None
    session: str | None = None
    answer: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.kind is None or _kind(event) == self.kind)
            and (self.session is None or getattr(event, "session", None) == self.session)
            and (self.answer is None or getattr(event, "answer", None) == self.answer)
        )


async def _start(nc: Client, where: _TailFilter, from_seq: int | None, last: int | None) -> int:
    if last is not None:
        return await start_of_last(nc, last, dataset=where.dataset, kind=where.kind)
    return from_seq if from_seq is not None else await last_seq(nc) + 1


async def _tail(
    url: str,
    where: _TailFilter,
    out: BinaryIO,
    *,
    from_seq: int | None,
    last: int | None,
    follow: bool,
    limit: int | None,
) -> int:
    nc = await connect(url)
    printed = 0
    try:
        await ensure_streams(nc.jetstream())  # a server that has no ledger yet gets an empty one
        start = await _start(nc, where, from_seq, last)
        if follow:
            # Said once the start is fixed: anything appended from now on is printed.
            typer.echo(f"following the ledger from seq {start:,}; Ctrl+C to stop", err=True)
        entries = follow_events(nc, dataset=where.dataset, kind=where.kind, start_seq=start, follow=follow)
        async with contextlib.aclosing(entries):
            async for entry in entries:
                for event in entry.events:
                    if not where.matches(event):
                        continue
                    out.write(_line(entry.seq, event))
                    out.flush()  # line by line, so `ledger tail | jq` shows each event as it comes
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await nc.close()
    return printed


async def _until_interrupted(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; on Ctrl+C cancel it, again and again until it has stopped, then raise
    KeyboardInterrupt (exit 130). About once in twenty test runs a single cancel left the
    tail following; nats.py's fetch waits in `asyncio.wait_for`, which can swallow one."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        while interrupted.is_set() and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
    finally:
        waiter.cancel()
        loop.remove_signal_handler(signal.SIGINT)
    if interrupted.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
        raise KeyboardInterrupt
    return task.result()


@app.command("tail")
def tail(
    dataset: Annotated[str | None, typer.Option(help="Only events of this dataset")] = None,
    kind: Annotated[str | None, typer.Option(help=f"Only events of this kind: {_KINDS}")] = None,
    session: Annotated[str | None, typer.Option(help="Only answers of this session")] = None,
    answer: Annotated[
        str | None, typer.Option(help="Only answers and reviews deciding accept, reject or ignore")
    ] = None,
    from_seq: Annotated[
        int | None,
        typer.Option("--from-seq", min=1, help="Start at this ledger sequence (1: from the start)"),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option("--last", min=0, help="Start with the last N ledger messages (of --dataset and --kind)"),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", help="Wait for new events, or stop at the end of the ledger"),
    ] = True,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Stop after N events")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print the ledger's events as JSON lines as they are appended, until Ctrl+C.

    Starts with the next event appended, unless --from-seq or --last says otherwise; the
    lines are those of `ledger dump`, one flushed per event.

    Example: ledger tail --dataset news --kind answer_recorded
    """
    if dataset is not None:
        validate_dataset_name(dataset)
    if session is not None:
        validate_session_name(session)
    if kind is not None and kind not in SUBJECT_KINDS:
        raise typer.BadParameter(f"unknown event kind {kind!r}: use {_KINDS}", param_hint="--kind")
    if answer is not None and answer not in ANSWERS:
        raise typer.BadParameter("use accept, reject or ignore", param_hint="--answer")
    if from_seq is not None and last is not None:
        raise typer.BadParameter("give --from-seq or --last, not both", param_hint="--last")
    where = _TailFilter(dataset=dataset, kind=kind, session=session, answer=answer)
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        try:
            asyncio.run(
                _until_interrupted(
                    _tail(
                        url,
                        where,
                        sys.stdout.buffer,
                        from_seq=from_seq,
                        last=last,
                        follow=follow,
                        limit=limit,
                    )
                )
            )
        except BrokenPipeError:
            # The reader (head, a closed jq) went away: stop quietly, as Unix filters do, and
            # keep Python from complaining when it flushes stdout on exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@app.callback()
def _root() -> None:
    """Inspect Quorum's ledger, the JetStream EVENTS stream."""


def main(args: list[str] | None = None) -> None:
    """Entry point of the `ledger` console script."""
    from quorum.cli import ledger_history

    ledger_history.register(app)
    run_cli(app, args)
