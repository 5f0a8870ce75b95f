"""Loading tasks into the `TASKS` work queue.

One message per (dataset, task hash): the stream keeps at most one message per
subject and discards new ones, so loading the same source again is a no-op.
Routing tasks to sessions is the feed's business (`feed/routing.py`).

Recipes check the size of every source record before anything is queued; a task can
still outgrow a NATS message once a recipe adds to it (spaCy tokens add ~10x), so each
task is measured here too and a load stops with a `LedgerError` naming the task, not a
`MaxPayloadError` traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError

from ledger.errors import LedgerError
from ledger.hashing import hash_hex
from ledger.streams import TASKS_STREAM, tasks_subject

__all__ = ["LoadSummary", "count_tasks", "load_tasks"]

# JetStream's answer when a subject already holds its one message.
_PER_SUBJECT_LIMIT = 10077
_encoder = msgspec.json.Encoder()


@dataclass
class LoadSummary:
    """What a load did: `read` tasks, `queued` new, `duplicates` already there."""

    read: int = 0
    queued: int = 0
    duplicates: int = 0
    excluded: int = 0

    def __str__(self) -> str:
        text = f"{self.read:,} read, {self.queued:,} queued, {self.duplicates:,} duplicates"
        return text + (f", {self.excluded:,} excluded" if self.excluded else "")


async def load_tasks(
    nc: Client,
    dataset: str,
    tasks: Iterable[dict[str, Any]],
    *,
    window: int = 256,
    on_progress: Callable[[int], None] | None = None,
) -> LoadSummary:
    """Publish `tasks` (already hashed) to TASKS, `window` publishes in flight at once."""
    js = nc.jetstream()
    summary = LoadSummary()

    async def publish(subject: str, payload: bytes) -> None:
        # No Nats-Msg-Id: the per-subject limit already refuses a second copy, and a
        # dedupe id would outlive `quorum drop`'s purge, so a re-load right after a drop
        # would queue nothing.
        try:
            ack = await js.publish(subject, payload, stream=TASKS_STREAM, timeout=10)
        except APIError as exc:
            if exc.err_code == _PER_SUBJECT_LIMIT:
                summary.duplicates += 1
                return
            raise LedgerError(f"JetStream refused a task: {exc.description}") from exc
        if ack.duplicate:
            summary.duplicates += 1
        else:
            summary.queued += 1

    pending: set[asyncio.Future[None]] = set()
    try:
        for task in tasks:
            summary.read += 1
            payload = _encoder.encode(task)
            if len(payload) > nc.max_payload:
                raise LedgerError(_too_big(task, len(payload), nc.max_payload))
            subject = tasks_subject(dataset, hash_hex(int(task["_task_hash"])))
            pending.add(asyncio.ensure_future(publish(subject, payload)))
            if len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    finished.result()
                    if on_progress:
                        on_progress(1)
        for finished in asyncio.as_completed(pending):
            await finished
            if on_progress:
                on_progress(1)
    finally:
        # On an error, let the publishes in flight finish rather than leave them dangling.
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return summary


def _too_big(task: dict[str, Any], size: int, limit: int) -> str:
    text = str(task.get("text", ""))
    start = text[:40] + ("…" if len(text) > 40 else "")
    return (
        f"task {task.get('_task_hash')} ({start!r}) is {size:,} bytes as queued, over the "
        f"{limit:,} bytes the NATS server accepts in one message: split the text into smaller "
        f"examples, or lower --max-task-bytes so the recipe refuses it before queueing"
    )


async def count_tasks(nc: Client, dataset: str) -> int:
    """How many distinct tasks the dataset has in TASKS (one message per task)."""
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        tasks_subject(dataset),
        stream=TASKS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=10.0, mem_storage=True),
    )
    try:
        info = await psub.consumer_info()
        return int(info.num_pending or 0)
    finally:
        await psub.unsubscribe()
        await js.delete_consumer(TASKS_STREAM, info.name)
