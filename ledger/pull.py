"""Reading a stretch of a stream fast: every message from a sequence to the end, once.

`ledger snapshot`, `ledger replay`, `ledger verify` and the projections' live tail
read up to millions of ledger messages in one go. nats.py's `fetch` schedules a task
per message, which costs more than Quorum's own work on it; here two pull requests
stay in flight and the messages arrive through a subscription callback, in stream
order, on an ephemeral in-memory consumer deleted at the end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ledger.errors import LedgerError

__all__ = ["pull_all"]

_EXPIRES_NS = 5_000_000_000
_STALL_SECONDS = 10.0
_STATUS = "Status"
_PENDING_MESSAGES = "Nats-Pending-Messages"


async def pull_all(
    nc: Client, stream: str, subject: str, start_seq: int, batch: int = 1000
) -> AsyncGenerator[Msg, None]:
    """Each message of `stream` on `subject` from `start_seq` to the stream's end when
    reading starts, in order. Raises `LedgerError` when NATS stops delivering."""
    js = nc.jetstream()
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(start_seq, 1),
        filter_subject=subject,
        inactive_threshold=60.0,
        mem_storage=True,
    )
    info = await js.add_consumer(stream, config)
    pending = info.num_pending or 0
    ready: collections.deque[Msg] = collections.deque()
    arrived = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        ready.append(msg)
        arrived.set()

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=on_message)
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{info.name}"
    request = msgspec.json.encode({"batch": batch, "expires": _EXPIRES_NS})
    outstanding = 0
    try:
        while pending > 0:
            while outstanding < 2 * batch:
                await nc.publish(next_subject, request, reply=inbox)
                outstanding += batch
            if not ready:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), _STALL_SECONDS)
                except TimeoutError:
                    raise LedgerError("reading the ledger stalled: NATS stopped delivering events") from None
                continue
            msg = ready.popleft()
            if msg.headers and _STATUS in msg.headers:
                # A request ended short: messages were deleted meanwhile, so ask the
                # consumer what is really left rather than wait for them.
                outstanding -= int(msg.headers.get(_PENDING_MESSAGES, batch))
                if not ready:
                    pending = (await js.consumer_info(stream, info.name)).num_pending or 0
                continue
            outstanding -= 1
            pending = msg.metadata.num_pending
            yield msg
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        with contextlib.suppress(Exception):  # an ephemeral consumer expires by itself anyway
            await js.delete_consumer(stream, info.name)
