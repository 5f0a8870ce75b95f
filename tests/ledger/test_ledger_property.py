"""Property: for any ledger and any snapshot points, snapshots + live tail == full replay.

Each example starts a fresh ledger (the EVENTS stream is deleted and created again on
one real nats-server), appends random batches — answers, retries, reconfigurations,
drops, over two datasets — and runs the snapshotter after randomly chosen batches with
random file sizes. The events the projections see, and every dataset's db-out, must
then be the same three ways: snapshots plus tail, the stream alone, and a full replay.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.connection import connect
from ledger.natsd import EmbeddedNats, start_embedded
from ledger.snapshot_store import SnapshotStore
from ledger.snapshots import SnapshotOptions, replay, snapshot
from ledger.store import Ledger
from ledger.streams import EVENTS_STREAM, ensure_streams
from projections.duck import open_projections
from projections.export import export_jsonl
from projections.snapshots import SnapshotSet
from tests.ledger_writes import answer, configure, drop

DATASETS = ("alpha", "beta")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    nats = start_embedded(tmp_path_factory.mktemp("property-nats"))
    try:
        yield nats
    finally:
        nats.stop()


event = st.one_of(
    st.builds(
        lambda d, s, t, a: answer(d, s, t, a),
        st.sampled_from(DATASETS),
        st.sampled_from(["ann", "bob", "cat"]),
        st.integers(1, 6),
        st.sampled_from(["accept", "reject", "ignore"]),
    ),
    st.builds(
        lambda d, k: configure(d, annotations_per_task=k), st.sampled_from(DATASETS), st.integers(1, 3)
    ),
    st.builds(lambda d, n: drop(d, at=n), st.sampled_from(DATASETS), st.integers(0, 10**6)),
)
ledgers = st.lists(st.lists(event, min_size=1, max_size=4), min_size=1, max_size=14)


async def _views(nc, snapshots: SnapshotSet | None = None, snapshot_dir: Path | None = None):
    with await open_projections(nc, snapshots=snapshots, snapshot_dir=snapshot_dir) as projections:
        events = projections.execute("SELECT * FROM events ORDER BY seq, position").fetchall()
        exports = {}
        for dataset in DATASETS:
            out = io.BytesIO()
            export_jsonl(projections, dataset, out)
            exports[dataset] = out.getvalue()
        return events, exports


async def _check(url: str, batches, points: set[int], file_rows: int, root: Path) -> None:
    nc = await connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        await js.delete_stream(EVENTS_STREAM)  # a new ledger for every example
        await ensure_streams(js)
        ledger = Ledger(nc)
        store = SnapshotStore(root / "snaps")
        options = SnapshotOptions(file_rows=file_rows, row_group_rows=max(1, file_rows // 2))
        for index, batch in enumerate(batches):
            for event in batch:  # one message per event kind and dataset, as the feed appends
                await ledger.append([event])
            if index in points:
                await snapshot(nc, store, options)
        live = await _views(nc, snapshot_dir=root / "snaps")
        stream_only = await _views(nc, snapshots=SnapshotSet())
        await replay(nc, SnapshotStore(root / "replayed"), options)
        replayed = await _views(nc, snapshot_dir=root / "replayed")
    finally:
        await nc.close()
    assert live == stream_only
    assert replayed == stream_only
    assert sum(len(b) for b in batches) >= len(stream_only[0])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=ledgers, points=st.sets(st.integers(0, 13)), file_rows=st.integers(1, 12))
def test_snapshots_plus_tail_equal_a_full_replay(server, batches, points, file_rows):
    root = Path(tempfile.mkdtemp(prefix="quorum-property-"))
    try:
        asyncio.run(asyncio.wait_for(_check(server.url, batches, points, file_rows, root), 120))
    finally:
        shutil.rmtree(root, ignore_errors=True)
