"""One recipe runner per dataset, cluster-wide: a leader lock in NATS KV.

The lock is the key `<dataset>` in the `quorum-runners` bucket, whose entries expire
after `ttl` seconds. A runner takes it by creating the key (which fails while another
holds it) and keeps it by updating it every `ttl / 3` seconds, each update naming the
revision it saw, so a runner that lost the lock (it paused longer than the ttl and
another took over) finds out at its next refresh instead of running beside the new one.
A runner that dies stops refreshing; its key expires and a waiting runner takes over.

Locally the data dir's owner lock already keeps one runner per data dir; the leader lock
matters when runners share a NATS (`NATS_URL`, a cluster), where a second `quorum` recipe
run on the same dataset would otherwise pull the same stream twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import msgspec
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ledger.errors import QuorumError

__all__ = ["BUCKET", "LeaderLock", "LockHeld"]

BUCKET = "quorum-runners"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class LockHeld(QuorumError):
    """Another runner holds the dataset's leader lock."""


class _Holder(msgspec.Struct, frozen=True):
    host: str
    pid: int
    recipe: str


async def _bucket(nc: Client, ttl: float) -> KeyValue:
    js = nc.jetstream()
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=BUCKET, history=1, ttl=ttl, storage=StorageType.FILE)
        return await js.create_key_value(config)


class LeaderLock:
    """The leader lock of one dataset; `acquire`, then `keep` it running until `release`."""

    def __init__(self, kv: KeyValue, dataset: str, holder: _Holder, ttl: float) -> None:
        self.kv, self.dataset, self.holder, self.ttl = kv, dataset, holder, ttl
        self.revision = 0
        self.lost = asyncio.Event()

    @classmethod
    async def acquire(
        cls, nc: Client, dataset: str, recipe: str, *, ttl: float = 15.0, wait: bool = False
    ) -> LeaderLock:
        """Take the lock; `wait` for it if another runner holds it, else raise `LockHeld`."""
        kv = await _bucket(nc, ttl)
        lock = cls(kv, dataset, _Holder(socket.gethostname(), os.getpid(), recipe), ttl)
        while True:
            try:
                lock.revision = await kv.create(dataset, msgspec.json.encode(lock.holder))
                return lock
            except KeyWrongLastSequenceError:
                if await lock._take_from_the_dead():
                    return lock
                if not wait:
                    raise LockHeld(await lock._who()) from None
                await asyncio.sleep(ttl / 3)

    async def _take_from_the_dead(self) -> bool:
        """Take the lock over from a holder on this host whose process is gone (killed
        with -9: it could not release it), at once rather than after the ttl."""
        try:
            entry = await self.kv.get(self.dataset)
            other = msgspec.json.decode(entry.value or b"", type=_Holder)
        except Exception:
            return False
        if other.host != self.holder.host or _alive(other.pid):
            return False
        try:
            self.revision = await self.kv.update(
                self.dataset, msgspec.json.encode(self.holder), last=entry.revision
            )
        except KeyWrongLastSequenceError:  # someone else was quicker
            return False
        return True

    async def _who(self) -> str:
        try:
            entry = await self.kv.get(self.dataset)
            other = msgspec.json.decode(entry.value or b"", type=_Holder)
        except Exception:  # gone meanwhile, or unreadable: say what we can
            return f"a recipe runner for dataset {self.dataset!r} is running elsewhere; stop it first"
        return (
            f"a recipe runner for dataset {self.dataset!r} is already running ({other.recipe}, pid "
            f"{other.pid} on {other.host}); stop it first, or wait up to {self.ttl:.0f}s after it died"
        )

    async def keep(self) -> None:
        """Refresh the lock until cancelled; sets `lost` (and returns) if it was taken over."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                self.revision = await self.kv.update(
                    self.dataset, msgspec.json.encode(self.holder), last=self.revision
                )
            except KeyWrongLastSequenceError:
                self.lost.set()
                return
            except Exception:  # NATS away for a moment: try again at the next beat
                continue

    async def release(self) -> None:
        """Give the lock up (only if still ours), so a waiting runner starts at once."""
        with contextlib.suppress(Exception):
            entry = await self.kv.get(self.dataset)
            if entry.revision == self.revision:
                await self.kv.purge(self.dataset)
