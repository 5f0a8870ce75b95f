"""`quorum sql`: one query in four formats, the shell, and the bad input it must refuse."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from projections.duck import check_query
from projections.errors import QueryError, ReadOnlyQuery
from tests.conftest import quorum_cli, run
from tests.ledger_writes import answer, configure, register, write


@pytest.fixture
def ledger(nats_url, dataset_name):
    d = dataset_name
    run(
        write(
            nats_url,
            [
                [configure(d, feed_overlap=True)],
                [answer(d, "ann", 1), answer(d, "ann", 2, "reject")],
                [answer(d, "bob", 1, "ignore")],
            ],
        )
    )
    run(register(nats_url, d, feed_overlap=True))
    return d


def _sql(nats_url, *args, input=None):
    return quorum_cli("sql", *args, env={"NATS_URL": nats_url}, input=input)


def test_formats(nats_url, ledger, tmp_path):
    query = f"SELECT session, answer, task_hash FROM answers WHERE dataset = '{ledger}' ORDER BY session, task_hash"
    table = _sql(nats_url, query)
    assert table.returncode == 0, table.stderr.decode()
    assert "ann" in table.stdout.decode() and "3 rows" in table.stdout.decode()
    as_csv = _sql(nats_url, query, "--format", "csv")
    assert list(csv.reader(io.StringIO(as_csv.stdout.decode()))) == [
        ["session", "answer", "task_hash"],
        ["ann", "accept", "1"],
        ["ann", "reject", "2"],
        ["bob", "ignore", "1"],
    ]
    as_json = json.loads(_sql(nats_url, query, "-f", "json").stdout)
    assert as_json[0] == {"session": "ann", "answer": "accept", "task_hash": 1}
    target = tmp_path / "out.parquet"
    written = _sql(nats_url, query, "-f", "parquet", "-o", str(target))
    assert written.returncode == 0, written.stderr.decode()
    assert pq.read_table(target).num_rows == 3
    per_session = _sql(nats_url, f'SELECT answer FROM "{ledger}-ann" ORDER BY answer_order', "-f", "csv")
    assert per_session.stdout.decode().split() == ["answer", "accept", "reject"]


def test_bad_input_gets_duckdbs_message_and_exit_1(nats_url, ledger):
    syntax = _sql(nats_url, "SELEC * FROM answers")
    assert syntax.returncode == 1
    assert b"syntax error" in syntax.stderr and b"Traceback" not in syntax.stderr
    refused = _sql(nats_url, "CREATE TABLE stolen AS SELECT * FROM answers")
    assert refused.returncode == 1
    assert b"read-only" in refused.stderr and b"Traceback" not in refused.stderr
    for writing in (
        "DELETE FROM answers",
        "COPY answers TO 'x.csv'",
        "ATTACH 'other.duckdb'",
        "SET threads=1",
    ):
        with pytest.raises(ReadOnlyQuery, match="read-only"):
            check_query(writing)
    unknown = _sql(nats_url, "--dataset", f"{ledger}x", "SELECT 1")
    assert unknown.returncode == 1 and b"unknown dataset" in unknown.stderr
    parquet = _sql(nats_url, "SELECT 1", "-f", "parquet")
    assert parquet.returncode == 1 and b"-o" in parquet.stderr


def test_the_connection_itself_is_read_only(nats_url, ledger):
    """Past the statement check, DuckDB's read-only database refuses writes too."""
    from ledger.connection import connect
    from projections.duck import open_projections

    async def attempt():
        nc = await connect(nats_url)
        try:
            with await open_projections(nc, dataset=ledger, read_only=True) as projections:
                with pytest.raises(Exception, match="read-only"):
                    projections.con.execute("CREATE TABLE t AS SELECT 1")
                with pytest.raises(ReadOnlyQuery):
                    projections.run_query("INSERT INTO answers VALUES (1)")
        finally:
            await nc.close()

    run(attempt())
    assert check_query("EXPLAIN SELECT 1")
    with pytest.raises(QueryError, match="one statement"):
        check_query("SELECT 1; SELECT 2")


def test_shell_reads_statements_and_dot_commands(nats_url, ledger):
    script = f".tables\nSELECT count(*) AS n\n  FROM answers WHERE dataset = '{ledger}';\nSELECT nope;\n.quit\nSELECT 2;\n"
    result = _sql(nats_url, input=script.encode())
    out = result.stdout.decode()
    assert "annotator_counts" in out and "disagreements" in out
    assert "│ 3 " in out
    assert b"nope" in result.stderr
    assert result.returncode == 1  # one statement failed


@pytest.mark.parametrize("command", ["sql", "agreement"])
def test_help_has_an_example(command):
    result = quorum_cli(command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout.decode()
