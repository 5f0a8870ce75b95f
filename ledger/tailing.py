"""Following the ledger as it grows: what `ledger tail` reads.

`Ledger.read` reads the stream as it stands when reading starts; `follow_events` goes on
waiting for new messages. It reads through `ledger.pull` (an ephemeral pull consumer
that acks nothing and keeps nothing, re-created at the next sequence if the server loses
it, every request bounded in bytes), so following never changes the ledger and never
blocks its writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import get_args

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ledger.events import Event, decode_batch
from ledger.pull import pull_all, pull_follow
from ledger.store import LedgerEntry, subject_kind
from ledger.streams import EVENTS_STREAM, events_subject

__all__ = ["SUBJECT_KINDS", "follow_events", "last_seq", "start_of_last", "tail_subject"]

# Event kind -> the last token of its ledger subject, from the one table the writer uses.
SUBJECT_KINDS: dict[str, str] = {
    str(kind.__struct_config__.tag): subject_kind(kind) for kind in get_args(Event)
}


def tail_subject(dataset: str | None = None, kind: str | None = None) -> str:
    """The EVENTS subject filter for one dataset and/or one event kind."""
    return events_subject(dataset or "*", SUBJECT_KINDS[kind] if kind else ">")


async def last_seq(nc: Client) -> int:
    """The sequence of the ledger's newest message (0 while it is empty)."""
    info = await nc.jetstream().stream_info(EVENTS_STREAM)
    return int(info.state.last_seq or 0)


def _config(start_seq: int, idle: float) -> ConsumerConfig:
    return ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(start_seq, 1),
        inactive_threshold=idle,
        mem_storage=True,
    )


async def _matching_from(js: JetStreamContext, subject: str, seq: int) -> int:
    """How many messages on `subject` the ledger holds from `seq` on."""
    config = _config(seq, 10.0)
    config.filter_subject = subject
    info = await js.add_consumer(EVENTS_STREAM, config)
    try:
        return int(info.num_pending or 0)
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(EVENTS_STREAM, info.name)


async def start_of_last(
    nc: Client, count: int, *, dataset: str | None = None, kind: str | None = None
) -> int:
    """The sequence to read from to get the last `count` messages on the subject.

    Widens a window back from the end until it holds `count` of them, then narrows the
    start by bisection: a few consumer creations, however long the ledger.
    """
    js = nc.jetstream()
    info = await js.stream_info(EVENTS_STREAM)
    first, last = max(int(info.state.first_seq or 1), 1), int(info.state.last_seq or 0)
    if count <= 0 or last < first:
        return last + 1
    subject = tail_subject(dataset, kind)
    window = count
    while True:
        low = max(first, last - window + 1)
        if low == first or await _matching_from(js, subject, low) >= count:
            break
        window *= 4
    if low == first and await _matching_from(js, subject, low) <= count:
        return first
    high = last  # invariant: from `low` there are >= count messages, from `high + 1` fewer
    while low < high:
        middle = (low + high + 1) // 2
        if await _matching_from(js, subject, middle) >= count:
            low = middle
        else:
            high = middle - 1
    return low


async def follow_events(
    nc: Client,
    *,
    dataset: str | None = None,
    kind: str | None = None,
    start_seq: int | None = None,
    follow: bool = True,
    poll: float = 1.0,
) -> AsyncGenerator[LedgerEntry, None]:
    """Yield ledger messages from `start_seq` (default: the next one appended) on.

    With `follow`, waits for new messages until the caller stops iterating; without,
    stops at the end of the ledger as it stood when reading started. `kind` narrows the
    subject, so the messages yielded hold events of that kind only. Reads go through
    `ledger.pull`, bounded in bytes like every other ledger reader.
    """
    end = await last_seq(nc)
    next_seq = end + 1 if start_seq is None else max(start_seq, 1)
    subject = tail_subject(dataset, kind)
    if not follow and next_seq > end:
        return
    messages: AsyncGenerator[Msg | None, None] = (
        pull_follow(nc, EVENTS_STREAM, subject, next_seq, idle=poll)
        if follow
        else pull_all(nc, EVENTS_STREAM, subject, next_seq)
    )
    try:
        async for msg in messages:
            if msg is None:
                continue  # idle: nothing new yet
            meta = msg.metadata
            seq = meta.sequence.stream
            if not follow and seq > end:
                return
            stamp = int(meta.timestamp.timestamp() * 1_000_000_000)
            yield LedgerEntry(seq, stamp, decode_batch(msg.data))
    finally:
        await messages.aclose()
