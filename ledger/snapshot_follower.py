"""The snapshotter the owner of a data dir keeps running, so reads stay short.

Projections read the Parquet snapshots plus the live tail; without a snapshotter the
tail is the whole ledger, and every `db-out`, `stats` or dashboard refresh replays it
from the first message. So the process that owns a data dir (a recipe's `quorum`
parent, `quorum serve`) runs `snapshot(follow=True)` in a child process for as long as
it serves, via `keep_snapshots`:

- the child ends with its owner (`PR_SET_PDEATHSIG`), is stopped with SIGTERM (it
  commits what it buffered) and is restarted, with a growing pause, if it dies;
- a snapshot target that fails (full, read-only, gone) never stops serving: the child
  reports `failing` through NATS (`ledger.snapshot_status`, read by `/health`) and
  tries again after a pause; meanwhile readers replay the stream past the last commit.

The child is `python -m ledger.snapshot_follower`, writing its log to
`<data dir>/snapshotter.log`. It never touches the ledger, only the snapshot root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ledger.connection import connect
from ledger.errors import QuorumError
from ledger.processes import die_with_parent

__all__ = ["LOG_NAME", "SnapshotFollower", "keep_snapshots", "main"]

LOG_NAME = "snapshotter.log"
_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Pauses before the next try after consecutive failures (the last one repeats)."""


class SnapshotFollower:
    """A supervised `python -m ledger.snapshot_follower` child of this process."""

    def __init__(self, nats_url: str, location: str, data_dir: Path, *, interval: float = 10.0) -> None:
        self.command = [
            sys.executable,
            "-m",
            "ledger.snapshot_follower",
            "--nats-url",
            nats_url,
            "--snapshot-dir",
            location,
            "--interval",
            str(interval),
        ]
        self.log = data_dir / LOG_NAME
        # Names the data dir it works for, as the owner's other children do.
        self.env = {**os.environ, "QUORUM_DATA_DIR": str(data_dir.resolve())}
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._grace = 15.0
        self._monitor: threading.Thread | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        parent = os.getpid()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            return subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # SIGTERM: it commits what it buffered. The kernel watches the thread that
                # started the child: the monitor thread lives until `stop` has ended it.
                preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
            )

    def start(self) -> None:
        self._monitor = threading.Thread(target=self._supervise, name="quorum-snapshotter", daemon=True)
        self._monitor.start()

    def _supervise(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self.process = self._spawn()
            while self.process.poll() is None and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                self._end(self.process, self._grace)
                return
            # It died (killed, out of memory): start another, pausing longer each time
            # unless the last one lived a good while.
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            self.restarts += 1
            if self._stop.wait(_PAUSES[min(failures, len(_PAUSES) - 1)]):
                return

    @staticmethod
    def _end(process: subprocess.Popen[bytes], timeout: float) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self, grace: float = 15.0) -> None:
        """Stop the child (it commits what it buffered, within `grace` seconds, else it is
        killed: what it had not committed is still in the ledger) and the supervision."""
        self._grace = grace
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()


@contextlib.contextmanager
def keep_snapshots(
    nats_url: str, location: str, data_dir: Path, *, enabled: bool = True, interval: float = 10.0
) -> Iterator[SnapshotFollower | None]:
    """Keep the snapshots at `location` current while the block runs (the owner's call).

    `enabled=False` (`QUORUM_SNAPSHOTS=false`) runs nothing: reads then replay the ledger
    from the last snapshot anyone wrote, which grows with the history.
    """
    if not enabled:
        yield None
        return
    if "://" not in location:
        location = str(Path(location).resolve())  # the child, logs and /health name it in full
    follower = SnapshotFollower(nats_url, location, data_dir, interval=interval)
    follower.start()
    try:
        yield follower
    except BaseException:
        # Serving failed (NATS kept dying, say): nothing is worth waiting for on the way out.
        follower.stop(grace=2.0)
        raise
    else:
        follower.stop()


async def _follow(nats_url: str, location: str, interval: float, stop: asyncio.Event) -> None:
    """Follow the ledger until `stop`; a failure is reported (by `snapshot`) and retried."""
    # Here, in the child: the owner that starts it never loads Arrow for it.
    from ledger.snapshot_store import SnapshotStore
    from ledger.snapshots import SnapshotOptions, snapshot

    store = SnapshotStore(location)
    options = SnapshotOptions(interval=interval)
    failures = 0
    while not stop.is_set():
        try:
            nc = await connect(nats_url)
        except QuorumError as exc:
            print(f"snapshotter: {exc}", file=sys.stderr, flush=True)
        else:
            try:
                report = await snapshot(nc, store, options, follow=True, stop=stop)
                print(f"snapshotter: stopped at sequence {report.through_seq:,}", file=sys.stderr, flush=True)
                failures = 0
            except Exception as exc:  # a target that fails must never take serving down
                print(f"snapshotter: {exc}", file=sys.stderr, flush=True)
            finally:
                with contextlib.suppress(Exception):
                    await nc.close()
        if stop.is_set():
            return
        pause = _PAUSES[min(failures, len(_PAUSES) - 1)]
        failures += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)


_STOP_GRACE = 5.0
"""Seconds a stopping follower may take to commit before it is cancelled."""


def main(argv: list[str] | None = None) -> None:
    """`python -m ledger.snapshot_follower --nats-url URL --snapshot-dir DIR`."""
    parser = argparse.ArgumentParser(description="Keep Parquet snapshots of the ledger current.")
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--snapshot-dir", required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        # Ctrl+C reaches the whole terminal's process group: the owner decides, and ends
        # this process with SIGTERM after its feed workers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        follower = asyncio.create_task(_follow(args.nats_url, args.snapshot_dir, args.interval, stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({follower, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        # Told to stop: commit what was buffered, but never hold the owner's shutdown up
        # for long (with NATS gone, a connect attempt would otherwise run its course).
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(follower, _STOP_GRACE)

    asyncio.run(run())


if __name__ == "__main__":
    main()
