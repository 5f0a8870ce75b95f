"""`ledger tail`: the ledger's events as JSON lines, up to the end or following new ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from ledger.events import CURRENT_VERSIONS, ReviewRecorded
from ledger.natsd import start_embedded
from ledger.store import subject_kind
from ledger.tailing import SUBJECT_KINDS
from tests.conftest import run
from tests.ledger_writes import answer, configure, drop, write

LEDGER = [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()"]


def ledger_cli(*args: str, nats_url: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*LEDGER, *args],
        env={**os.environ, "NATS_URL": nats_url, "COLUMNS": "200"},
        capture_output=True,
        timeout=timeout,
    )


def lines(result: subprocess.CompletedProcess[bytes]) -> list[dict]:
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.splitlines()]


def review(dataset: str, task: int, decision: str) -> ReviewRecorded:
    return ReviewRecorded(
        event_id=f"rev-{dataset}-{task}-{decision}",
        dataset=dataset,
        reviewer="lead",
        answer=decision,  # type: ignore[arg-type]
        input_hash=task * 7,
        task_hash=task,
        view_id="classification",
        example={"text": f"text {task}"},
        recorded_at=1_767_225_600_000,
    )


@pytest.fixture
def history(nats_url, dataset_name):
    """A dataset's ledger: configured, answered by two sessions, reviewed, dropped; and a neighbour's."""
    batches = [
        [configure(dataset_name)],
        [answer(dataset_name, "alex", 1), answer(dataset_name, "alex", 2, "reject")],
        [answer(f"{dataset_name}-2", "alex", 1)],
        [answer(dataset_name, "bob", 1, "reject")],
        [review(dataset_name, 1, "accept")],
        [drop(dataset_name)],
    ]
    seqs = write_all(nats_url, batches)
    return dataset_name, seqs


def write_all(nats_url, batches):
    return run(write(nats_url, batches))


def test_no_follow_prints_what_dump_prints(nats_url, history):
    dataset, seqs = history
    tail = lines(
        ledger_cli("tail", "--dataset", dataset, "--from-seq", "1", "--no-follow", nats_url=nats_url)
    )
    dump = lines(ledger_cli("dump", "--dataset", dataset, nats_url=nats_url))
    assert tail == dump
    assert [e["kind"] for e in tail] == [
        "dataset_configured",
        "answer_recorded",
        "answer_recorded",
        "answer_recorded",
        "review_recorded",
        "dataset_dropped",
    ]
    assert [e["seq"] for e in tail] == [seqs[0], seqs[1], seqs[1], seqs[3], seqs[4], seqs[5]]


def test_no_follow_filters(nats_url, history):
    dataset, seqs = history

    def tail(*args: str) -> list[dict]:
        return lines(ledger_cli("tail", "--dataset", dataset, "--no-follow", *args, nats_url=nats_url))

    alex = tail("--from-seq", "1", "--kind", "answer_recorded", "--session", "alex")
    assert [(e["session"], e["task_hash"], e["answer"]) for e in alex] == [
        ("alex", 1, "accept"),
        ("alex", 2, "reject"),
    ]
    rejected = tail("--from-seq", "1", "--answer", "reject")
    assert [(e["kind"], e.get("session")) for e in rejected] == [
        ("answer_recorded", "alex"),
        ("answer_recorded", "bob"),
    ]
    assert [e["kind"] for e in tail("--from-seq", "1", "--kind", "review_recorded")] == ["review_recorded"]
    assert [e["seq"] for e in tail("--from-seq", str(seqs[3]))] == [seqs[3], seqs[4], seqs[5]]
    # --last counts ledger messages of the dataset (and kind): the neighbour's does not count.
    assert [e["kind"] for e in tail("--last", "2")] == ["review_recorded", "dataset_dropped"]
    assert [e["seq"] for e in tail("--last", "2", "--kind", "answer_recorded")] == [seqs[1], seqs[1], seqs[3]]
    assert len(tail("--last", "100")) == 6
    assert tail("--last", "0") == []
    assert len(tail("--from-seq", "1", "--limit", "2")) == 2
    # Without --from-seq or --last, no-follow starts after the end: nothing yet.
    assert tail() == []
    everyone = lines(ledger_cli("tail", "--from-seq", str(seqs[0]), "--no-follow", nats_url=nats_url))
    assert f"{dataset}-2" in {e["dataset"] for e in everyone}


def _read_stderr_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line the process writes to stderr, or fail after `timeout` seconds."""
    found: list[bytes] = []
    reader = threading.Thread(target=lambda: found.append(process.stderr.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, "ledger tail did not say it was following"
    return found[0].decode()


def test_follow_prints_events_as_they_are_appended(nats_url, dataset_name):
    write_all(nats_url, [[answer(dataset_name, "old", 9)]])  # before the tail starts: not printed
    process = subprocess.Popen(
        [*LEDGER, "tail", "--dataset", dataset_name, "--limit", "3"],
        env={**os.environ, "NATS_URL": nats_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert "following the ledger from seq" in _read_stderr_line(process, timeout=30)
        events = [answer(dataset_name, "alex", task) for task in (1, 2, 3)]
        write_all(nats_url, [[answer(f"{dataset_name}-2", "alex", 1)], [events[0]], [events[1]], [events[2]]])
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    printed = [json.loads(line) for line in out.splitlines()]
    assert [e["event_id"] for e in printed] == [e.event_id for e in events]
    assert all(e["kind"] == "answer_recorded" and e["dataset"] == dataset_name for e in printed)


def test_follow_with_last_starts_with_history(nats_url, dataset_name):
    write_all(nats_url, [[answer(dataset_name, "alex", 1)], [answer(dataset_name, "alex", 2)]])
    process = subprocess.Popen(
        [*LEDGER, "tail", "--dataset", dataset_name, "--last", "1", "--limit", "2"],
        env={**os.environ, "NATS_URL": nats_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _read_stderr_line(process, timeout=30)
        write_all(nats_url, [[answer(dataset_name, "bob", 3)]])
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    assert [(e["session"], e["task_hash"]) for e in map(json.loads, out.splitlines())] == [
        ("alex", 2),
        ("bob", 3),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "answer"], "unknown event kind 'answer': use answer_recorded, review_recorded"),
        (["--answer", "maybe"], "use accept, reject or ignore"),
        (["--from-seq", "1", "--last", "3"], "give --from-seq or --last, not both"),
        (["--dataset", "bad.name"], "invalid dataset name 'bad.name'"),
        (["--from-seq", "0"], "--from-seq"),
    ],
)
def test_bad_options_are_clear_errors(nats_url, args, message):
    result = ledger_cli("tail", "--no-follow", *args, nats_url=nats_url)
    assert result.returncode in (1, 2)
    assert message in " ".join(result.stderr.decode().split()), result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_help_has_an_example(nats_url):
    result = ledger_cli("tail", "--help", nats_url=nats_url)
    assert result.returncode == 0
    assert "Example: ledger tail --dataset news --kind answer_recorded" in result.stdout.decode()


def test_kinds_match_the_subjects_the_ledger_writes(dataset_name):
    events = [
        configure(dataset_name),
        answer(dataset_name, "a", 1),
        review(dataset_name, 1, "accept"),
        drop(dataset_name),
    ]
    written = {type(e).__struct_config__.tag: subject_kind(e) for e in events}
    assert written.items() <= SUBJECT_KINDS.items()
    assert SUBJECT_KINDS["events_quarantined"] == "quarantined"
    assert set(SUBJECT_KINDS) == set(CURRENT_VERSIONS)


def test_ctrl_c_stops_following_without_a_traceback(nats_url, dataset_name):
    process = subprocess.Popen(
        [*LEDGER, "tail", "--dataset", dataset_name],
        env={**os.environ, "NATS_URL": nats_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _read_stderr_line(process, timeout=30)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert "Traceback" not in err.decode()


def test_a_server_without_a_ledger_yet_is_followed_from_the_start(tmp_path):
    nats = start_embedded(tmp_path / "nats")  # a server of its own: no EVENTS stream yet
    try:
        result = ledger_cli("tail", "--no-follow", nats_url=nats.url)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b""
        process = subprocess.Popen(
            [*LEDGER, "tail"], env={**os.environ, "NATS_URL": nats.url}, stderr=subprocess.PIPE
        )
        try:
            assert "following the ledger from seq 1" in _read_stderr_line(process, timeout=30)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        assert process.returncode == 130
    finally:
        nats.stop()
