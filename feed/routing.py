"""Routing tasks from the TASKS stream to sessions, through JetStream pull consumers.

Each dataset has one shared durable pull consumer (`feed-<dataset>`): every task goes
to one session and comes back after `ack_wait` if nobody answers it. A task is acked
only after its answer is in the ledger, by whichever worker receives the answer,
through the reply subject carried in the task token.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import BadRequestError

from ledger.errors import LedgerError
from ledger.streams import TASKS_STREAM, tasks_subject

__all__ = ["ack_tasks", "consumer_info", "consumer_name", "ensure_consumer", "fetch_tasks"]

_STATUS = "Status"


def consumer_name(dataset: str) -> str:
    """The durable consumer that hands out `dataset`'s tasks."""
    return f"feed-{dataset}"


async def ensure_consumer(nc: Client, dataset: str, *, ack_wait: float, max_ack_pending: int) -> None:
    """Create (or update) the dataset's shared consumer; idempotent."""
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=consumer_name(dataset),
        filter_subject=tasks_subject(dataset),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        max_deliver=-1,
        max_waiting=4096,
    )
    # Creating a durable that exists updates it in place (e.g. a new --ack-wait).
    try:
        await js.add_consumer(TASKS_STREAM, config)
    except BadRequestError as exc:
        raise LedgerError(f"cannot set up the task consumer for {dataset!r}: {exc.description}") from exc


async def consumer_info(nc: Client, dataset: str) -> ConsumerInfo:
    """The consumer's counters: pending (queued), ack pending (out)."""
    info: ConsumerInfo = await nc.jetstream().consumer_info(TASKS_STREAM, consumer_name(dataset))
    return info


async def fetch_tasks(nc: Client, dataset: str, batch: int, timeout: float = 2.0) -> list[Msg]:
    """Up to `batch` tasks available right now; never waits for new ones.

    Each call uses its own inbox, so concurrent requests in one worker never see each
    other's messages.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    msgs: list[Msg] = []
    try:
        request = f'{{"batch":{batch},"no_wait":true}}'.encode()
        await nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{TASKS_STREAM}.{consumer_name(dataset)}", request, reply=inbox
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(msgs) < batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=remaining)
            except TimeoutError:
                break
            if msg.headers and msg.headers.get(_STATUS):
                if msg.headers[_STATUS] == "100":  # heartbeat
                    continue
                break  # 404 no messages, 408 request done, 409 limits: nothing more now
            msgs.append(msg)
    finally:
        await sub.unsubscribe()
    return msgs


async def ack_tasks(nc: Client, replies: list[str], timeout: float = 5.0) -> None:
    """Ack delivered tasks by their reply subjects and wait until JetStream confirms.

    Acks are sent as requests ("ack sync"): the server answers once the consumer has
    processed the ack, so progress read right after already counts these tasks.
    """
    await asyncio.gather(*(nc.request(reply, b"+ACK", timeout=timeout) for reply in replies))
