"""Handing tasks out to sessions and claiming answer slots, over the routes of
`ledger.routes` (no overlap, full overlap, k per task).

- **k per task** (`annotations_per_task=k`): k shared "slot" consumers. A session takes a
  task from at most one slot — guarded by an atomic test-and-set in the `SEEN` stream —
  so each task reaches exactly k distinct sessions, whenever they join. Nothing is
  reserved for a session in advance; a task a session already has is released at once
  (NAK) for the next session that asks.

A task is acked only after its answer is in the ledger, by whichever worker receives the
answer, through the reply subject carried in the task token.

Hand-out is not the last word: a crash can lose a consumer's record of a delivery and
hand a task out again. So, without full overlap, an answer first claims one of the task's
k answer slots in the `CLAIMS` stream (an atomic create per slot). A session holding a
slot may answer again (a changed decision); a session finding all k slots held by others
gets `SurplusAnswer` (409), and its delivery is acked, since the task is done.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import APIError, NotFoundError

from ledger.hashing import hash_hex
from ledger.routes import Route
from ledger.streams import CLAIMS_STREAM, SEEN_STREAM, TASKS_STREAM, claims_subject, seen_subject

__all__ = [
    "Claim",
    "ConsumerMissing",
    "ack_tasks",
    "claim_answer",
    "claim_first_time",
    "fetch_tasks",
    "release",
    "release_claims",
]

_STATUS = "Status"
_PER_SUBJECT_LIMIT = 10077


class ConsumerMissing(Exception):
    """The server has no such consumer (not yet created, or deleted when idle)."""


async def fetch_tasks(nc: Client, consumer: str, batch: int, timeout: float = 2.0) -> list[Msg]:
    """Up to `batch` tasks available right now from `consumer`; never waits for new ones.

    Each call uses its own inbox, so concurrent requests in one worker never see each
    other's messages.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    msgs: list[Msg] = []
    try:
        request = f'{{"batch":{batch},"no_wait":true}}'.encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{TASKS_STREAM}.{consumer}", request, reply=inbox)
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
            status = msg.headers.get(_STATUS) if msg.headers else None
            if status == "100":  # heartbeat
                continue
            if status == "503" and not msgs:
                raise ConsumerMissing(consumer)
            if status:
                break  # 404 no messages, 408 request done, 409 limits: nothing more now
            msgs.append(msg)
    finally:
        await sub.unsubscribe()
    return msgs


async def claim_first_time(nc: Client, dataset: str, session: str, task_hash: int) -> bool:
    """True if `session` had never been handed this task (and records that it now has)."""
    try:
        await nc.jetstream().publish(
            seen_subject(dataset, session, hash_hex(task_hash)), b"", stream=SEEN_STREAM, timeout=5
        )
    except APIError as exc:
        if exc.err_code == _PER_SUBJECT_LIMIT:
            return False
        raise
    return True


async def release(nc: Client, msg: Msg, delay: float = 0.0) -> None:
    """Give a delivered task back to its consumer at once (or after `delay` seconds)."""
    payload = b"-NAK" if delay <= 0 else f'-NAK {{"delay": {int(delay * 1e9)}}}'.encode()
    await nc.publish(msg.reply, payload)


async def ack_tasks(nc: Client, replies: list[str], timeout: float = 5.0) -> None:
    """Ack delivered tasks by their reply subjects and wait until JetStream confirms.

    Acks are sent as requests ("ack sync"): the server answers once the consumer has
    processed the ack, so progress read right after already counts these tasks.
    """
    await asyncio.gather(*(nc.request(reply, b"+ACK", timeout=timeout) for reply in replies))


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming an answer slot: `granted`, and the claim this call stored."""

    task_hash: int
    granted: bool
    stored_seq: int | None = None
    """The CLAIMS message written by this call (None: the session held the slot already)."""


async def claim_answer(nc: Client, route: Route, session: str, task_hash: int) -> Claim:
    """Claim one of the task's answer slots for `session`; see the module docstring."""
    if route.mode == "full":
        return Claim(task_hash, True)
    js = nc.jetstream()
    task = hash_hex(task_hash)
    mine = session.encode()
    for slot in range(route.k):
        subject = claims_subject(route.dataset, task, slot)
        for _ in range(3):  # a slot released between our create and our read is free again
            try:
                ack = await js.publish(subject, mine, stream=CLAIMS_STREAM, timeout=5)
                return Claim(task_hash, True, int(ack.seq))
            except APIError as exc:
                if exc.err_code != _PER_SUBJECT_LIMIT:
                    raise
            try:
                holder = await js.get_last_msg(CLAIMS_STREAM, subject, direct=True)
            except NotFoundError:
                continue
            if holder.data == mine:
                return Claim(task_hash, True)
            break
    return Claim(task_hash, False)


async def release_claims(nc: Client, claims: list[Claim]) -> None:
    """Give back the slots these claims stored (their answers were not recorded).

    Best effort, on a path that is already failing: a slot that stays held is still the
    session's, so its retry passes, and the task is never answered twice.
    """
    js = nc.jetstream()
    seqs = [c.stored_seq for c in claims if c.stored_seq is not None]
    await asyncio.gather(*(js.delete_msg(CLAIMS_STREAM, seq) for seq in seqs), return_exceptions=True)
