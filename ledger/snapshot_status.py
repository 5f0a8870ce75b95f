"""How the snapshotter is doing, kept in NATS for processes that hold no state to read.

A following snapshotter (`ledger snapshot --follow`, or the one the owner of a data dir
runs) records its state under `ledger.snapshotter` in the config bucket: `ok` after
each commit and every `HEARTBEAT_SECONDS` while idle, `failing` with the reason when a
commit fails (a full or read-only target…), `stopped` when it exits cleanly. Feed
workers read it for `/health`; an `ok` that is not refreshed for `STALE_SECONDS` means
the snapshotter died without a word. One record per NATS server: run one follower.

Writing the status never fails the snapshotter: NATS trouble shows up elsewhere.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Literal

import msgspec
from nats.js.kv import KeyValue

from ledger.errors import LedgerError
from ledger.events import now_ms

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "STATUS_KEY",
    "FollowerRunning",
    "SnapshotterStatus",
    "StatusReporter",
    "check_no_follower",
    "read_status",
    "same_root",
    "snapshot_warning",
]

STATUS_KEY = "ledger.snapshotter"
HEARTBEAT_SECONDS = 15.0
STALE_SECONDS = 90.0
"""An `ok` older than this is reported: the snapshotter stopped reporting."""
_STARTING_STALE_SECONDS = 900.0
"""Catching up a long ledger takes a while, and reports nothing until its commit."""

State = Literal["starting", "ok", "failing", "stopped"]


class FollowerRunning(LedgerError):
    """A following snapshotter writes the snapshot root another writer was pointed at."""


def same_root(location: str) -> str:
    """A snapshot root as followers report it: local paths absolute, URIs as given."""
    return location if "://" in location else str(Path(location.removeprefix("file://")).resolve())


class SnapshotterStatus(msgspec.Struct, kw_only=True):
    """The snapshotter's last report."""

    state: State
    location: str
    """The snapshot root it writes."""
    through_seq: int = 0
    """The manifest's `through_seq` after its last successful commit."""
    reason: str = ""
    """Why it is failing."""
    updated_at: int = 0
    """When this was written, ms since the epoch."""


async def read_status(kv: KeyValue) -> SnapshotterStatus | None:
    """The last report, or None when no snapshotter ever reported to this NATS."""
    try:
        entry = await kv.get(STATUS_KEY)
    except Exception:  # KeyNotFoundError: none ran yet
        return None
    try:
        return msgspec.json.decode(entry.value or b"", type=SnapshotterStatus)
    except msgspec.DecodeError:
        return None


def snapshot_warning(status: SnapshotterStatus | None, now: int | None = None) -> str | None:
    """What `/health` says about snapshots: None while all is well (or none ran), else
    `failing: <reason>`."""
    if status is None or status.state == "stopped":
        return None
    if status.state == "failing":
        return f"failing: {status.reason}"
    age = ((now if now is not None else now_ms()) - status.updated_at) / 1000
    limit = _STARTING_STALE_SECONDS if status.state == "starting" else STALE_SECONDS
    if age > limit:
        return (
            f"failing: the snapshotter of {status.location} has not reported for {age:,.0f} s "
            f"(snapshots cover the ledger to sequence {status.through_seq:,}; reads replay the rest)"
        )
    return None


async def check_no_follower(kv: KeyValue, location: str) -> None:
    """Refuse a second writer on a root a live follower writes (the server's, most likely):
    two writers on one root drop each other's files from the manifest."""
    status = await read_status(kv)
    if status is None or status.state == "stopped" or status.location != same_root(location):
        return
    age = (now_ms() - status.updated_at) / 1000
    if age > (_STARTING_STALE_SECONDS if status.state == "starting" else STALE_SECONDS):
        return  # it died without a word; nobody writes there any more
    raise FollowerRunning(
        f"a snapshotter is keeping {status.location} current (it reported {age:,.0f} s ago; a "
        f"running Quorum server runs one): stop the server, or run it with QUORUM_SNAPSHOTS=false, "
        f"before `ledger snapshot`, `ledger compact` or an in-place `ledger replay` on that "
        f"directory. Two writers on one snapshot root lose each other's files"
    )


class StatusReporter:
    """Writes a follower's status: on every change, and as a heartbeat while it lasts."""

    def __init__(self, kv: KeyValue, location: str) -> None:
        self.kv = kv
        self.location = same_root(location)
        self._last: tuple[str, int] | None = None
        self._written = 0.0

    async def _write(self, state: State, through_seq: int = 0, reason: str = "") -> None:
        status = SnapshotterStatus(
            state=state, location=self.location, through_seq=through_seq, reason=reason, updated_at=now_ms()
        )
        with contextlib.suppress(Exception):
            await self.kv.put(STATUS_KEY, msgspec.json.encode(status))
        self._last = (state, through_seq)
        self._written = time.monotonic()

    async def starting(self) -> None:
        """A new follower; a failure someone reported stays until a commit succeeds."""
        previous = await read_status(self.kv)
        if previous is None or previous.state != "failing":
            await self._write("starting", previous.through_seq if previous else 0)

    async def ok(self, through_seq: int) -> None:
        """A commit succeeded (or nothing needed one): written when news, or as heartbeat."""
        if self._last == ("ok", through_seq) and time.monotonic() - self._written < HEARTBEAT_SECONDS:
            return
        await self._write("ok", through_seq)

    async def idle(self) -> None:
        """Nothing to commit: refresh an `ok` so readers see the follower is alive."""
        if self._last is not None and self._last[0] == "ok":
            await self.ok(self._last[1])

    async def failing(self, reason: str) -> None:
        await self._write("failing", self._last[1] if self._last else 0, reason)

    async def stopped(self, through_seq: int) -> None:
        await self._write("stopped", through_seq)
