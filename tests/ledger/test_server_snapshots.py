"""Issue 22: the server keeps the snapshots current, and a failing target never stops it.

One recipe server (`quorum ner.manual`, embedded NATS, its own data dir) runs for the
module, as a user starts it; the tests run in order against it: answers given over HTTP
end up in the snapshot manifest without anyone running `ledger snapshot`; then the
snapshot directory is made read-only, and serving and `db-out` go on while `/health`
warns; last, the server is killed with SIGKILL and its snapshotter goes with it.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.snapshot_follower import keep_snapshots
from ledger.snapshot_status import STALE_SECONDS, SnapshotterStatus, snapshot_warning
from tests.conftest import EXAMPLES, free_port, quorum_cli

pytestmark = pytest.mark.timeout(80)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    cwd: Path
    answered: int = 0

    @property
    def snapshots(self) -> Path:
        return self.cwd / ".quorum" / "snapshots"

    def answer(self, batches: int) -> None:
        """Answer `batches` batches of 10 tasks as the web app does, each in one request."""
        with httpx.Client(base_url=self.url, timeout=20) as client:
            for _ in range(batches):
                got = client.post("/get_session_questions?session=alex", json={})
                assert got.status_code == 200, got.text
                tasks = got.json()["tasks"]
                answers = [{**task, "answer": "accept"} for task in tasks]
                given = client.post("/give_answers?session=alex", json={"answers": answers})
                assert given.status_code == 200, given.text
                self.answered += len(answers)

    def health(self) -> dict[str, str]:
        response = httpx.get(f"{self.url}/health", timeout=5)
        assert response.status_code == 200
        body: dict[str, str] = response.json()
        return body

    def manifest(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            manifest: dict[str, Any] = json.loads((self.snapshots / "_quorum_manifest.json").read_text())
            return manifest
        return None

    def db_out(self) -> list[dict[str, Any]]:
        result = quorum_cli("db-out", "news_ner", cwd=self.cwd, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        return [json.loads(line) for line in result.stdout.splitlines()]


def _wait(condition, timeout: float, what: str, details=lambda: ""):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} {details()}")


def _followers(data_dir: Path) -> list[int]:
    """Pids of snapshotter children working for `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if b"ledger.snapshot_follower" not in (entry / "cmdline").read_bytes():
                continue
            if f"QUORUM_DATA_DIR={data_dir.resolve()}".encode() in (entry / "environ").read_bytes().split(
                b"\0"
            ):
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _read_only(root: Path) -> Iterator[None]:
    """Make the snapshot tree unwritable: chmod for a user, the immutable flag for root
    (who writes through any mode bits)."""
    if os.geteuid() != 0:
        paths = [root, *root.rglob("*")]
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(0o755 if path.is_dir() else 0o644)
        return
    made = subprocess.run(["chattr", "-R", "+i", str(root)], capture_output=True)
    if made.returncode != 0:
        subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
        pytest.skip(f"can't make {root} read-only here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(root)], check=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("served")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from quorum.cli import main; main()", "ner.manual", "news_ner", "blank:en",
         str(EXAMPLES / "news.jsonl"), "--label", "PERSON,ORG", "--port", str(port)],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "QUORUM_NATS_URL")},
        stdout=subprocess.DEVNULL,
        stderr=(cwd / "server.log").open("wb"),
        start_new_session=True,
    )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", cwd)
    try:

        def ready() -> bool:
            assert process.poll() is None, (cwd / "server.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{server.url}/ready", timeout=1).status_code == 200
            return False

        _wait(ready, 60, "the recipe server")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: feed, NATS, snapshotter
        process.wait(10)
        subprocess.run(["chattr", "-R", "-i", str(cwd)], capture_output=True)


def test_a_running_server_keeps_the_snapshots_current(server: Server) -> None:
    server.answer(6)

    def covered() -> bool:
        manifest = server.manifest()
        rows = sum(f["rows"] for f in manifest["files"]) if manifest else 0
        return rows >= server.answered + 1  # the answers and the dataset's configuration

    log = server.cwd / ".quorum" / "snapshotter.log"
    _wait(
        covered,
        30,
        "the snapshotter to commit every answer",
        lambda: f"{server.manifest()} {log.read_text()}",
    )
    assert server.health() == {"status": "ok"}
    rows = server.db_out()
    assert len(rows) == server.answered == 60
    assert (server.cwd / ".quorum" / "snapshotter.log").exists()
    # The root has one writer: a second one, by hand, is refused while the server runs.
    refused = subprocess.run(
        [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", "snapshot"],
        cwd=server.cwd,
        env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "QUORUM_NATS_URL")},
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert (
        "a snapshotter is keeping" in refused.stderr.decode()
        and "QUORUM_SNAPSHOTS=false" in refused.stderr.decode()
    )


def test_a_read_only_snapshot_target_never_stops_serving(server: Server) -> None:
    manifest = server.manifest()
    assert manifest is not None
    with _read_only(server.snapshots):
        server.answer(3)

        def warned() -> str:
            return server.health().get("snapshots", "")

        warning = _wait(warned, 40, "/health to warn about the snapshots")
        assert warning.startswith("failing: ") and str(server.snapshots.resolve()) in warning
        server.answer(2)  # serving goes on
        rows = server.db_out()  # the answers past the last commit come from the stream
        assert len(rows) == server.answered == 110
        assert server.manifest() == manifest
    # Writable again: the next try commits what was missed, and the warning goes.
    _wait(lambda: server.health() == {"status": "ok"}, 45, "/health to clear")
    final = server.manifest()
    assert final is not None and sum(f["rows"] for f in final["files"]) == 111


def test_the_snapshotter_dies_with_its_owner(server: Server) -> None:
    data_dir = server.cwd / ".quorum"
    followers = _followers(data_dir)
    assert len(followers) == 1
    server.process.kill()  # SIGKILL: no handler runs in the owner
    server.process.wait(10)
    _wait(lambda: not _followers(data_dir), 20, "the snapshotter to end with its owner")


def test_what_health_says_about_each_snapshotter_state() -> None:
    """Pure: no warning while all is well, a reason when failing, silence read as failing."""
    now = 1_800_000_000_000
    status = SnapshotterStatus(state="ok", location="/srv/snaps", through_seq=41, updated_at=now - 5_000)
    assert snapshot_warning(None, now) is None  # no snapshotter ever reported
    assert snapshot_warning(status, now) is None
    status.state, status.reason = "failing", "could not write snapshots to /srv/snaps: disk full"
    assert snapshot_warning(status, now) == "failing: could not write snapshots to /srv/snaps: disk full"
    status.state, status.updated_at = "ok", now - int(STALE_SECONDS * 1000) - 1_000
    warning = snapshot_warning(status, now)
    assert warning is not None and warning.startswith(
        "failing: the snapshotter of /srv/snaps has not reported"
    )
    status.state = "stopped"  # stopped on purpose: nothing to warn about
    assert snapshot_warning(status, now) is None


def test_snapshots_off_starts_nothing(tmp_path: Path) -> None:
    with keep_snapshots("nats://127.0.0.1:1", str(tmp_path / "snaps"), tmp_path, enabled=False) as follower:
        assert follower is None
    assert not (tmp_path / "snapshotter.log").exists()
