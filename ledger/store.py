"""Appending to and reading from the ledger (the `EVENTS` stream).

The ledger never rewrites: an append publishes one message per batch. JetStream's
`Nats-Msg-Id` dedupe window is only a cache: a caller passes a dedupe id only when a
message with the same id provably repeats a stored one (every event of the batch names
a client decision key, see `ledger.events.answer_event_id`). Everything else is appended
as sent, and the projections' rules make a repeat count once, at any delay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import xxhash
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from ledger.errors import LedgerError
from ledger.events import (
    AnswerRecorded,
    DatasetConfigured,
    DatasetDropped,
    Event,
    EventsQuarantined,
    ReviewRecorded,
    decode_batch,
    encode_batch,
)
from ledger.pull import pull_all
from ledger.streams import EVENTS_STREAM, events_subject

__all__ = ["Ledger", "LedgerEntry", "RawEntry", "batch_msg_id", "subject_kind"]

_KINDS: dict[type, str] = {
    AnswerRecorded: "answers",
    ReviewRecorded: "reviews",
    DatasetConfigured: "config",
    DatasetDropped: "dropped",
    EventsQuarantined: "quarantined",
}


def batch_msg_id(events: Sequence[Event]) -> str:
    """A `Nats-Msg-Id` derived from a batch's event ids: equal ids, equal batches."""
    return "b-" + xxhash.xxh3_128_hexdigest(",".join(e.event_id for e in events).encode())


def subject_kind(event: Event | type[Event]) -> str:
    """The last subject token for an event (or an event class): `answers`, `reviews`,
    `config`, `dropped`, `quarantined`."""
    return _KINDS[event if isinstance(event, type) else type(event)]


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One ledger message, not decoded."""

    seq: int
    timestamp_ns: int
    data: bytes
    subject: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ledger message as read back: its stream position and its events."""

    seq: int
    timestamp_ns: int
    events: list[Event]


class Ledger:
    """The EVENTS stream seen as an append-only log of `Event` batches."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._js = nc.jetstream()

    async def append(self, events: Sequence[Event], *, dedupe: bool = False) -> int:
        """Append `events` (all of one dataset and kind) as one message; return its seq.

        Returns only after JetStream acknowledged the write (and, with
        `sync_interval: always`, fsynced it). `dedupe`: the batch's event ids name
        decisions, so an equal batch within JetStream's window is a retry of a stored
        one and is dropped (the projections would count it once anyway).
        """
        if not events:
            raise ValueError("append needs at least one event")
        first = events[0]
        kind = subject_kind(first)
        if any(e.dataset != first.dataset or subject_kind(e) != kind for e in events):
            raise ValueError("one ledger message holds events of one dataset and kind")
        headers = {"Nats-Msg-Id": batch_msg_id(events)} if dedupe else None
        try:
            ack = await self._js.publish(
                events_subject(first.dataset, kind),
                encode_batch(events),
                stream=EVENTS_STREAM,
                headers=headers,
                timeout=10,
            )
        except Exception as exc:
            raise LedgerError(f"the ledger did not acknowledge the append: {exc!r}") from exc
        return int(ack.seq)

    async def read(
        self,
        dataset: str | None = None,
        *,
        start_seq: int = 1,
        to_seq: int | None = None,
        batch: int = 2000,
    ) -> AsyncIterator[LedgerEntry]:
        """Yield ledger messages in stream order, as they stand when reading starts."""
        async for raw in self.read_raw(dataset, start_seq=start_seq, to_seq=to_seq, batch=batch):
            yield LedgerEntry(raw.seq, raw.timestamp_ns, decode_batch(raw.data))

    async def read_raw(
        self,
        dataset: str | None = None,
        *,
        start_seq: int = 1,
        to_seq: int | None = None,
        batch: int = 2000,
    ) -> AsyncIterator[RawEntry]:
        """Like `read`, without decoding: the message bytes as the ledger holds them."""
        subject = events_subject(dataset or "*", ">") if dataset else "quorum.events.>"
        try:
            messages = pull_all(self._nc, EVENTS_STREAM, subject, start_seq, batch)
            async for msg in messages:
                meta = msg.metadata
                seq = meta.sequence.stream
                if to_seq is not None and seq > to_seq:
                    await messages.aclose()
                    return
                stamp = int(meta.timestamp.timestamp() * 1_000_000_000)
                yield RawEntry(seq, stamp, msg.data, msg.subject)
        except NotFoundError:
            return
