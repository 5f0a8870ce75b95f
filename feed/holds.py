"""What each session holds: tasks handed out to it and not yet answered.

One record per (dataset, session), the last message on `quorum.holds.<dataset>.<session>`
in the `HOLDS` stream. Writers use JetStream's expected-last-subject-sequence check, so
two concurrent requests of one session (a prefetch beside an answer flush) never lose
each other's changes. A reloaded page gets its held tasks back from here.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from nats.aio.client import Client
from nats.js.errors import APIError, NotFoundError

from ledger.errors import LedgerError
from ledger.streams import HOLDS_STREAM, holds_subject

__all__ = ["HeldTask", "Holds", "read_holds", "update_holds"]

_WRONG_LAST_SEQUENCE = 10071
_ATTEMPTS = 8


class HeldTask(msgspec.Struct, array_like=True, frozen=True):
    """A task handed to the session: its signed token and when that delivery expires."""

    token: str
    redeliver_at_ms: int
    token_expires_ms: int


class Holds(msgspec.Struct):
    """The session's held tasks by `_task_hash` (decimal string)."""

    tasks: dict[str, HeldTask] = msgspec.field(default_factory=dict)


_decoder = msgspec.json.Decoder(Holds)
_encoder = msgspec.json.Encoder()


async def read_holds(nc: Client, dataset: str, session: str) -> tuple[Holds, int]:
    """The current record and its stream sequence (0 when there is none)."""
    try:
        msg = await nc.jetstream().get_last_msg(HOLDS_STREAM, holds_subject(dataset, session), direct=True)
    except NotFoundError:
        return Holds(), 0
    return _decoder.decode(msg.data or b"{}"), int(msg.seq or 0)


async def update_holds(
    nc: Client,
    dataset: str,
    session: str,
    change: Callable[[Holds], Holds],
    now_ms: int,
    known: tuple[Holds, int] | None = None,
) -> Holds:
    """Apply `change` to the session's record with optimistic concurrency; return the result.

    `known` is a record the caller just read (saves a round trip when nobody wrote since).
    Entries whose token has expired are dropped on every write: nobody can answer them.
    """
    js = nc.jetstream()
    for _ in range(_ATTEMPTS):
        holds, seq = known if known is not None else await read_holds(nc, dataset, session)
        known = None
        updated = change(holds)
        updated.tasks = {k: v for k, v in updated.tasks.items() if v.token_expires_ms > now_ms}
        try:
            await js.publish(
                holds_subject(dataset, session),
                _encoder.encode(updated),
                stream=HOLDS_STREAM,
                headers={"Nats-Expected-Last-Subject-Sequence": str(seq)},
                timeout=5,
            )
        except APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                continue  # another request of this session wrote first: re-read and retry
            raise
        return updated
    raise LedgerError(f"could not record the tasks session {session!r} holds: too many concurrent writes")
