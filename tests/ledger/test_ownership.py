"""One process owns a data dir; its children die with it (issue 11 §3).

Every test runs real processes (`quorum` as a user starts it, nats-server, Granian) and
stops every process it started, even when it fails: `Processes` remembers each one and
its descendants, and kills what is left at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.errors import QuorumError
from ledger.natsd import start_embedded
from ledger.ownership import acquire, current_owner, describe_processes, leftovers
from quorum.serve import check_port, start_feed
from recipes.textcat import textcat_manual
from tests.browser import until
from tests.conftest import EXAMPLES, free_port, quorum_cli

ERROR_KEYS = {"error", "message", "status"}


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(name))
    return found


def _tree(pid: int) -> list[int]:
    """`pid`'s descendants, children first."""
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Processes:
    """The processes a test started; whatever still runs at the end is killed."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.pids: set[int] = set()
        self.data_dirs: list[Path] = []

    def quorum(self, *args: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
        """`quorum ARGS --data-dir D --port P` in the background, as a user starts it."""
        self.data_dirs.append(data_dir)
        options = ["--data-dir", str(data_dir), "--port", str(port), "--host", "127.0.0.1"]
        with (self.tmp_path / f"quorum-{port}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", "from quorum.cli import main; main()", *args, *options],
                env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "QUORUM_NATS_URL")},
                cwd=self.tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pids.add(process.pid)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, self.log(port)
            self.remember(process.pid)
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    self.remember(process.pid)
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"quorum did not become ready:\n{self.log(port)}")

    def log(self, port: int) -> str:
        return (self.tmp_path / f"quorum-{port}.log").read_text(errors="replace")

    def remember(self, pid: int) -> None:
        self.pids.update(_tree(pid))

    def kill_all(self) -> None:
        for data_dir in self.data_dirs:
            self.pids.update(p.pid for p in leftovers(data_dir))
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # reaps those this test started itself


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def _owner_file(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "owner.json").read_text())  # type: ignore[no-any-return]


def _textcat(dataset: str = "news") -> list[str]:
    return ["textcat.manual", dataset, str(EXAMPLES / "news.jsonl"), "--label", "Tech", "--workers", "2"]


def test_kill_9_of_quorum_ends_nats_and_every_granian_process(processes, tmp_path):
    """Issue 11 §3.1: `kill -9` of the parent left nats-server and Granian running."""
    data_dir, port = tmp_path / "data", free_port()
    quorum = processes.quorum(*_textcat(), data_dir=data_dir, port=port)
    children = _tree(quorum.pid)
    commands = [" ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0")) for pid in children]
    assert sum("nats-server" in c for c in commands) == 1
    assert sum("granian" in c for c in commands) == 3  # the master and two workers

    quorum.kill()
    quorum.wait()
    until(lambda: not any(_alive(pid) for pid in children), timeout=10, interval=0.05)
    assert current_owner(data_dir) is None, "the kernel released the data dir"
    check_port("127.0.0.1", port, data_dir)  # free again


def test_kill_9_of_the_granian_master_ends_its_workers(settings, dataset_name, load, start_server, processes):
    """Issue 11 §3.1: Granian's workers outlived a master killed outright."""
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(settings, dataset_name, workers=2)
    workers = _children(feed.process.pid)
    processes.pids.update(workers)
    assert len(workers) == 2
    feed.process.kill()
    feed.process.wait()
    until(lambda: not any(_alive(pid) for pid in workers), timeout=5, interval=0.05)


def test_a_second_quorum_on_a_data_dir_fails_fast_and_tools_attach(processes, tmp_path):
    """Issue 11 §3.2: one owner per data dir, named by whoever comes second."""
    data_dir, port = tmp_path / "data", free_port()
    first = processes.quorum(*_textcat(), data_dir=data_dir, port=port)

    started = time.monotonic()
    second = quorum_cli(*_textcat(), "--data-dir", str(data_dir), "--port", str(free_port()), timeout=30)
    assert second.returncode == 1
    assert time.monotonic() - started < 15
    message = second.stderr.decode()
    assert f"data dir {data_dir} is in use by another Quorum: pid {first.pid}" in message
    assert "quorum textcat.manual news" in message, "the owner's command line"
    assert f"serving http://127.0.0.1:{port}" in message
    assert f"kill {first.pid}" in message and "--data-dir" in message
    assert "Traceback" not in message

    # Tools attach to the owner's NATS: one nats-server on the store, the owner's.
    owner = _owner_file(data_dir)
    stats = quorum_cli("stats", "--data-dir", str(data_dir), timeout=30)
    assert stats.returncode == 0, stats.stderr.decode()
    assert "news" in stats.stdout.decode()
    assert _owner_file(data_dir) == owner
    assert (data_dir / "nats.log").read_text().count("Starting nats-server") == 1

    # Once the owner is gone, however it ended, a tool owns the data dir for as long as it runs.
    first.kill()
    first.wait()
    out = quorum_cli("db-out", "news", "--data-dir", str(data_dir), timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    assert current_owner(data_dir) is None and leftovers(data_dir) == []


def test_a_tool_that_owns_the_data_dir_is_named_too(processes, tmp_path):
    """Issue 11 §3.2: while `db-out` (here: this test) owns the data dir, no server starts on it."""
    data_dir = tmp_path / "data"
    processes.data_dirs.append(data_dir)
    with acquire(data_dir):
        result = quorum_cli(*_textcat(), "--data-dir", str(data_dir), "--port", str(free_port()), timeout=30)
    assert result.returncode == 1
    assert f"is in use by another Quorum: pid {os.getpid()}" in result.stderr.decode()
    assert not (data_dir / "nats").exists(), "no second nats-server on the store"


def test_leftovers_of_a_dead_owner_are_named_never_worked_around(processes, tmp_path, settings, dataset_name):
    """Issue 11 §3.2: a port held by our own orphan said "pass --port N+1"."""
    data_dir, port = tmp_path / "data", free_port()
    processes.data_dirs.append(data_dir)
    # What an owner killed before this fix left: its nats-server and Granian, no lock.
    nats = start_embedded(data_dir)
    nats.lock.release()
    feed = start_feed(
        settings.with_overrides(data_dir=data_dir, port=port, dataset=dataset_name, workers=1), nats.url
    )
    orphans = sorted([nats.process.pid, feed.process.pid, *_children(feed.process.pid)])
    processes.pids.update(orphans)

    with pytest.raises(QuorumError) as port_error:
        check_port("127.0.0.1", port, data_dir)
    assert "left running by an earlier Quorum on this data dir" in str(port_error.value)
    assert f"kill {' '.join(str(p) for p in orphans)}" in str(port_error.value)
    assert "--port" not in str(port_error.value)

    result = quorum_cli(*_textcat(), "--data-dir", str(data_dir), "--port", str(port), timeout=30)
    message = result.stderr.decode()
    assert result.returncode == 1
    assert f"pid {nats.process.pid} (nats-server)" in message
    assert f"kill {' '.join(str(p) for p in orphans)}" in message
    assert "--port" not in message
    assert all(_alive(pid) for pid in orphans), "reported, not killed"


def test_nats_restarts_and_meanwhile_workers_answer_503_and_nothing_counts_twice(processes, tmp_path):
    """Issue 11 §3.3 and §3.4: a dead nats-server stayed dead, requests got 500 after 5 s."""
    data_dir, port = tmp_path / "data", free_port()
    processes.quorum(*_textcat(), data_dir=data_dir, port=port)
    url = f"http://127.0.0.1:{port}"
    tasks = httpx.post(f"{url}/get_session_questions?session=alex", json={}, timeout=10).json()["tasks"]
    first, second = ({**task, "answer": "accept"} for task in tasks[:2])
    answered = httpx.post(f"{url}/give_answers?session=alex", json={"answers": [first]}, timeout=10)
    assert answered.status_code == 200, answered.text

    before = _owner_file(data_dir)
    os.kill(before["nats_pid"], signal.SIGKILL)
    until(lambda: not _alive(before["nats_pid"]), timeout=5, interval=0.05)
    time.sleep(0.05)  # the workers' connections see the close
    started = time.monotonic()
    refused = httpx.post(f"{url}/give_answers?session=alex", json={"answers": [second]}, timeout=10)
    assert time.monotonic() - started < 1
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert set(refused.json()) == ERROR_KEYS and refused.json()["error"] == "not_ready"

    # Restarted on the same store and port within 2 s; the workers reconnect.
    until(lambda: _owner_file(data_dir)["nats_pid"] != before["nats_pid"], timeout=2, interval=0.05)
    after = _owner_file(data_dir)
    assert after["nats_url"] == before["nats_url"]
    until(lambda: httpx.get(f"{url}/ready", timeout=1).status_code == 200, timeout=5, interval=0.05)

    # The client retries what it was told failed, and what it never heard back about.
    retried = httpx.post(f"{url}/give_answers?session=alex", json={"answers": [first, second]}, timeout=10)
    assert retried.status_code == 200, retried.text
    out = quorum_cli("db-out", "news", "--data-dir", str(data_dir), timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(str(r["_task_hash"]) for r in rows) == sorted([first["_task_hash"], second["_task_hash"]])
    working_for_it = leftovers(data_dir)  # every process that works for the data dir
    assert [p.what for p in working_for_it].count("nats-server") == 1


def test_a_nats_server_that_keeps_dying_ends_quorum_with_a_clear_message(processes, tmp_path):
    """Issue 11 §3.3: repeated failures end the owner, non-zero, with what to check."""
    data_dir, port = tmp_path / "data", free_port()
    quorum = processes.quorum(*_textcat(), data_dir=data_dir, port=port)
    children = _tree(quorum.pid)
    (data_dir / "nats.conf").write_text("this is { not a config\n")  # every restart fails
    os.kill(_owner_file(data_dir)["nats_pid"], signal.SIGKILL)

    try:
        code = quorum.wait(timeout=60)
    except subprocess.TimeoutExpired:
        still = describe_processes(leftovers(data_dir))
        nats_log = (data_dir / "nats.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"still running: {still}\n{processes.log(port)}\n{nats_log}") from None
    assert code == 1
    log = processes.log(port)
    assert "stopped 5 times within a minute" in log and str(data_dir / "nats.log") in log
    assert "Traceback" not in log
    until(lambda: not any(_alive(pid) for pid in children), timeout=10, interval=0.05)
    assert current_owner(data_dir) is None
