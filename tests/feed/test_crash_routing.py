"""Issue 11 §3: after `kill -9` of everything and an immediate restart, routing holds.

A recipe serves on loopback while annotator threads answer as the web app does (keyed
batches, the same batch resent after a failure, a surplus answer set aside on 409). The
whole process group — `quorum`, nats-server, the Granian workers — is killed with SIGKILL
mid-run and started again at once on the same data dir and ports. At the end no task has
answers from more sessions than routing allows, in the ledger itself, and db-out holds
every task once per allowed session.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, free_port, quorum_cli, wait_ready
from tests.ledger.test_ledger_tail import LEDGER

TASKS = 300  # examples/news.jsonl


def _start(data_dir: Path, port: int, dataset: str, k: int) -> subprocess.Popen[bytes]:
    args = [
        "textcat.manual", dataset, str(EXAMPLES / "news.jsonl"), "--label", "Tech",
        "--data-dir", str(data_dir), "--port", str(port), "--host", "127.0.0.1",
        "--workers", "2", "--ack-wait", "3",
    ]  # fmt: skip
    if k > 1:
        args += ["--annotations-per-task", str(k)]
    return subprocess.Popen(
        [sys.executable, "-c", "from quorum.cli import main; main()", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so one SIGKILL takes all of it
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class Annotator(threading.Thread):
    """Answers until the queue stays empty, resending a failed batch with the same keys."""

    def __init__(self, url: str, session: str, stop: threading.Event, think: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url, self.session, self.stop, self.think = url, session, stop, think
        self.recorded = 0
        self.surplus = 0

    def run(self) -> None:
        client = httpx.Client(base_url=self.url, timeout=5)
        outbox: list[dict] = []
        idle_since: float | None = None
        while not self.stop.is_set():
            try:
                if not outbox:
                    response = client.post(f"/get_session_questions?session={self.session}", json={})
                    if response.status_code != 200:
                        time.sleep(0.2)
                        continue
                    tasks = response.json()["tasks"]
                    if not tasks:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > 8:  # longer than the ack wait
                            return
                        time.sleep(0.3)
                        continue
                    idle_since = None
                    outbox = [
                        {**t, "answer": "accept", "_decision_id": secrets.token_urlsafe(12)} for t in tasks
                    ]
                    time.sleep(self.think)
                response = client.post(f"/give_answers?session={self.session}", json={"answers": outbox})
                if response.status_code == 200:
                    self.recorded += len(outbox)
                    outbox = []
                elif response.status_code == 409:
                    refused = response.json()["task_hash"]
                    self.surplus += 1
                    outbox = [a for a in outbox if a["_task_hash"] != refused]
                elif response.status_code == 422 or response.json().get("error") == "token_expired":
                    raise AssertionError(f"{self.session}: {response.text}")
                else:
                    time.sleep(0.2)  # 5xx while the server restarts: resend the same batch
            except httpx.HTTPError:
                time.sleep(0.2)  # the server is down: resend the same batch


@pytest.mark.timeout(240)
@pytest.mark.parametrize("k", [1, 2])
def test_kill_9_of_everything_and_a_restart_keep_the_routing_invariant(tmp_path, dataset_name, k):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start(data_dir, port, dataset_name, k)
    annotators: list[Annotator] = []
    stop = threading.Event()
    try:
        wait_ready(url, process)
        # One annotator thinks past the ack wait: its tasks go to others meanwhile, so
        # surplus answers happen on every run, not only when the crash makes them.
        annotators = [Annotator(url, f"s{i}", stop, think=3.5 if i == 3 else 0.0) for i in range(4)]
        for annotator in annotators:
            annotator.start()
        deadline = time.monotonic() + 60
        while sum(a.recorded for a in annotators) < TASKS * k // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_group(process)
        process = _start(data_dir, port, dataset_name, k)  # at once, same data dir and port
        wait_ready(url, process)
        for annotator in annotators:
            annotator.join(timeout=150)
        assert not any(a.is_alive() for a in annotators), "annotators did not finish"
    finally:
        stop.set()
        _kill_group(process)
    # Read the ledger with the server gone: db-out takes the data dir itself.
    out = quorum_cli("db-out", dataset_name, "--data-dir", str(data_dir), timeout=90)
    assert out.returncode == 0, out.stderr.decode()
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    per_task = collections.Counter(row["_task_hash"] for row in rows)
    assert len(per_task) == TASKS and set(per_task.values()) == {k}
    dump = subprocess.run(
        [*LEDGER, "dump", "--dataset", dataset_name, "--data-dir", str(data_dir)],
        capture_output=True,
        timeout=90,
        env={k: v for k, v in os.environ.items() if k != "NATS_URL"},
    )
    assert dump.returncode == 0, dump.stderr.decode()
    sessions_per_task: dict[int, set[str]] = collections.defaultdict(set)
    for line in dump.stdout.splitlines():
        event = json.loads(line)
        if event.get("kind") == "answer_recorded":
            sessions_per_task[event["task_hash"]].add(event["session"])
    assert max(len(s) for s in sessions_per_task.values()) == k  # never a surplus session
    assert sum(a.surplus for a in annotators) > 0, "no task was handed out twice: nothing was tested"
