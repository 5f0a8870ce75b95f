"""`quorum sql`: query the projections with DuckDB SQL, once or in an interactive shell."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.errors import QuorumError
from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from quorum.cli.options import DataDir, SnapshotDir
from recipes.settings import load_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from projections.duck import Projections

__all__ = ["print_result", "register", "shell", "sql"]

MAX_TABLE_ROWS = 1000
_json = msgspec.json.Encoder(decimal_format="number").encode
HELP = (
    "End each statement with ';'. Views: {views}; per-session datasets as \"<dataset>-<session>\". "
    ".tables lists them, .schema NAME shows columns, .refresh re-reads the ledger, .quit leaves."
)


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]NULL[/]"
    if isinstance(value, list | dict):
        return escape(_json(value).decode())
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _table(reader: pa.RecordBatchReader, console: Console) -> int:
    table = Table(*reader.schema.names, show_lines=False)
    shown = count = 0
    for batch in reader:
        count += batch.num_rows
        if shown >= MAX_TABLE_ROWS:
            continue
        columns = [column.to_pylist() for column in batch.columns]
        for row in zip(*columns, strict=True):
            if shown >= MAX_TABLE_ROWS:
                break
            table.add_row(*(_cell(v) for v in row))
            shown += 1
    console.print(table)
    more = f" (showing {shown:,}; use --format csv or json for all)" if count > shown else ""
    console.print(f"[dim]{count:,} row{'s' if count != 1 else ''}{more}[/]")
    return count


def print_result(reader: pa.RecordBatchReader, fmt: str, output: Path | None, console: Console) -> int:
    """Write a query's rows in `fmt` to `output` (or stdout); return how many."""
    from projections.output import write_csv, write_json, write_parquet  # Arrow: only now

    if fmt == "parquet":
        if output is None:
            raise QuorumError("--format parquet writes a file: add -o results.parquet")
        return write_parquet(reader, output)
    if fmt == "table" and output is None:
        return _table(reader, console)
    writer = write_json if fmt == "json" else write_csv
    if output is None:
        count = writer(reader, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return count
    handle: BinaryIO
    with output.open("wb") as handle:
        return writer(reader, handle)


def _open(url: str, dataset: str | None, snapshot_dir: str | None) -> Projections:
    from projections.duck import load_projections  # DuckDB and Arrow: only now

    return asyncio.run(
        load_projections(url, dataset=dataset, read_only=True, session_views=True, snapshot_dir=snapshot_dir)
    )


def _statements(lines: Any, prompt: bool) -> Any:
    """Statements from `lines`, each ending with ';' (dot-commands are one line)."""
    buffer: list[str] = []
    while True:
        try:
            line = input("quorum> " if not buffer else "   ...> ") if prompt else next(lines)
        except (EOFError, StopIteration):
            break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            yield stripped
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            yield "\n".join(buffer)
            buffer = []
    if "".join(buffer).strip():
        yield "\n".join(buffer)


def shell(url: str, dataset: str | None, fmt: str, console: Console, snapshot_dir: str | None = None) -> int:
    """The interactive shell: read statements, print results; return how many failed."""
    from projections.duck import VIEWS
    from projections.errors import QueryError

    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    projections = _open(url, dataset, snapshot_dir)
    failures = 0
    err = Console(stderr=True)
    if interactive:
        console.print(
            f"Quorum SQL over the ledger up to message {projections.tail.last_seq:,} "
            f"(snapshots to {projections.snapshots.last_seq:,}, then the live tail). "
            + HELP.format(views=", ".join(VIEWS))
        )
    try:
        for statement in _statements(
            iter(sys.stdin.read().splitlines()) if not interactive else None, interactive
        ):
            command = statement.split()
            try:
                if command[0] in (".quit", ".exit"):
                    break
                if command[0] == ".refresh":
                    projections.close()
                    projections = _open(url, dataset, snapshot_dir)
                    continue
                if command[0] == ".tables":
                    statement = (
                        "SELECT view_name AS name FROM duckdb_views() "
                        "WHERE NOT internal AND NOT starts_with(view_name, '_') ORDER BY 1"
                    )
                elif command[0] == ".schema" and len(command) == 2:
                    statement = f'DESCRIBE "{command[1]}"'
                elif command[0].startswith("."):
                    raise QueryError(f"unknown command {command[0]}: {HELP.format(views=', '.join(VIEWS))}")
                print_result(projections.run_query(statement), fmt, None, console)
            except QuorumError as exc:
                failures += 1
                err.print(f"[bold red]✘[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    finally:
        projections.close()
    return failures


def sql(
    query: Annotated[
        str | None, typer.Argument(help="One SELECT to run; leave it out for an interactive shell")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table (default), csv, json or parquet (needs -o)")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Only this dataset's events (reads less of the ledger)"),
    ] = None,
    data_dir: DataDir = None,
    snapshot_dir: SnapshotDir = None,
) -> None:
    """Query annotations with SQL: views over the Parquet snapshots plus the live ledger.

    Views: events, datasets, answers, dataset_examples, annotator_counts, task_times,
    agreement_ratings, agreement_pairs, agreement_summary, answer_spans, span_agreement,
    disagreements, and "<dataset>-<session>" per session (see docs/projections.md).
    Read-only: statements that write are refused.

    Example: quorum sql "SELECT session, sum(answers) FROM annotator_counts GROUP BY 1" -f csv
    """
    from projections.duck import check_query
    from projections.output import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if dataset is not None:
        validate_dataset_name(dataset)
    if query is not None:
        check_query(query)  # a syntax error fails before anything is read
    console = Console(soft_wrap=False)
    settings = load_settings(data_dir=data_dir, snapshot_dir=snapshot_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        if query is None:
            if shell(url, dataset, fmt, console, settings.snapshot_location):
                raise typer.Exit(1)
            return
        with _open(url, dataset, settings.snapshot_location) as projections:
            count = print_result(projections.run_query(query), fmt, output, console)
    if output is not None:
        typer.echo(f"✔ wrote {count:,} rows to {output}", err=True)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
