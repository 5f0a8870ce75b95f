"""A DuckDB connection with Quorum's views over Parquet snapshots plus the live tail.

`open_projections` reads the ledger events newer than the last snapshot into a scratch
Parquet file, defines `events` as snapshots UNION ALL tail, then runs `views.sql` on
top. Analysts' connections are read-only: the views are built in a scratch database
file which is then reopened read-only, and `run_query` refuses anything but a query.

It never writes to the ledger or to the snapshot directory; its scratch directory is
removed on `close()`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from nats.aio.client import Client

from ledger.connection import connect
from ledger.datasets import get_dataset
from ledger.snapshot_store import Cut
from ledger.streams import ensure_streams
from projections.errors import ProjectionError, QueryError, ReadOnlyQuery
from projections.functions import register_functions, unregister_functions
from projections.snapshots import SnapshotSet, load_snapshots, repair_hint
from projections.tail import TAIL_SCHEMA, TailFile, read_tail

__all__ = [
    "EVENT_COLUMNS",
    "VIEWS",
    "Projections",
    "check_query",
    "load_projections",
    "open_projections",
]

VIEWS_SQL = Path(__file__).with_name("views.sql")
EVENT_COLUMNS: tuple[str, ...] = tuple(TAIL_SCHEMA.names)
# The views an analyst can query, in the order docs/projections.md describes them.
VIEWS: tuple[str, ...] = (
    "events",
    "datasets",
    "answers",
    "dataset_examples",
    "annotator_counts",
    "task_times",
    "agreement_ratings",
    "agreement_pairs",
    "agreement_summary",
    "answer_spans",
    "span_agreement",
    "disagreements",
)
_QUERY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_ANALYST_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)


def _query_error(exc: duckdb.Error, snapshots: SnapshotSet) -> QueryError:
    if "read-only" in str(exc):
        return ReadOnlyQuery(f"refused: {exc}")
    if isinstance(exc, _ANALYST_ERRORS):
        return QueryError(str(exc))
    return QueryError(f"{exc}{repair_hint(snapshots)}")


def check_query(sql: str) -> str:
    """Return `sql` if it is exactly one read-only statement, else raise a clear error."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    if not statements:
        raise QueryError("the query is empty: write a SELECT, e.g. SELECT * FROM answers LIMIT 10")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time, got {len(statements)}: split them")
    kind = statements[0].type
    if kind not in _QUERY_TYPES:
        raise ReadOnlyQuery(
            f"{kind.name} statements are refused: projections are read-only views of the ledger. "
            f"Use SELECT (export results with --format csv|json|parquet -o FILE)"
        )
    return sql


@dataclass
class Projections:
    """An open DuckDB connection with every view defined; close it when done."""

    con: duckdb.DuckDBPyConnection
    scratch: Path
    snapshots: SnapshotSet
    tail: TailFile
    read_only: bool
    session_views: list[str] = field(default_factory=list)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run Quorum's own SQL; DuckDB errors become `ProjectionError`."""
        try:
            return self.con.execute(sql, params)
        except duckdb.Error as exc:
            raise self.failure("projection query failed", exc) from None

    def relation(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Quorum's own SQL as a lazy relation, for streaming (`to_arrow_reader`)."""
        try:
            return self.con.sql(sql, params=params)
        except duckdb.Error as exc:
            raise self.failure("projection query failed", exc) from None

    def failure(self, what: str, exc: duckdb.Error) -> ProjectionError:
        """A DuckDB error in Quorum's own SQL, with the repair when snapshots were read."""
        return ProjectionError(f"{what}: {exc}{repair_hint(self.snapshots)}")

    def run_query(self, sql: str, batch_rows: int = 8192) -> pa.RecordBatchReader:
        """Run an analyst's query: one read-only statement, streamed as Arrow batches.

        Any DuckDB error, at planning or while rows stream, becomes `QueryError` with
        DuckDB's message (a write refused by the read-only database: `ReadOnlyQuery`).
        """
        check_query(sql)
        try:
            reader = self.con.sql(sql).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise _query_error(exc, self.snapshots) from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except duckdb.Error as exc:
                raise _query_error(exc, self.snapshots) from None

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def close(self) -> None:
        """Close the connection and remove the scratch directory."""
        try:
            unregister_functions(self.con)
            self.con.close()
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Projections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_where(cut: Cut) -> str:
    """The SQL condition of a time-travel cut: events up to a sequence and/or a time."""
    clauses = []
    if cut.to_seq is not None:
        clauses.append(f"seq <= {int(cut.to_seq)}")
    if cut.until_ms is not None:
        clauses.append(f"recorded_at <= {int(cut.until_ms)}")
    return " AND ".join(clauses)


def _events_view(tail: TailFile, snapshots: SnapshotSet, dataset: str | None, cut: Cut | None = None) -> str:
    columns = ", ".join(EVENT_COLUMNS)
    parts = [f"SELECT {columns} FROM read_parquet({_literal(str(tail.path))})"]
    files = snapshots.files(dataset)
    if files:
        listing = "[" + ", ".join(_literal(str(f)) for f in files) + "]"
        parts.append(
            f"SELECT {snapshots.select_columns(EVENT_COLUMNS)} FROM read_parquet({listing}, "
            f"union_by_name = true) WHERE seq <= {int(snapshots.last_seq)}"
        )
    union = " UNION ALL BY NAME ".join(parts)
    if cut is not None and _cut_where(cut):
        return f"CREATE VIEW events AS SELECT * FROM ({union}) WHERE {_cut_where(cut)}"
    return "CREATE VIEW events AS " + union


def _configure(con: duckdb.DuckDBPyConnection, scratch: Path, memory_limit: str) -> None:
    con.execute(f"SET temp_directory = {_literal(str(scratch / 'spill'))}")
    con.execute(f"SET memory_limit = {_literal(memory_limit)}")
    # Every order Quorum relies on is an ORDER BY; not preserving scan order lets big
    # sorts and joins spill instead of failing at the memory limit.
    con.execute("SET preserve_insertion_order = false")
    # DuckDB draws a progress bar on stdout for long queries: it would land inside db-out's
    # JSONL (seen at 200k answers). Quorum's commands show their own progress on stderr.
    con.execute("SET enable_progress_bar = false")


def _create_session_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    names = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT session_id FROM events WHERE kind = 'answer_recorded' "
            "AND session_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    for name in names:
        con.execute(
            f"CREATE VIEW {_ident(name)} AS SELECT * FROM dataset_examples "
            f"WHERE _session_id = {_literal(name)}"
        )
    return names


def build(
    scratch: Path,
    tail: TailFile,
    snapshots: SnapshotSet,
    *,
    dataset: str | None = None,
    read_only: bool = False,
    session_views: bool = False,
    materialize: bool = False,
    memory_limit: str = "1GB",
    cut: Cut | None = None,
) -> Projections:
    """Define every view over `tail` and `snapshots`; reopen read-only if asked.

    `materialize` keeps which events make up `answers` in a temporary table: worth it
    when several queries follow (agreement, the dashboard), and for a large export,
    whose sort then need not share DuckDB's memory with the keys' aggregation.
    """
    path = str(scratch / "quorum.duckdb") if read_only else ":memory:"
    try:
        con = duckdb.connect(path)
        register_functions(con)
        _configure(con, scratch, memory_limit)
        con.execute(_events_view(tail, snapshots, dataset, cut))
        con.execute(VIEWS_SQL.read_text(encoding="utf-8"))
        sessions = _create_session_views(con) if session_views else []
        if materialize and not read_only:
            con.execute("CREATE TEMP TABLE _answer_keys AS SELECT * FROM main._answer_keys")
        if read_only:
            unregister_functions(con)
            con.close()
            con = duckdb.connect(path, read_only=True)
            register_functions(con)
            _configure(con, scratch, memory_limit)
    except duckdb.Error as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ProjectionError(f"could not build the projections: {exc}{repair_hint(snapshots)}") from None
    return Projections(con, scratch, snapshots, tail, read_only, sessions)


async def open_projections(
    nc: Client,
    *,
    dataset: str | None = None,
    snapshots: SnapshotSet | None = None,
    read_only: bool = False,
    session_views: bool = False,
    materialize: bool = False,
    memory_limit: str = "1GB",
    snapshot_dir: str | Path | None = None,
    cut: Cut | None = None,
) -> Projections:
    """Snapshots + the live tail as DuckDB views, for one dataset or all of them.

    The snapshots are `snapshots`, or those committed in `snapshot_dir`, or none (the
    whole ledger is read from the stream). `cut` limits every view to the ledger as it
    was at a sequence number or a time.
    """
    if snapshots is None:
        snapshots = await load_snapshots(nc, snapshot_dir)
    scratch = Path(tempfile.mkdtemp(prefix="quorum-projections-"))
    to_seq = snapshots.last_seq if snapshots.frozen else (cut.to_seq if cut else None)
    try:
        tail = await read_tail(
            nc, scratch / "tail.parquet", dataset=dataset, after_seq=snapshots.last_seq, to_seq=to_seq
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return await asyncio.to_thread(
        build,
        scratch,
        tail,
        snapshots,
        dataset=dataset,
        read_only=read_only,
        session_views=session_views,
        materialize=materialize,
        memory_limit=memory_limit,
        cut=cut,
    )


async def load_projections(
    url: str,
    *,
    dataset: str | None = None,
    snapshots: SnapshotSet | None = None,
    read_only: bool = False,
    session_views: bool = False,
    materialize: bool = False,
    memory_limit: str = "1GB",
    snapshot_dir: str | Path | None = None,
    cut: Cut | None = None,
) -> Projections:
    """Connect to NATS at `url`, check `dataset` exists, open the projections, disconnect.

    The projections need NATS only to read the tail; the connection is closed before
    the caller starts querying.
    """
    nc = await connect(url)
    try:
        if dataset is not None:
            await get_dataset(await ensure_streams(nc.jetstream()), dataset)
        return await open_projections(
            nc,
            dataset=dataset,
            snapshots=snapshots,
            read_only=read_only,
            session_views=session_views,
            materialize=materialize,
            memory_limit=memory_limit,
            snapshot_dir=snapshot_dir,
            cut=cut,
        )
    finally:
        await nc.close()
