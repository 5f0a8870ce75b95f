"""The ledger as history: snapshots, replay, time travel, verify, export/import, compact.

Every test runs against its own real nats-server (the faults here — purged streams,
unreadable events — must not leak into other tests' ledger) and real Parquet files,
and drives the `ledger` and `quorum` commands as a user would.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import msgspec
import pyarrow.parquet as pq
import pytest

from ledger.columns import EVENT_SCHEMA
from ledger.connection import connect
from ledger.natsd import start_embedded
from ledger.snapshot_store import MANIFEST_NAME, SnapshotStore
from ledger.streams import EVENTS_STREAM, events_subject
from tests.conftest import quorum_cli, run
from tests.ledger_writes import DAY_MS, T0, answer, configure, drop, register, write


def ledger_cli(url: str, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NATS_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    return result.stderr.decode() + result.stdout.decode()


def failed(result: subprocess.CompletedProcess[bytes]) -> str:
    text = result.stderr.decode() + result.stdout.decode()
    assert result.returncode == 1, text
    assert "Traceback" not in text
    return " ".join(text.split())


def db_out(url: str, dataset: str, *args: str) -> bytes:
    result = quorum_cli("db-out", dataset, *args, env={"NATS_URL": url})
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def ner_answer(dataset: str, session: str, task: int, decision: str = "accept"):
    text = f"Ada Lovelace met Charles Babbage in London, story {task}."
    spans = [{"start": 0, "end": 12, "label": "PERSON", "token_start": 0, "token_end": 1}]
    if task % 3:
        spans.append({"start": 36, "end": 42, "label": "LOC", "token_start": 6, "token_end": 6})
    example = {"text": text, "spans": spans, "meta": {"n": task}}
    return answer(dataset, session, task, decision, view_id="ner_manual", example=example)


def populate(url: str, datasets=("news", "topics"), answers=60, seed=1) -> list[int]:
    """Configured datasets with answers by three sessions, in batches of 1-6."""
    rng = random.Random(seed)
    batches: list[list] = [[configure(d)] for d in datasets]
    for _ in range(answers // 3):
        dataset = rng.choice(datasets)
        session = rng.choice(["ann", "bob", "cat"])
        make = ner_answer if dataset == datasets[0] else answer
        batch = [make(dataset, session, rng.randint(1, 30), rng.choice(["accept", "reject", "ignore"]))]
        batch += [make(dataset, session, rng.randint(1, 30)) for _ in range(rng.randint(0, 5))]
        batches.append(batch)
    seqs = run(write(url, batches))
    for dataset in datasets:
        run(register(url, dataset))
    return seqs


def manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text())


def snapshot_rows(root: Path) -> list[dict]:
    files = [str(root / f["path"]) for f in manifest(root)["files"]]
    if not files:
        return []
    return (
        duckdb.sql(f"SELECT * FROM read_parquet({files!r}) ORDER BY seq, position")
        .to_arrow_table()
        .to_pylist()
    )


async def _stream_state(url: str):
    nc = await connect(url)
    try:
        return (await nc.jetstream().stream_info(EVENTS_STREAM)).state
    finally:
        await nc.close()


def test_snapshot_writes_documented_zstd_parquet_per_dataset(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    out = ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    state = run(_stream_state(server.url))
    assert f"to sequence {state.last_seq}" in " ".join(out.split())
    parts = sorted(snaps.glob("dataset=*/part-*.parquet"))
    assert {p.parent.name for p in parts} == {"dataset=news", "dataset=topics"}
    for part in parts:
        first, last = (int(n) for n in part.stem.split("-")[1:])
        meta = pq.ParquetFile(part).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        table = pq.read_table(part)
        assert table.schema.names == EVENT_SCHEMA.names
        assert table.schema.field("task_hash").type == EVENT_SCHEMA.field("task_hash").type
        assert (min(table["seq"].to_pylist()), max(table["seq"].to_pylist())) == (first, last)
    rows = snapshot_rows(snaps)
    dumped = [
        json.loads(line) for line in ok(ledger_cli(server.url, "dump")).splitlines() if line.startswith("{")
    ]
    assert len(rows) == len(dumped)
    assert [r["event_id"] for r in rows] == [d["event_id"] for d in dumped]
    spans = next(r["spans"] for r in rows if r["dataset"] == "news" and r["kind"] == "answer_recorded")
    assert spans[0] == {"start": 0, "end": 12, "label": "PERSON", "token_start": 0, "token_end": 1}
    assert manifest(snaps)["through_seq"] == state.last_seq
    # A second run has nothing to add and changes nothing.
    before = {p: p.stat().st_mtime_ns for p in parts}
    assert "snapshotted 0 events" in ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    assert {p: p.stat().st_mtime_ns for p in snaps.glob("dataset=*/part-*.parquet")} == before


def test_projections_read_snapshots_plus_the_live_tail(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    no_snapshots = db_out(server.url, "news", "--snapshot-dir", str(tmp_path / "none"))
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps), "--file-rows", "7"))
    assert len(manifest(snaps)["files"]) > 4
    assert db_out(server.url, "news", "--snapshot-dir", str(snaps)) == no_snapshots
    run(write(server.url, [[ner_answer("news", "dora", 99)]]))
    fresh = db_out(server.url, "news", "--snapshot-dir", str(snaps))
    assert b'"_session_id":"news-dora"' in fresh
    assert fresh.count(b"\n") == no_snapshots.count(b"\n") + 1
    behind = ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))
    assert "behind" in behind and "snapshots are sound" in behind


def test_a_snapshotter_killed_at_any_point_resumes_without_duplicates_or_gaps(server, tmp_path):
    batches = [[configure("big")]]
    batches += [[answer("big", f"s{n % 7}", n * 10 + k) for k in range(10)] for n in range(1500)]
    run(write(server.url, batches), timeout=120)
    snaps = tmp_path / "snaps"
    command = [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", "snapshot"]
    command += ["--snapshot-dir", str(snaps), "--file-rows", "500", "--row-group-rows", "100"]
    env = {**os.environ, "NATS_URL": server.url}
    rng = random.Random(5)
    kills = 0
    for attempt in range(6):
        workers = ["--workers", "3" if attempt % 2 else "1"]  # killed in one process or in a pool of three
        process = subprocess.Popen(
            command + workers, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline and not any(snaps.rglob("*.*")):
            time.sleep(0.005)  # wait until it writes, then kill it somewhere mid-run
        time.sleep(rng.uniform(0, 0.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
    assert kills >= 2
    # A killed run may have left a finished file the manifest never listed.
    if (snaps / MANIFEST_NAME).exists():
        stray = snaps / "dataset=big" / f"part-{99_999_998:020d}-{99_999_999:020d}.parquet"
        stray.write_bytes(b"PAR1 half written")
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    rows = snapshot_rows(snaps)
    assert len(rows) == 15_001
    assert len({(r["seq"], r["position"]) for r in rows}) == len(rows)
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert not [
        p for p in snaps.rglob("*") if p.is_file() and p.suffix != ".parquet" and p.name != MANIFEST_NAME
    ]
    assert not (snaps / "dataset=big" / f"part-{99_999_998:020d}-{99_999_999:020d}.parquet").exists()
    assert "snapshots are sound" in ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))


def test_replay_after_deleting_every_snapshot_is_byte_identical(server, tmp_path):
    populate(server.url, answers=90)
    run(write(server.url, [[drop("topics", at=T0 + DAY_MS)], [answer("topics", "ann", 5, "reject")]]))
    snaps = tmp_path / "snaps"
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps), "--file-rows", "20"))
    before = {d: db_out(server.url, d, "--snapshot-dir", str(snaps)) for d in ("news", "topics")}
    rows = snapshot_rows(snaps)
    for path in snaps.rglob("*.parquet"):
        path.unlink()
    (snaps / MANIFEST_NAME).unlink()
    ok(ledger_cli(server.url, "replay", "--snapshot-dir", str(snaps), "--file-rows", "20"))
    assert snapshot_rows(snaps) == rows
    assert {d: db_out(server.url, d, "--snapshot-dir", str(snaps)) for d in ("news", "topics")} == before
    # Three worker processes, each writing its own slice of the ledger: the same events.
    ok(ledger_cli(server.url, "replay", "--snapshot-dir", str(snaps), "--workers", "3"))
    assert len(manifest(snaps)["files"]) >= 4
    assert snapshot_rows(snaps) == rows
    assert {d: db_out(server.url, d, "--snapshot-dir", str(snaps)) for d in ("news", "topics")} == before
    # Replaying one dataset in place rewrites only its files, same content.
    ok(ledger_cli(server.url, "replay", "--dataset", "news", "--snapshot-dir", str(snaps)))
    assert snapshot_rows(snaps) == rows
    assert db_out(server.url, "news", "--snapshot-dir", str(snaps)) == before["news"]


def test_time_travel_shows_the_dataset_as_it_was(server, tmp_path):
    monday, tuesday = T0 + 3 * DAY_MS, T0 + 4 * DAY_MS
    seqs = run(
        write(
            server.url,
            [
                [configure("news")],
                [answer("news", "ann", 1, "accept", at=monday), answer("news", "bob", 2, at=monday + 1)],
                [answer("news", "ann", 1, "reject", at=tuesday)],
                [answer("news", "cat", 3, at=tuesday + 1)],
            ],
        )
    )
    run(register(server.url, "news"))
    now = db_out(server.url, "news")
    assert now.count(b"\n") == 3 and b'"answer":"reject"' in now
    out = tmp_path / "monday"
    ok(ledger_cli(server.url, "replay", "--until", "2026-01-04", "--out", str(out)))
    then = db_out(server.url, "news", "--snapshot-dir", str(out))
    assert then.count(b"\n") == 2
    assert b'"answer":"reject"' not in then and b'"_session_id":"news-cat"' not in then
    assert db_out(server.url, "news", "--until", "2026-01-04") == then
    assert db_out(server.url, "news", "--to-seq", str(seqs[1])) == then
    to_seq = tmp_path / "to-seq"
    ok(ledger_cli(server.url, "replay", "--to-seq", str(seqs[1]), "--out", str(to_seq)))
    assert db_out(server.url, "news", "--snapshot-dir", str(to_seq)) == then
    # A cut is not followed or replayed in place, and needs a new directory.
    assert "time-travel" in failed(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(out)))
    assert "not empty" in failed(ledger_cli(server.url, "replay", "--to-seq", "2", "--out", str(out)))
    result = ledger_cli(server.url, "replay", "--until", "2026-01-04")
    assert result.returncode == 2 and b"--out" in result.stderr
    result = ledger_cli(server.url, "replay", "--until", "last monday", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and b"ISO 8601" in result.stderr


def test_verify_names_corrupt_and_missing_files_and_replay_repairs_them(server, tmp_path):
    populate(server.url, answers=120)
    snaps = tmp_path / "snaps"
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps), "--file-rows", "25"))
    expected = db_out(server.url, "news", "--snapshot-dir", str(snaps))
    assert "snapshots are sound" in ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))
    files = manifest(snaps)["files"]
    news = [f for f in files if f["dataset"] == "news"]
    truncated, garbled = snaps / news[0]["path"], snaps / news[-1]["path"]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = bytearray(garbled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    garbled.write_bytes(bytes(data))
    (snaps / next(f for f in files if f["dataset"] == "topics")["path"]).unlink()
    report = failed(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))
    assert news[0]["path"] in report and news[-1]["path"] in report
    assert "corrupt" in report and "missing" in report
    assert "ledger replay --dataset news" in report and "ledger replay --dataset topics" in report
    unreadable = failed(
        quorum_cli("db-out", "news", "--snapshot-dir", str(snaps), env={"NATS_URL": server.url})
    )
    assert "news" in unreadable and "ledger replay --dataset" in unreadable and "ledger verify" in unreadable
    # A rewrite larger than one file (--file-rows 10) swaps in every new file at once.
    ok(
        ledger_cli(
            server.url, "replay", "--dataset", "news", "--snapshot-dir", str(snaps), "--file-rows", "10"
        )
    )
    assert len([f for f in manifest(snaps)["files"] if f["dataset"] == "news"]) > 2
    ok(ledger_cli(server.url, "replay", "--dataset", "topics", "--snapshot-dir", str(snaps)))
    assert "snapshots are sound" in ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))
    assert db_out(server.url, "news", "--snapshot-dir", str(snaps)) == expected


def test_a_snapshot_directory_of_another_ledger_is_refused(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    other = start_embedded(tmp_path / "other-nats")
    try:
        populate(other.url)
        for args in (("snapshot",), ("verify",), ("replay",)):
            message = failed(ledger_cli(other.url, *args, "--snapshot-dir", str(snaps)))
            assert "another ledger" in message
        result = quorum_cli("db-out", "news", "--snapshot-dir", str(snaps), env={"NATS_URL": other.url})
        assert result.returncode == 1 and b"another ledger" in result.stderr
    finally:
        other.stop()
    strays = tmp_path / "strays"
    (strays / "dataset=news").mkdir(parents=True)
    (strays / "dataset=news" / f"part-{1:020d}-{2:020d}.parquet").write_bytes(b"x")
    assert "not written by `ledger snapshot`" in failed(
        ledger_cli(server.url, "snapshot", "--snapshot-dir", str(strays))
    )


def test_a_history_gap_is_an_error_not_a_partial_replay(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    covered = manifest(snaps)
    seqs = run(write(server.url, [[answer("news", "dan", n)] for n in range(100, 110)]))

    async def purge_to(seq: int) -> None:
        nc = await connect(server.url)
        try:
            await nc.jetstream().purge_stream(EVENTS_STREAM, seq=seq)
        finally:
            await nc.close()

    run(purge_to(seqs[3]))
    message = failed(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    assert "history gap" in message and "Nothing was written" in message
    assert manifest(snaps) == covered
    assert "history gap" in failed(
        quorum_cli("db-out", "news", "--snapshot-dir", str(snaps), env={"NATS_URL": server.url})
    )
    # Without snapshots, the stream alone can't give the whole history either.
    result = quorum_cli(
        "db-out", "news", "--snapshot-dir", str(tmp_path / "none"), env={"NATS_URL": server.url}
    )
    assert result.returncode == 1 and b"history gap" in result.stderr


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_message_deleted_mid_stream_is_a_history_gap(server, tmp_path, workers):
    seqs = populate(server.url)

    async def delete(seq: int) -> None:
        nc = await connect(server.url)
        try:
            await nc.jetstream().delete_msg(EVENTS_STREAM, seq)
        finally:
            await nc.close()

    run(delete(seqs[len(seqs) // 2]))
    snaps = tmp_path / "snaps"
    message = failed(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps), "--workers", workers))
    assert "history gap" in message
    assert manifest(snaps)["files"] == [] and not list(snaps.rglob("*.parquet"))


def test_an_unknown_event_version_is_a_clear_error_and_commits_nothing_past_it(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    covered = manifest(snaps)["through_seq"]
    run(write(server.url, [[answer("news", "dan", 77)]]))
    future = answer("news", "eve", 78)
    raw = msgspec.json.encode(
        {"events": [{**msgspec.structs.asdict(future), "kind": "answer_recorded", "v": 99}]}
    )

    async def publish() -> None:
        nc = await connect(server.url)
        try:
            await nc.jetstream().publish("quorum.events.news.answers", raw, stream=EVENTS_STREAM)
        finally:
            await nc.close()

    run(publish())
    message = failed(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    assert "version 99" in message and "upgrade Quorum" in message
    assert manifest(snaps)["through_seq"] == covered
    assert not list(snaps.rglob("*.tmp"))
    assert "version 99" in failed(ledger_cli(server.url, "replay", "--snapshot-dir", str(snaps)))


def test_an_unwritable_or_full_target_is_an_error_with_nothing_partial_visible(server, tmp_path):
    populate(server.url, answers=300)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert "could not write" in failed(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(blocker)))

    def small_disk() -> None:  # the snapshotter may write at most 3 kB per file: a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3_000, 3_000))

    snaps = tmp_path / "snaps"
    result = ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps), preexec_fn=small_disk)
    assert "could not write" in failed(result)
    assert not list(snaps.rglob("*.parquet")) and not list(snaps.rglob("*.tmp"))
    assert manifest(snaps)["files"] == [] and manifest(snaps)["through_seq"] == 0
    ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    assert "snapshots are sound" in ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))


def test_drop_then_compact_purges_the_dataset_and_keeps_the_rest_identical(server, tmp_path):
    populate(server.url, answers=150)
    snaps = tmp_path / "snaps"
    for round_ in range(3):  # several small commits, for compaction to merge
        run(write(server.url, [[answer("topics", "ann", 900 + 10 * round_ + n)] for n in range(3)]))
        ok(ledger_cli(server.url, "snapshot", "--snapshot-dir", str(snaps)))
    keep = db_out(server.url, "topics", "--snapshot-dir", str(snaps))
    [tombstone] = run(write(server.url, [[drop("news", at=T0 + DAY_MS)]]))
    files_before = len(manifest(snaps)["files"])
    assert files_before >= 4
    assert "nothing purged" in failed(
        ledger_cli(server.url, "compact", "--snapshot-dir", str(snaps), input=b"n\n")
    )

    async def purge_news() -> None:
        nc = await connect(server.url)
        try:
            await nc.jetstream().purge_stream(
                EVENTS_STREAM, subject=events_subject("news", ">"), seq=tombstone
            )
        finally:
            await nc.close()

    # As if a compaction were killed right after its purge: the rerun must account for it.
    run(purge_news())
    out = ok(ledger_cli(server.url, "compact", "--yes", "--snapshot-dir", str(snaps), "--file-rows", "1000"))
    assert "dropped datasets: news" in " ".join(out.split())
    dumped = [
        json.loads(line) for line in ok(ledger_cli(server.url, "dump", "--dataset", "news")).splitlines()
    ]
    assert [d["kind"] for d in dumped] == ["dataset_dropped"]
    rows = snapshot_rows(snaps)
    assert [r["kind"] for r in rows if r["dataset"] == "news"] == ["dataset_dropped"]
    assert not any("Lovelace" in (r["example"] or "") for r in rows)
    assert len(manifest(snaps)["files"]) < files_before
    assert db_out(server.url, "topics", "--snapshot-dir", str(snaps)) == keep
    assert "snapshots are sound" in ok(ledger_cli(server.url, "verify", "--snapshot-dir", str(snaps)))
    # What remains replays byte-identically, from the (purged) stream alone.
    fresh = tmp_path / "fresh"
    ok(ledger_cli(server.url, "replay", "--snapshot-dir", str(fresh)))
    assert snapshot_rows(fresh) == rows
    assert db_out(server.url, "topics", "--snapshot-dir", str(fresh)) == keep


def test_export_then_import_into_a_fresh_server_gives_identical_datasets(server, tmp_path):
    populate(server.url, answers=120)
    run(write(server.url, [[drop("topics", at=T0 + DAY_MS)]]))
    expected = db_out(server.url, "news")
    archive = tmp_path / "archive"
    ok(ledger_cli(server.url, "export", str(archive)))
    assert "not empty" in failed(ledger_cli(server.url, "export", str(archive)))
    assert "this very ledger" in failed(ledger_cli(server.url, "import", str(archive)))
    target = start_embedded(tmp_path / "target-nats")
    try:
        out = ok(ledger_cli(target.url, "import", str(archive)))
        assert "configured news" in out and "topics" not in out.split("configured")[-1]
        assert db_out(target.url, "news") == expected
        messages = run(_stream_state(target.url)).messages
        assert "already imported" in ok(ledger_cli(target.url, "import", str(archive)))
        assert run(_stream_state(target.url)).messages == messages
        assert db_out(target.url, "news") == expected
        db = quorum_cli("db-out", "topics", env={"NATS_URL": target.url})
        assert db.returncode == 1  # dropped before the export: not configured again
    finally:
        target.stop()
    third = start_embedded(tmp_path / "third-nats")
    try:
        snaps = tmp_path / "third-snaps"
        ok(ledger_cli(third.url, "replay", "--from", str(archive), "--snapshot-dir", str(snaps)))
        assert db_out(third.url, "news", "--snapshot-dir", str(snaps)) == expected
    finally:
        third.stop()
    assert "not a Quorum archive" in failed(ledger_cli(server.url, "import", str(tmp_path / "nowhere")))


def test_follow_mode_snapshots_new_events_and_stops_cleanly(server, tmp_path):
    populate(server.url)
    snaps = tmp_path / "snaps"
    command = [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()"]
    command += ["snapshot", "--follow", "--interval", "0.5", "--snapshot-dir", str(snaps)]
    process = subprocess.Popen(
        command, env={**os.environ, "NATS_URL": server.url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        seqs = run(write(server.url, [[answer("topics", "zed", 500 + n)] for n in range(5)]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (snaps / MANIFEST_NAME).exists() and manifest(snaps)["through_seq"] >= seqs[-1]:
                break
            time.sleep(0.2)
        assert manifest(snaps)["through_seq"] >= seqs[-1]

        async def consumer_lag() -> int:
            nc = await connect(server.url)
            try:
                return (await nc.jetstream().consumer_info(EVENTS_STREAM, "quorum-snapshotter")).num_pending
            finally:
                await nc.close()

        assert run(consumer_lag()) == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert any(r["session"] == "zed" for r in snapshot_rows(snaps))
    store = SnapshotStore(snaps)
    assert store.read_manifest() is not None and not list(snaps.rglob("*.tmp"))
