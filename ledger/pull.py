"""Reading the ledger in bulk, fast and bounded in bytes: every ledger reader goes here.

`ledger snapshot` (one-shot, its worker processes and `--follow`), `ledger replay`,
`ledger verify`, `ledger export`, `ledger dump` and the projections' live tail read up
to millions of ledger messages in one go. A ledger message carries a whole
`give_answers` batch (ten NER answers with their tokens are tens of KB), so counting
messages is no bound: 2,000 of them in flight once passed the 64 MiB that nats-server
lets a client have pending (`max_pending`), and the server dropped the reader as a slow
consumer. Here every pull request carries `max_bytes` as well as a message count,
and one request is in flight at a time, so what NATS may send ahead of the reader is
at most `READ_BYTES`, whatever the messages' size. The next request goes out as soon
as the previous one is complete — while the reader still works through its messages —
so reading stays pipelined.

nats.py's `fetch` schedules a task per message, which costs more than Quorum's own work
on it; the messages arrive through one subscription callback instead, in stream order,
on an ephemeral in-memory consumer deleted at the end (or a durable one, for the
snapshotter). A stall — nothing arrives and the server has nothing in flight — is
retried on a fresh consumer from the last sequence read; only then is it reported,
naming that sequence. Readers never write to the ledger.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import cast

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from ledger.errors import LedgerError, LedgerUnavailable
from ledger.streams import MAX_MESSAGE_BYTES

__all__ = ["READ_BYTES", "STALL_SECONDS", "LedgerStalled", "pull_all", "pull_follow"]

READ_BYTES = 16 * 1024 * 1024
"""The most bytes of ledger messages a reader lets NATS send ahead of what it consumed
(one pull request's `max_bytes`). A quarter of nats-server's default `max_pending` (64
MiB: a client with more pending is dropped as a slow consumer) and far under nats.py's
subscription `pending_bytes_limit`, and above the largest ledger message
(`MAX_MESSAGE_BYTES`), so any message fits one request. Lower it (tests do) and a
message bigger than a request is fetched alone."""
STALL_SECONDS = 10.0
"""No progress for this long, with nothing in flight, is a stall: retried, then reported."""
RETRIES = 2
"""Fresh consumers tried from the last sequence read before a stall is reported."""

_EXPIRES_NS = 5_000_000_000
_PROBE_SECONDS = 0.5
_STATUS = "Status"
_DESCRIPTION = "Description"


class LedgerStalled(LedgerError):
    """NATS stopped delivering ledger messages, even to a fresh consumer."""


class _Reader:
    """One consumer, one subscription and at most one pull request in flight."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject: str,
        *,
        batch: int,
        max_bytes: int,
        durable: str | None,
        expires_ns: int,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.subject = subject
        self.batch = max(1, batch)
        self.max_bytes = max(1024, max_bytes)
        self.durable = durable
        self.expires_ns = expires_ns
        self.ready: collections.deque[Msg] = collections.deque()
        self.ready_bytes = 0
        self.arrived = asyncio.Event()
        self.consumer = ""
        self.subscription: Subscription | None = None
        self.inbox = ""
        self.request = 0
        """Id of the request in flight (its reply subject ends in it); 0: none."""
        self.request_batch = 0
        self.request_got = 0
        self.requests = 0
        self.oversize = False
        """The next message is bigger than a request: fetch it alone, unbounded."""
        self.timed_out = False
        """The last request ended without messages (expired): the reader is idle."""
        self.gone = False
        """The server said the consumer is gone."""
        self.last_seq = 0
        """Stream sequence of the last message handed to the caller."""
        self.last_dseq = 0
        """Consumer sequence of the last data message received."""
        self.last_progress = time.monotonic()
        """When data last arrived (following: anything, since idle is normal there)."""
        self.follow = False

    async def open(self, start_seq: int) -> int:
        """(Re)create the consumer at `start_seq`; return how many messages it has."""
        await self.close()
        if self.durable:
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(self.stream, self.durable)
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start_seq, 1),
            filter_subject=self.subject,
            inactive_threshold=None if self.durable else 60.0,
            mem_storage=not self.durable,
        )
        info = await self.js.add_consumer(self.stream, config)
        self.consumer = info.name
        self.inbox = self.nc.new_inbox()
        self.subscription = await self.nc.subscribe(
            f"{self.inbox}.*",
            cb=self._on_message,
            # Never the limit: what arrives is bounded by the requests, and a dropped
            # message would be a gap.
            pending_msgs_limit=4 * self.batch + 64,
            pending_bytes_limit=3 * self.max_bytes + 2 * MAX_MESSAGE_BYTES,
        )
        self.request = 0
        self.gone = False
        self.last_dseq = 0
        self.last_progress = time.monotonic()
        return int(info.num_pending or 0)

    async def close(self) -> None:
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()
            self.subscription = None
        self.ready.clear()
        self.ready_bytes = 0
        if self.consumer and not self.durable:
            with contextlib.suppress(Exception):  # an ephemeral consumer expires by itself anyway
                await self.js.delete_consumer(self.stream, self.consumer)
        self.consumer = ""

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and _STATUS in headers and not msg.data:
            self._on_status(msg.subject, headers)
            return
        self.ready.append(msg)
        self.ready_bytes += len(msg.data)
        self.request_got += 1
        if self.request_got >= self.request_batch:
            self.request = 0  # complete: the server sends no status for a full batch
        self.last_dseq = msg.metadata.sequence.consumer
        self.last_progress = time.monotonic()
        self.arrived.set()

    def _on_status(self, subject: str, headers: dict[str, str]) -> None:
        if subject.rsplit(".", 1)[-1] != str(self.request) or not self.request:
            return  # about a request already settled
        code, description = headers[_STATUS], headers.get(_DESCRIPTION, "")
        got = self.request_got
        self.request = 0
        if self.follow:
            self.last_progress = time.monotonic()
        if code in ("404", "408"):
            self.timed_out = got == 0
        elif code == "409" and description == "Message Size Exceeds MaxBytes":
            self.oversize = got == 0
        else:
            self.gone = True  # consumer deleted, bad request, …: start afresh on a new consumer
        self.arrived.set()

    async def ask(self) -> None:
        """Send the next pull request, unless one is in flight or enough is buffered."""
        if self.request or self.ready_bytes >= self.max_bytes or self.subscription is None:
            return
        self.requests += 1
        self.request = self.requests
        self.request_got = 0
        if self.oversize:
            # One message bigger than a request: fetched alone. It is at most the
            # stream's largest message, which the server's max_payload admits.
            self.request_batch = 1
            body = {"batch": 1, "expires": self.expires_ns}
            self.oversize = False
        else:
            self.request_batch = self.batch
            body = {"batch": self.batch, "max_bytes": self.max_bytes, "expires": self.expires_ns}
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        await self.nc.publish(next_subject, msgspec.json.encode(body), reply=f"{self.inbox}.{self.request}")

    def take(self) -> Msg:
        msg = self.ready.popleft()
        self.ready_bytes -= len(msg.data)
        return msg

    async def probe(self) -> int | None:
        """Ask the server about the consumer when nothing arrives for a while.

        Settles a request the server finished without a word (it sends no status when a
        request's bytes run out exactly) and returns the consumer's `num_pending` when
        nothing is in flight; None while messages are still on their way or the
        consumer is gone (`gone` is then set).
        """
        try:
            info = await self.js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            self.gone = True
            return None
        delivered = info.delivered.consumer_seq if info.delivered else 0
        if delivered != self.last_dseq:
            return None  # sent but not here yet
        if self.request and not info.num_waiting:
            self.request = 0
        return int(info.num_pending or 0)


def _stalled(reader: _Reader, stall: float, retries: int) -> LedgerStalled:
    return LedgerStalled(
        f"reading the ledger stalled at sequence {reader.last_seq + 1:,}: NATS delivered nothing for "
        f"{stall:g} s, also on {retries} fresh consumer{'s' if retries != 1 else ''}. Everything "
        f"before that sequence was read; check the NATS server (its log names slow consumers) and run "
        f"the command again"
    )


def _lost(reader: _Reader) -> LedgerUnavailable:
    return LedgerUnavailable(
        f"lost NATS while reading the ledger at sequence {reader.last_seq + 1:,}; everything before "
        f"it was read. Run the command again once NATS is back"
    )


async def _run(
    reader: _Reader,
    start_seq: int,
    *,
    follow: bool,
    stall: float,
    retries: int,
) -> AsyncGenerator[Msg | None, None]:
    # Not following, reading ends at the stream's last message when it starts.
    end_seq = None if follow else int((await reader.js.stream_info(reader.stream)).state.last_seq or 0)
    reader.follow = follow
    reader.last_seq = max(start_seq, 1) - 1
    pending = await reader.open(start_seq)
    attempts = 0
    try:
        while follow or pending > 0:
            if not reader.request and not reader.gone and not reader.nc.is_closed:
                await reader.ask()  # the next request goes out while the last one's messages are used
            if reader.ready:
                msg = reader.take()
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq <= reader.last_seq:
                    continue  # already handed out, before a retry
                if end_seq is not None and seq > end_seq:
                    return
                reader.last_seq = seq
                pending = meta.num_pending
                attempts = 0
                yield msg
                if end_seq is not None and seq >= end_seq:
                    return
                continue
            if reader.nc.is_closed:
                raise _lost(reader)
            if reader.gone:
                attempts += 1
                if attempts > retries:
                    raise _stalled(reader, stall, retries)
                pending = await reader.open(reader.last_seq + 1)
                continue
            if reader.timed_out and follow:
                reader.timed_out = False
                yield None  # idle: nothing new for a request's lifetime
                continue
            if reader.timed_out:
                # Ended without messages: were some deleted meanwhile? Ask what is left.
                reader.timed_out = False
                left = await reader.probe()
                pending = pending if left is None else left
                continue
            reader.arrived.clear()
            try:
                await asyncio.wait_for(reader.arrived.wait(), _PROBE_SECONDS)
                continue
            except TimeoutError:
                pass
            left = await reader.probe()
            if left is not None and not follow:
                pending = left
            if time.monotonic() - reader.last_progress >= stall and not reader.ready:
                if reader.nc.is_closed:
                    raise _lost(reader)
                reader.gone = True  # start afresh from the last sequence read
                reader.last_progress = time.monotonic()
    except NatsError as exc:
        if reader.nc.is_closed or isinstance(exc, ConnectionClosedError):
            raise _lost(reader) from exc
        raise LedgerError(
            f"reading the ledger failed at sequence {reader.last_seq + 1:,}: {exc!r}; everything "
            f"before it was read"
        ) from exc
    finally:
        await reader.close()


def pull_all(
    nc: Client,
    stream: str,
    subject: str,
    start_seq: int,
    batch: int = 1000,
    *,
    max_bytes: int | None = None,
    stall: float | None = None,
) -> AsyncGenerator[Msg, None]:
    """Each message of `stream` on `subject` from `start_seq` to the stream's end when
    reading starts, in order, at most `max_bytes` (default `READ_BYTES`) in flight.

    Raises `LedgerStalled` when NATS stops delivering, even to fresh consumers, and
    `LedgerUnavailable` when the connection is lost; both name the sequence reached.
    """
    reader = _Reader(
        nc,
        stream,
        subject,
        batch=batch,
        max_bytes=max_bytes or READ_BYTES,
        durable=None,
        expires_ns=_EXPIRES_NS,
    )
    # Not following, `_run` yields messages only (never None). Returned as it is rather
    # than wrapped: a second generator layer cost a fifth of the read time.
    messages = _run(reader, start_seq, follow=False, stall=stall or STALL_SECONDS, retries=RETRIES)
    return cast(AsyncGenerator[Msg, None], messages)


def pull_follow(
    nc: Client,
    stream: str,
    subject: str,
    start_seq: int,
    *,
    durable: str | None = None,
    idle: float = 1.0,
    batch: int = 1000,
    max_bytes: int | None = None,
    stall: float | None = None,
) -> AsyncGenerator[Msg | None, None]:
    """Like `pull_all`, but never ends: after the last message it waits for new ones,
    yielding None whenever `idle` seconds pass without one. A `durable` consumer is
    recreated at `start_seq` (the caller's own record of its position wins)."""
    reader = _Reader(
        nc,
        stream,
        subject,
        batch=batch,
        max_bytes=max_bytes or READ_BYTES,
        durable=durable,
        expires_ns=int(max(idle, 0.05) * 1e9),
    )
    return _run(reader, start_seq, follow=True, stall=max(stall or STALL_SECONDS, 2 * idle), retries=RETRIES)
