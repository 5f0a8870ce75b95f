"""Issue 22: every ledger reader is bounded in bytes, so large ledger messages read back.

Ten NER answers with long texts make a ledger message of ~200 KB; two pull requests of
1,000 such messages once asked nats-server for more than the 64 MiB a client may have
pending, and it dropped the reader ("Slow Consumer Detected"). Here a ledger of more
than 64 MiB is read back whole by `db-out`, `stats`, `ledger snapshot` + `ledger verify`
and the projections' tail, with no snapshot; and the same on a server whose
`max_pending` is lowered to 2 MiB, with the reader's limit (`ledger.pull.READ_BYTES`)
lowered under it, so that the bound itself is what the test checks, in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ledger.pull
from ledger.connection import connect
from ledger.datasets import DatasetInfo, save_dataset
from ledger.errors import LedgerUnavailable
from ledger.events import AnswerRecorded, DatasetConfigured, answer_event_id, encode_batch
from ledger.natsd import nats_binary
from ledger.pull import pull_all
from ledger.snapshot_store import SnapshotStore
from ledger.snapshots import snapshot
from ledger.store import Ledger
from ledger.streams import EVENTS_STREAM, ensure_streams
from ledger.tailing import follow_events
from ledger.verify import verify
from projections.tail import read_tail
from quorum.cli.db_out import export_dataset
from quorum.cli.stats import collect_stats
from tests.conftest import free_port, quorum_cli, run

pytestmark = pytest.mark.timeout(85)

_WORDS = [
    "the",
    "annual",
    "report",
    "of",
    "Acme",
    "Corp",
    "in",
    "London",
    "said",
    "Ada",
    "Lovelace",
    "met",
    "Charles",
    "Babbage",
    "on",
    "Monday",
]


def _answers(dataset: str, first: int, words: int) -> list[AnswerRecorded]:
    """Ten NER answers, as one `give_answers` request of the web app appends them."""
    events = []
    for n in range(first, first + 10):
        tokens_text = [_WORDS[(n + i) % len(_WORDS)] for i in range(words)] + [str(n)]
        text = " ".join(tokens_text)
        tokens, start = [], 0
        for i, word in enumerate(tokens_text):
            tokens.append({"text": word, "start": start, "end": start + len(word), "id": i, "ws": True})
            start += len(word) + 1
        spans = [{"start": 0, "end": len(tokens_text[0]), "label": "ORG", "token_start": 0, "token_end": 0}]
        example = {"text": text, "tokens": tokens, "spans": spans, "_view_id": "ner_manual"}
        session = f"s{n % 3}"
        events.append(
            AnswerRecorded(
                event_id=answer_event_id(dataset, session, n, "accept", example),
                dataset=dataset,
                session_id=f"{dataset}-{session}",
                session=session,
                answer="accept",
                input_hash=n * 7919,
                task_hash=n,
                view_id="ner_manual",
                example={**example, "_input_hash": n * 7919, "_task_hash": n},
                handed_out_at=1_767_225_590_000 + n,
                recorded_at=1_767_225_600_000 + n,
            )
        )
    return events


async def _fill(url: str, dataset: str, messages: int, words: int) -> int:
    """A configured NER dataset of `messages` ledger messages; returns the ledger's bytes."""
    nc = await connect(url)
    try:
        kv = await ensure_streams(nc.jetstream())
        config = {"labels": ["ORG", "PERSON"]}
        await save_dataset(
            kv, DatasetInfo(dataset=dataset, recipe="ner.manual", view_id="ner_manual", config=config)
        )
        store = Ledger(nc)
        await store.append(
            [
                DatasetConfigured(
                    event_id=f"cfg-{dataset}",
                    dataset=dataset,
                    recipe="ner.manual",
                    view_id="ner_manual",
                    config=config,
                    recorded_at=1_767_225_600_000,
                )
            ]
        )
        total = 0
        for start in range(0, messages, 20):
            batches = [_answers(dataset, (start + k) * 10, words) for k in range(min(20, messages - start))]
            total += sum(len(encode_batch(b)) for b in batches)
            await asyncio.gather(*(store.append(b) for b in batches))
        return total
    finally:
        await nc.close()


def _start_nats(store: Path, *, max_pending: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """nats-server on `store`, optionally with a lowered `max_pending` (the client's limit)."""
    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    limits = f"max_pending: {max_pending}\nmax_payload: {max_pending // 2}\n" if max_pending else ""
    config = store / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n{limits}jetstream {{\n  store_dir: {json.dumps(str(store / "js"))}\n'
        "  sync_interval: always\n}\n"
    )
    process = subprocess.Popen(
        [str(nats_binary()), "-c", str(config)],
        stdout=(store / "nats.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"nats://127.0.0.1:{port}"
        assert process.poll() is None, (store / "nats.log").read_text()
        time.sleep(0.05)
    process.kill()
    raise AssertionError("nats-server did not start")


NatsFactory = Callable[..., str]


@pytest.fixture
def nats_factory(tmp_path: Path) -> Iterator[NatsFactory]:
    """Start nats-servers for one test; every one is stopped, also on failure."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, **limits: int) -> str:
        process, url = _start_nats(tmp_path / name, **limits)
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ledger_cli(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The `ledger` console script, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", *args],
        env={**os.environ, "NATS_URL": url, "COLUMNS": "200"},
        capture_output=True,
        timeout=60,
    )


def _rows(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def _slow_consumers(url_dir: Path) -> int:
    return (url_dir / "nats.log").read_text(errors="replace").count("Slow Consumer")


def test_ledger_over_64_mib_reads_back_whole_with_no_snapshot(
    nats_factory: NatsFactory, tmp_path: Path
) -> None:
    """The issue's reproduction, at the server's default limits: >64 MiB of NER answers."""
    url = nats_factory("big")
    dataset = "big_ner"
    size = run(_fill(url, dataset, messages=340, words=480), timeout=60)
    assert size > 64 * 1024 * 1024
    env = {"NATS_URL": url}
    snapshots = str(tmp_path / "snapshots")

    out = quorum_cli("db-out", dataset, "--snapshot-dir", snapshots, env=env, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    rows = _rows(out.stdout)
    assert len(rows) == 3400 and len({r["_task_hash"] for r in rows}) == 3400
    assert all(len(r["tokens"]) == 481 for r in rows)

    stats = quorum_cli("stats", dataset, env=env, timeout=60)
    assert stats.returncode == 0, stats.stderr.decode()
    assert "3,400" in stats.stdout.decode()

    tail = run(_tail_rows(url, tmp_path / "tail.parquet"), timeout=60)
    assert tail == 3401  # the answers and the dataset's configuration

    made = _ledger_cli(url, "snapshot", "--snapshot-dir", snapshots)
    assert made.returncode == 0, made.stderr.decode()
    checked = _ledger_cli(url, "verify", "--snapshot-dir", snapshots)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert "341 ledger messages compared" in checked.stderr.decode()
    assert _slow_consumers(tmp_path / "big") == 0


async def _tail_rows(url: str, path: Path) -> int:
    nc = await connect(url)
    try:
        return (await read_tail(nc, path)).rows
    finally:
        await nc.close()


def test_readers_stay_under_a_lowered_pending_limit(
    nats_factory: NatsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that drops a client with 2 MiB pending: readers limited to 256 KiB get all."""
    url = nats_factory("small", max_pending=2 * 1024 * 1024)
    dataset = "small_ner"
    size = run(_fill(url, dataset, messages=60, words=480), timeout=30)
    assert size > 3 * 2 * 1024 * 1024  # far more than the server lets a client have pending
    monkeypatch.setattr(ledger.pull, "READ_BYTES", 256 * 1024)
    snapshots = str(tmp_path / "snapshots")

    exported = tmp_path / "out.jsonl"
    with exported.open("wb") as out:
        assert export_dataset(url, dataset, out, snapshot_dir=snapshots) == 600
    assert len({r["_task_hash"] for r in _rows(exported.read_bytes())}) == 600
    (counts,) = collect_stats(url, dataset, snapshots)
    assert counts.answers == {"accept": 600} and counts.sessions == {"s0": 200, "s1": 200, "s2": 200}
    assert run(_tail_rows(url, tmp_path / "tail.parquet"), timeout=30) == 601

    async def snapshot_and_verify() -> tuple[int, int, bool]:
        nc = await connect(url)
        try:
            store = SnapshotStore(snapshots)
            made = await snapshot(nc, store)
            report = await verify(nc, store)
            return made.events, report.messages_checked, report.ok
        finally:
            await nc.close()

    assert run(snapshot_and_verify(), timeout=30) == (601, 61, True)

    async def ledger_tail() -> int:  # what `ledger tail --from-seq 1 --no-follow` reads
        nc = await connect(url)
        try:
            entries = follow_events(nc, dataset=dataset, start_seq=1, follow=False)
            return sum([len(entry.events) async for entry in entries])
        finally:
            await nc.close()

    assert run(ledger_tail(), timeout=30) == 601
    assert _slow_consumers(tmp_path / "small") == 0


async def _read_slowly(url: str, max_bytes: int, seqs: list[int]) -> None:
    """Read the whole ledger into `seqs`, blocking the event loop a while after the first
    message (as a reader busy with a big batch does): NATS holds what it was asked for."""
    nc = await connect(url)
    try:
        async for msg in pull_all(nc, EVENTS_STREAM, "quorum.events.>", 1, max_bytes=max_bytes):
            if not seqs:
                time.sleep(1.0)
            seqs.append(msg.metadata.sequence.stream)
    finally:
        await nc.close()


def test_a_request_bigger_than_the_pending_limit_is_dropped_and_names_the_sequence(
    nats_factory: NatsFactory, tmp_path: Path
) -> None:
    """Why the bound matters: asked for more than it may hold, the server drops the reader,
    and the error names where reading stopped; asked for less, the same reader gets all."""
    url = nats_factory("limits", max_pending=2 * 1024 * 1024)
    run(_fill(url, "limits_ner", messages=40, words=480), timeout=30)
    seqs: list[int] = []
    with pytest.raises(LedgerUnavailable) as lost:
        run(_read_slowly(url, 16 * 1024 * 1024, seqs), timeout=30)
    stopped_at = (seqs[-1] if seqs else 0) + 1
    assert f"lost NATS while reading the ledger at sequence {stopped_at}; everything before it" in str(
        lost.value
    )
    assert _slow_consumers(tmp_path / "limits") >= 1
    seqs.clear()
    run(_read_slowly(url, 256 * 1024, seqs), timeout=30)
    assert seqs == list(range(1, 42))


def test_a_message_bigger_than_a_request_is_read_alone(nats_factory: NatsFactory) -> None:
    url = nats_factory("oversize")

    async def scenario() -> list[int]:
        nc = await connect(url)
        try:
            await ensure_streams(nc.jetstream())
            sizes = [10_000, 900_000, 10_000, 10_000]
            for size in sizes:
                await nc.jetstream().publish("quorum.events.x.answers", b"x" * size, stream=EVENTS_STREAM)
            lengths = [
                len(m.data) async for m in pull_all(nc, EVENTS_STREAM, "quorum.events.>", 1, max_bytes=50_000)
            ]
            assert lengths == sizes
            return lengths
        finally:
            await nc.close()

    run(scenario(), timeout=30)


def test_a_reader_whose_consumer_vanishes_goes_on_from_the_last_sequence(nats_factory: NatsFactory) -> None:
    """A stall (here: the consumer deleted under the reader) is retried on a fresh
    consumer from the last sequence read: nothing twice, nothing missing."""
    url = nats_factory("vanish")

    async def scenario() -> list[int]:
        nc = await connect(url)
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            for _ in range(30):
                await js.publish("quorum.events.x.answers", b"x" * 20_000, stream=EVENTS_STREAM)
            seqs: list[int] = []
            async for msg in pull_all(nc, EVENTS_STREAM, "quorum.events.>", 1, 4, max_bytes=50_000):
                seqs.append(msg.metadata.sequence.stream)
                if len(seqs) == 10:
                    await js.delete_consumer(EVENTS_STREAM, msg.metadata.consumer)
            return seqs
        finally:
            await nc.close()

    assert run(scenario(), timeout=40) == list(range(1, 31))
