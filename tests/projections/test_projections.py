"""The DuckDB projections against the live reference path, on a real ledger.

`projections.datasets.answers` (plain Python over the stream) is the reference for the
dataset's semantics; the `answers` view must export byte-identical JSONL from it, with
the ledger wholly in the live tail or split between Parquet snapshots and the tail.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ledger.connection import connect
from ledger.store import Ledger
from projections.datasets import answers, to_prodigy
from projections.duck import VIEWS, open_projections
from projections.export import export_jsonl
from projections.snapshots import SnapshotSet
from projections.tail import TAIL_SCHEMA, entry_rows
from tests.conftest import ROOT, run
from tests.ledger_writes import DAY_MS, T0, answer, configure, drop, write

_encode = msgspec.json.Encoder().encode


def _scenario(rng: random.Random, dataset: str, mode: str) -> list[list]:
    """A messy ledger: retries, undo, late answers past the cap, a drop, a re-answer."""
    routing = {"none": {}, "k2": {"annotations_per_task": 2}, "full": {"feed_overlap": True}}[mode]
    batches: list[list] = [[configure(dataset, **routing)]]
    sessions = ["ann", "bob", "cat", "dan"]
    given: list = []
    for round_ in range(2):
        if round_ == 1:
            batches.append([drop(dataset, at=T0 + 5 * DAY_MS)])
        for _ in range(25):
            session = rng.choice(sessions)
            batch = []
            for _ in range(rng.randint(1, 5)):
                task = rng.randint(1, 12)
                decision = rng.choice(["accept", "accept", "reject", "ignore"])
                example = {"text": f"t{task} ✓", "label": "POS", "meta": {"n": task, "f": 0.1 * task}}
                key = f"key{rng.randrange(10**9):09d}" if rng.random() < 0.5 else None
                event = answer(dataset, session, task, decision, example=example, decision_id=key)
                batch.append(event)
                given.append(event)
            batches.append(batch)
            if rng.random() < 0.2 and given:
                batches.append([rng.choice(given)])  # a retried append, past the dedupe window
    return batches


async def _reference(nats_url: str, dataset: str, **filters: str) -> bytes:
    nc = await connect(nats_url)
    try:
        return b"".join([_encode(to_prodigy(e)) + b"\n" async for e in answers(nc, dataset, **filters)])
    finally:
        await nc.close()


async def _projected(
    nats_url: str, dataset: str, snapshots: SnapshotSet | None = None, **filters: str
) -> bytes:
    nc = await connect(nats_url)
    try:
        with await open_projections(nc, dataset=dataset, snapshots=snapshots) as projections:
            out = io.BytesIO()
            export_jsonl(projections, dataset, out, **filters)
            return out.getvalue()
    finally:
        await nc.close()


async def _snapshot(nats_url: str, root: Path, dataset: str, upto: int) -> SnapshotSet:
    """Parquet parts of `dataset` up to sequence `upto`, in the snapshot layout."""
    nc = await connect(nats_url)
    rows = []
    try:
        async for entry in Ledger(nc).read(dataset, to_seq=upto):
            rows.extend(entry_rows(entry))
    finally:
        await nc.close()
    folder = root / f"dataset={dataset}"
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for part in (rows[:half], rows[half:]):
        if part:
            name = f"part-{part[0]['seq']:020d}-{part[-1]['seq']:020d}.parquet"
            pq.write_table(pa.Table.from_pylist(part, schema=TAIL_SCHEMA), folder / name)
    return SnapshotSet(root, upto)


@pytest.mark.parametrize("mode", ["none", "k2", "full"])
def test_db_out_is_byte_identical_to_the_live_reference(nats_url, dataset_name, tmp_path, mode):
    rng = random.Random(f"{mode}-6")
    dataset = f"{dataset_name}{mode}"
    seqs = run(write(nats_url, _scenario(rng, dataset, mode)))
    expected = run(_reference(nats_url, dataset))
    assert expected.count(b"\n") > 5
    assert run(_projected(nats_url, dataset)) == expected
    split = seqs[len(seqs) // 2]
    snapshots = run(_snapshot(nats_url, tmp_path / "snapshots", dataset, split))
    assert len(snapshots.files(dataset)) == 2
    assert run(_projected(nats_url, dataset, snapshots)) == expected
    for filters in ({"session": "bob"}, {"answer": "reject"}, {"session": "ann", "answer": "accept"}):
        assert run(_projected(nats_url, dataset, snapshots, **filters)) == run(
            _reference(nats_url, dataset, **filters)
        )


async def _query(nats_url: str, sql: str, **kwargs) -> list[tuple]:
    nc = await connect(nats_url)
    try:
        with await open_projections(nc, **kwargs) as projections:
            table = projections.run_query(sql).read_all()
            return list(zip(*(column.to_pylist() for column in table.columns), strict=True))
    finally:
        await nc.close()


def test_a_just_recorded_answer_shows_at_once_over_snapshots(nats_url, dataset_name, tmp_path):
    seqs = run(write(nats_url, [[configure(dataset_name)], [answer(dataset_name, "ann", 1)]]))
    snapshots = run(_snapshot(nats_url, tmp_path, dataset_name, seqs[-1]))
    run(write(nats_url, [[answer(dataset_name, "bob", 2, "reject")]]))
    rows = run(
        _query(
            nats_url,
            f"SELECT session, answer FROM answers WHERE dataset = '{dataset_name}' ORDER BY answer_order",
            dataset=dataset_name,
            snapshots=snapshots,
        )
    )
    assert rows == [("ann", "accept"), ("bob", "reject")]


def test_counts_times_datasets_and_session_views(nats_url, dataset_name):
    d = dataset_name
    run(
        write(
            nats_url,
            [
                [configure(d, feed_overlap=True)],
                [answer(d, "ann", 1, at=T0, handed_out_at=T0 - 3000, annotator="ann")],
                [answer(d, "ann", 2, "reject", at=T0 + DAY_MS, handed_out_at=T0 + DAY_MS - 1500)],
                [answer(d, "bob", 1, "ignore", at=T0 + DAY_MS)],
            ],
        )
    )
    q = f"WHERE dataset = '{d}'"
    counts = run(
        _query(
            nats_url,
            f"SELECT session, day, answers, accept, reject, ignore FROM annotator_counts {q} ORDER BY ALL",
        )
    )
    assert [(s, str(day), *n) for s, day, *n in counts] == [
        ("ann", "2026-01-01", 1, 1, 0, 0),
        ("ann", "2026-01-02", 1, 0, 1, 0),
        ("bob", "2026-01-02", 1, 0, 0, 1),
    ]
    times = run(
        _query(nats_url, f"SELECT session, seconds FROM task_times {q} ORDER BY answered_at, session")
    )
    assert times[:2] == [("ann", 3.0), ("ann", 1.5)]
    info = run(_query(nats_url, f"SELECT recipe, feed_overlap, dropped FROM datasets {q}"))
    assert info == [("textcat.manual", True, False)]
    per_session = run(
        _query(
            nats_url, f'SELECT _task_hash, answer FROM "{d}-ann" ORDER BY answer_order', session_views=True
        )
    )
    assert per_session == [(1, "accept"), (2, "reject")]
    run(write(nats_url, [[drop(d, at=T0 + 2 * DAY_MS)]]))
    assert run(_query(nats_url, f"SELECT dropped FROM datasets {q}")) == [(True,)]
    assert run(_query(nats_url, f"SELECT count(*) FROM answers {q}")) == [(0,)]


def test_the_latest_decision_wins(nats_url, dataset_name):
    """Issue 11: accept → reject → accept by one session ends on accept (it ended on reject:
    the third answer had the first one's content id). A keyed retry and an unkeyed answer
    identical to the current one change nothing; caps and drops hold."""
    d = dataset_name
    run(
        write(
            nats_url,
            [
                [configure(d)],  # no overlap: one session per task
                [answer(d, "ann", 1, "accept", at=T0)],
                [answer(d, "ann", 1, "reject", at=T0 + 1000)],
                [answer(d, "ann", 1, "accept", at=T0 + 2000)],  # same content as the first: a decision
                [answer(d, "ann", 1, "accept", at=T0 + 2900)],  # identical to the current: no-op
                [answer(d, "bob", 1, "accept", at=T0 + 3500)],  # task 1 went to ann first
                [answer(d, "bob", 2, "accept", at=T0 + 4000, decision_id="k-bob-2-first")],
                [answer(d, "bob", 2, "reject", at=T0 + 4100, decision_id="k-bob-2-second")],
                [answer(d, "bob", 2, "accept", at=T0 + 4200, decision_id="k-bob-2-first")],  # a late retry
            ],
        )
    )
    expected = run(_reference(nats_url, d))
    assert run(_projected(nats_url, d)) == expected
    lines = [msgspec.json.decode(line) for line in expected.splitlines()]
    assert [(r["_session_id"], r["_task_hash"], r["answer"], r["_timestamp"]) for r in lines] == [
        (f"{d}-ann", 1, "accept", (T0 + 2000) // 1000),
        (f"{d}-bob", 2, "reject", (T0 + 4100) // 1000),
    ]
    # After a drop, the very same answer (same event id, in a new batch) counts again.
    again = [answer(d, "bob", 2, "accept", at=T0 + 4000), answer(d, "bob", 3, "accept", at=T0 + 6000)]
    run(write(nats_url, [[drop(d, at=T0 + 5000)], again]))
    expected = run(_reference(nats_url, d))
    assert run(_projected(nats_url, d)) == expected
    lines = [msgspec.json.decode(line) for line in expected.splitlines()]
    assert [(r["_session_id"], r["_task_hash"]) for r in lines] == [(f"{d}-bob", 2), (f"{d}-bob", 3)]


DOCS = ROOT / "docs" / "projections.md"


def test_every_view_and_column_is_documented(nats_url, dataset_name):
    async def columns():
        nc = await connect(nats_url)
        try:
            with await open_projections(nc, dataset=dataset_name) as projections:
                return {
                    view: [row[0] for row in projections.execute(f"DESCRIBE {view}").fetchall()]
                    for view in VIEWS
                }
        finally:
            await nc.close()

    text = DOCS.read_text()
    for view, names in run(columns()).items():
        assert f"### `{view}`" in text, f"docs/projections.md does not describe the view {view}"
        section = text.split(f"### `{view}`", 1)[1].split("\n### ", 1)[0]
        for column in names:
            assert f"`{column}`" in section, f"docs/projections.md: column {view}.{column} undocumented"


def test_the_plain_duckdb_recipe_in_the_docs_runs(nats_url, dataset_name, tmp_path):
    """The doc's SQL, pointed at a snapshot directory, then views.sql on top."""
    seqs = run(write(nats_url, [[configure(dataset_name)], [answer(dataset_name, "ann", 1)]]))
    run(_snapshot(nats_url, tmp_path, dataset_name, seqs[-1]))
    sql = DOCS.read_text().split("```sql\n-- duckdb\n", 1)[1].split("```", 1)[0]
    con = duckdb.connect()
    try:
        for statement in duckdb.extract_statements(sql.replace(".quorum/snapshots", str(tmp_path))):
            rows = con.execute(statement).fetchall()
        assert (dataset_name, "ann", "accept", 1) in rows
        views = (ROOT / "projections" / "views.sql").read_text()
        failed = []
        for statement in duckdb.extract_statements(views):
            try:
                con.execute(statement)
            except duckdb.CatalogException as exc:
                assert "quorum_" in str(exc)
                failed.append(statement.query.split("CREATE VIEW ", 1)[1].split()[0])
        assert failed == ["agreement_pairs", "agreement_summary", "span_agreement"]
        assert con.execute("SELECT session, answers FROM annotator_counts").fetchall() == [("ann", 1)]
    finally:
        con.close()
