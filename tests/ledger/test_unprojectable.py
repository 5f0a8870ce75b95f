"""Readers never crash on a ledger that exists (issue 11 §2).

Before answers were checked against what was served, a worker appended whatever the
browser sent, so ledgers hold answers no snapshot row can take. Here such answers are
appended straight through `Ledger.append`, as that server did, among good ones — some in
the same ledger message — and every reader must finish, show every good answer, and
skip each bad event with one warning naming it; `ledger verify` names them and
`ledger quarantine` sets them aside; `quorum drop` + `ledger compact` remove them.

Each test runs its own real nats-server: bad events and quarantine records must not
leak into other tests' ledgers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from ledger import projectable
from ledger.columns import ColumnBuffer, entry_rows, events_from_rows, message_rows
from ledger.connection import connect
from ledger.events import EventsQuarantined, QuarantinedEvent, decode_batch, encode_batch
from ledger.projectable import ExampleFields, NotProjectable, Skips, example_fields, read_message
from ledger.snapshot_store import SnapshotStore
from ledger.snapshots import snapshot
from ledger.streams import EVENTS_STREAM, events_subject
from projections.datasets import answers, to_prodigy
from projections.reports import dashboard
from tests.conftest import quorum_cli, run
from tests.ledger_writes import answer, configure, register, write

pytestmark = pytest.mark.timeout(90)

DATASET = "news"
TEXT = "Ada Lovelace met Charles Babbage."
GOOD_SPANS = [{"start": 0, "end": 12, "label": "PERSON", "token_start": 0, "token_end": 1}]

# Each bad example, and a piece of the reason a reader gives for skipping it.
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "span is a number": ({"spans": [1]}, "example.spans[0]: expected `object`, got `int`"),
    "start is a string": (
        {"spans": [{"start": "0", "end": 3, "label": "A"}]},
        "example.spans[0].start: expected `int`, got `str`",
    ),
    "label is a number": (
        {"spans": [{"start": 0, "end": 3, "label": 5}]},
        "example.spans[0].label: expected `str`, got `int`",
    ),
    "start is 2**63": (
        {"spans": [{"start": 2**63, "end": 2**63 + 1, "label": "A"}]},
        "example.spans[0].start: expected `int` <= 9223372036854775807",
    ),
    "end is 2**64": (
        {"spans": [{"start": 0, "end": 2**64, "label": "A"}]},
        "example.spans[0].end: expected `int` <= 9223372036854775807",
    ),
    "spans is no list": (
        {"spans": {"start": 0, "end": 3}},
        "example.spans: expected `array | null`, got `object`",
    ),
    "accept holds objects": (
        {"accept": [{"id": "A"}, 1.5]},
        "example.accept[0]: expected `int | str`, got `object`",
    ),
    "a huge int in meta": (
        {"spans": GOOD_SPANS, "meta": {"ids": [1, 2**70]}},
        "example.meta.ids[1]: 1180591620717411303424 does not fit a signed 64-bit integer",
    ),
}


@dataclass(frozen=True)
class Bad:
    address: str
    reason: str
    event_id: str


@dataclass(frozen=True)
class Ledger:
    url: str
    bad: list[Bad]
    good: set[tuple[str, int]]
    """(session, task hash) of every current good answer."""


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are said once per process; every test here starts as a fresh process would."""
    monkeypatch.setattr(projectable, "_warned", set())


def ner(session: str, task: int, example: dict[str, Any] | None = None):
    body = {"text": f"{TEXT} ({task})", "spans": GOOD_SPANS} if example is None else {"text": TEXT, **example}
    return answer(DATASET, session, task, view_id="ner_manual", example=body)


def bad_ledger(url: str) -> Ledger:
    """Good answers by three sessions and one answer per bad example, in nine messages."""
    bad = [ner("ann" if i % 2 else "bob", 100 + i, example) for i, (example, _) in enumerate(BAD.values())]
    reasons = [reason for _, reason in BAD.values()]
    batches = [
        [configure(DATASET, feed_overlap=True, view_id="ner_manual", recipe="ner.manual", labels=["PERSON"])],
        [ner("ann", 1), bad[0], ner("ann", 2)],  # a bad event takes nothing of its batch with it
        [bad[1]],
        [bad[2], ner("bob", 1)],
        [bad[3]],
        [bad[4]],
        [ner("bob", 2), bad[5], bad[6]],
        [bad[7]],
        [ner("cat", 1), ner("cat", 3)],
    ]
    seqs = run(write(url, batches))
    run(register(url, DATASET, recipe="ner.manual", view_id="ner_manual"))
    places = [
        (seqs[1], 1),
        (seqs[2], 0),
        (seqs[3], 0),
        (seqs[4], 0),
        (seqs[5], 0),
        (seqs[6], 1),
        (seqs[6], 2),
    ]
    places.append((seqs[7], 0))
    found = [
        Bad(f"{seq}:{position}", reason, event.event_id)
        for (seq, position), reason, event in zip(places, reasons, bad, strict=True)
    ]
    good = {("ann", 1), ("ann", 2), ("bob", 1), ("bob", 2), ("cat", 1), ("cat", 3)}
    return Ledger(url, found, good)


def ledger_cli(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NATS_URL": url, "COLUMNS": "200"}
    command = [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, timeout=60)


def quorum(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return quorum_cli(*args, env={"NATS_URL": url})


def finished(result: subprocess.CompletedProcess[bytes], code: int = 0) -> tuple[str, str]:
    """stdout and stderr (whitespace folded, as rich may wrap it) of a command that exited with `code`."""
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == code, out + err
    assert "Traceback" not in err
    return out, " ".join(err.split())


def assert_warned_once_each(stderr: str, bad: list[Bad]) -> None:
    assert stderr.count("warning: skipped ledger event") == len(bad), stderr
    for item in bad:
        said = f"warning: skipped ledger event {item.address} of dataset '{DATASET}' (answer_recorded {item.event_id})"
        assert stderr.count(said) == 1, (item, stderr)
        assert item.reason in stderr.split(said, 1)[1].split("warning:", 1)[0], (item, stderr)


def assert_no_warnings(stderr: str) -> None:
    assert "warning: skipped" not in stderr, stderr


def db_out_records(stdout: str) -> set[tuple[str, int]]:
    return {
        (r["_session_id"].split("-", 1)[1], r["_task_hash"]) for r in map(json.loads, stdout.splitlines())
    }


async def _reference(url: str) -> bytes:
    nc = await connect(url)
    try:
        encode = msgspec.json.Encoder().encode
        return b"".join([encode(to_prodigy(e)) + b"\n" async for e in answers(nc, DATASET)])
    finally:
        await nc.close()


async def _dashboard(url: str) -> dict[str, Any]:
    nc = await connect(url)
    try:
        return await dashboard(nc, DATASET)
    finally:
        await nc.close()


# --- the rule ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD))
def test_the_rule_says_why_an_example_cant_be_projected(name):
    example, reason = BAD[name]
    example = {"text": TEXT, **example}
    for form in (example, msgspec.json.encode(example)):  # decoded, and as the ledger holds it
        with pytest.raises(NotProjectable) as caught:
            example_fields(form)
        assert str(caught.value) == reason


@pytest.mark.parametrize(
    "example",
    [
        {"text": TEXT},
        {"text": TEXT, "spans": None, "label": 5},  # a label that is no string is only not typed
        {"text": TEXT, "spans": GOOD_SPANS, "accept": ["A", 7]},  # choice ids may be integers
        {"text": "call 123456789012345678901234", "meta": {"hash": -(2**63), "max": 2**63 - 1}},
    ],
)
def test_examples_within_the_rule_are_projected(example):
    assert example_fields(example) == example_fields(msgspec.json.encode(example))


def test_a_bad_event_leaves_the_rest_of_its_message_to_the_columns():
    """Once, one malformed span (typed path) next to good answers (fast path) broke Arrow."""
    events = [ner("ann", 1), ner("ann", 2, BAD["span is a number"][0]), ner("ann", 3)]
    skips = Skips(warn=False)
    rows = message_rows(7, encode_batch(events), skips)
    assert [row[1] for row in rows] == [0, 2]
    assert [(i.address, i.event_id) for i in skips.skipped] == [("7:1", events[1].event_id)]
    buffer = ColumnBuffer()
    buffer.extend(rows)
    buffer.append(8, [ner("bob", 1, {"spans": [{"start": 0, "end": 3, "label": "A"}]})])
    assert buffer.take().num_rows == 3


def test_a_message_that_cant_be_decoded_is_named_not_raised():
    readable, skipped = read_message(5, b"garbage", DATASET)
    assert readable == [] and [(i.address, i.dataset) for i in skipped] == [("5", DATASET)]
    half = msgspec.json.encode(
        {"events": [msgspec.to_builtins(ner("ann", 1)), {"kind": "answer_recorded"}, 3]}
    )
    readable, skipped = read_message(6, half, DATASET)
    assert [position for position, _, _ in readable] == [0]
    assert [i.address for i in skipped] == ["6:1", "6:2"]


def test_a_quarantine_record_round_trips_through_the_ledger_and_parquet():
    record = EventsQuarantined(
        event_id="qua-1",
        dataset=DATASET,
        events=[QuarantinedEvent(seq=3, position=1, event_id="ans-x", problem="p"), QuarantinedEvent(seq=4)],
        reason="old upload bug",
        recorded_at=1_767_225_600_000,
    )
    assert decode_batch(encode_batch([record])) == [record]
    rows = entry_rows(9, [record])
    assert (
        rows[0]["kind"] == "events_quarantined"
        and json.loads(rows[0]["config"])["reason"] == "old upload bug"
    )
    assert events_from_rows(rows) == [record]


# --- every reader --------------------------------------------------------------------


def test_every_reader_shows_the_good_answers_and_warns_once_per_bad_event(server, capsys):
    ledger = bad_ledger(server.url)

    out, err = finished(quorum(server.url, "db-out", DATASET))
    assert db_out_records(out) == ledger.good
    assert_warned_once_each(err, ledger.bad)
    capsys.readouterr()
    assert out.encode() == run(_reference(server.url))  # the Python reader skips the same events
    assert_warned_once_each(" ".join(capsys.readouterr().err.split()), ledger.bad)

    out, err = finished(quorum(server.url, "stats"))
    assert "ann (2), bob (2), cat (2)" in out
    assert_warned_once_each(err, ledger.bad)

    sql = "SELECT session, count(*) AS n FROM answers GROUP BY 1 ORDER BY 1"
    out, err = finished(quorum(server.url, "sql", sql, "--format", "json"))
    assert json.loads(out) == [{"session": s, "n": 2} for s in ("ann", "bob", "cat")]
    assert_warned_once_each(err, ledger.bad)

    out, err = finished(quorum(server.url, "agreement", DATASET, "--format", "json"))
    report = json.loads(out)
    assert report["task"] == "spans" and report["overall"]["n_items"] == 2
    assert_warned_once_each(err, ledger.bad)

    projectable._warned.clear()  # as in a fresh process: this one warned about them already
    data = run(_dashboard(server.url))
    assert data["totals"]["answers"] == 6 and data["tasks_answered"] == 3
    assert_warned_once_each(" ".join(capsys.readouterr().err.split()), ledger.bad)


def test_snapshot_replay_and_compact_finish_and_verify_names_every_bad_event(server, tmp_path):
    ledger = bad_ledger(server.url)
    snaps = str(tmp_path / "snaps")

    _, err = finished(ledger_cli(server.url, "snapshot", "--snapshot-dir", snaps))
    assert_warned_once_each(err, ledger.bad)
    assert "snapshotted 7 events (9 ledger messages)" in err  # the configuration and six good answers
    out, err = finished(quorum(server.url, "db-out", DATASET, "--snapshot-dir", snaps))
    assert db_out_records(out) == ledger.good
    assert out.encode() == run(_reference(server.url))

    out, err = finished(ledger_cli(server.url, "verify", "--snapshot-dir", snaps), code=1)
    table = " ".join(out.split())
    for item in ledger.bad:
        assert f"event {item.address} (answer_recorded {item.event_id}): {item.reason}" in table
        assert f"ledger quarantine {item.address}" in table
    assert "gap" not in table  # messages that hold bad events only are in no file, rightly
    addresses = " ".join(item.address for item in ledger.bad)
    assert "8 events can't be projected" in err and f"ledger quarantine {addresses} --reason" in err

    _, err = finished(ledger_cli(server.url, "replay", "--snapshot-dir", snaps))
    assert_warned_once_each(err, ledger.bad)
    _, err = finished(ledger_cli(server.url, "compact", "--yes", "--snapshot-dir", str(tmp_path / "fresh")))
    assert_warned_once_each(err, ledger.bad)
    out, _ = finished(quorum(server.url, "db-out", DATASET, "--snapshot-dir", str(tmp_path / "fresh")))
    assert db_out_records(out) == ledger.good


async def _snapshot(url: str, root: str) -> None:
    nc = await connect(url)
    try:
        await snapshot(nc, SnapshotStore(root))
    finally:
        await nc.close()


def test_verify_names_files_written_before_the_rule_and_replay_rewrites_them(server, tmp_path, monkeypatch):
    ledger = bad_ledger(server.url)
    snaps = str(tmp_path / "snaps")
    with monkeypatch.context() as before_the_rule:  # every event got a row, bad spans as nulls
        before_the_rule.setattr(projectable, "event_fields", lambda event: ExampleFields())
        run(_snapshot(server.url, snaps))

    out, _ = finished(ledger_cli(server.url, "verify", "--snapshot-dir", snaps), code=1)
    table = " ".join(out.split())
    assert table.count("holds it (written before Quorum left such events out)") == len(ledger.bad)
    assert "ledger replay --dataset news" in table and "ledger quarantine" not in table
    finished(ledger_cli(server.url, "replay", "--dataset", DATASET, "--snapshot-dir", snaps))
    out, _ = finished(ledger_cli(server.url, "verify", "--snapshot-dir", snaps), code=1)
    table = " ".join(out.split())
    assert "holds it" not in table and table.count("ledger quarantine") == len(ledger.bad)


# --- quarantine ----------------------------------------------------------------------


async def _publish_raw(url: str, payloads: list[bytes]) -> list[int]:
    """Ledger messages no Quorum could have written: they must not break readers either."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        subject = events_subject(DATASET, "answers")
        return [int((await js.publish(subject, p, stream=EVENTS_STREAM)).seq) for p in payloads]
    finally:
        await nc.close()


def test_quarantine_sets_bad_events_aside_and_readers_go_quiet(server, tmp_path):
    ledger = bad_ledger(server.url)
    garbage, half = run(
        _publish_raw(
            server.url,
            [
                b"not json",
                msgspec.json.encode({"events": [{"kind": "answer_recorded", "event_id": "ans-x"}]}),
            ],
        )
    )
    help_text = " ".join(finished(ledger_cli(server.url, "quarantine", "--help"))[0].split())
    assert "Example: ledger verify; ledger quarantine 1234:2 1240 --reason" in help_text
    assert "--reason" in help_text and "SEQ[:POSITION]" in help_text

    first_bad = ledger.bad[0]
    good_place = first_bad.address.split(":")[0] + ":0"
    for address, said in [
        (good_place, "can be projected: quarantine only sets aside events no reader can read"),
        ("1", "holds no event that can't be projected"),
        ("999", "the ledger holds no message 999"),
        ("x:1", "is no ledger event: write SEQ"),
    ]:
        _, err = finished(ledger_cli(server.url, "quarantine", address), code=1)
        assert said in err, err

    # One bad event by its place, the others by their message, and the raw messages whole.
    seqs = sorted({int(item.address.split(":")[0]) for item in ledger.bad[1:]})
    args = [first_bad.address, *map(str, seqs), str(garbage), str(half), "--reason", "the old upload bug"]
    _, err = finished(ledger_cli(server.url, "quarantine", *args))
    assert "quarantined 10 events" in err
    _, err = finished(ledger_cli(server.url, "quarantine", first_bad.address))
    assert f"already quarantined: {DATASET}: {first_bad.address}" in err

    out, err = finished(quorum(server.url, "db-out", DATASET))
    assert db_out_records(out) == ledger.good
    assert_no_warnings(err)
    assert out.encode() == run(_reference(server.url))
    snaps = str(tmp_path / "snaps")
    _, err = finished(ledger_cli(server.url, "snapshot", "--snapshot-dir", snaps))
    assert_no_warnings(err)
    out, err = finished(ledger_cli(server.url, "verify", "--snapshot-dir", snaps))
    table = " ".join(out.split())
    assert table.count("quarantined") >= 10 and "unprojectable" not in table
    assert "the old upload bug" in table and "snapshots are sound" in err
    sql = "SELECT config FROM events WHERE kind = 'events_quarantined'"
    (row,) = json.loads(finished(quorum(server.url, "sql", sql, "--format", "json"))[0])
    record = json.loads(row["config"])
    assert record["reason"] == "the old upload bug" and len(record["events"]) == 10
    assert {"seq": garbage, "position": None, "event_id": None} in [
        {k: e[k] for k in ("seq", "position", "event_id")} for e in record["events"]
    ]


def test_drop_and_compact_remove_bad_events_for_good(server, tmp_path):
    bad_ledger(server.url)
    snaps = str(tmp_path / "snaps")
    finished(quorum(server.url, "drop", DATASET, "--yes"))
    _, err = finished(ledger_cli(server.url, "compact", "--yes", "--snapshot-dir", snaps))
    assert "dropped datasets: news" in err
    dumped = [json.loads(line) for line in finished(ledger_cli(server.url, "dump"))[0].splitlines()]
    assert [e["kind"] for e in dumped] == ["dataset_dropped"]
    out, err = finished(ledger_cli(server.url, "verify", "--snapshot-dir", snaps))
    assert "unprojectable" not in out and "snapshots are sound" in err
    _, err = finished(ledger_cli(server.url, "replay", "--snapshot-dir", str(tmp_path / "again")))
    assert_no_warnings(err)
