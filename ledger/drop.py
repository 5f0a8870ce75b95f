"""Dropping a dataset: a tombstone in the ledger, then the routing state cleared away.

The ledger is the source of truth, so the `DatasetDropped` tombstone goes first; from
then on the projections ignore everything the dataset recorded before it. The cleanup
that follows removes what only routes work — queued tasks (TASKS), k-overlap claims
(SEEN), held tasks (HOLDS), the dataset's feed consumers — and deletes its configuration
from the `quorum-config` bucket last. Each step is idempotent and the configuration key
is the marker of an unfinished drop: run the drop again after a crash and it finishes.

A drop never touches the dataset's history: its answers stay in the EVENTS stream until
`ledger compact` purges them. It never touches another dataset either: consumers are
matched by exact name *and* task subject, so `news` never takes `news-2`'s with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import xxhash
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from ledger.datasets import get_dataset
from ledger.errors import LedgerError, UnknownDataset
from ledger.events import DatasetDropped, now_ms
from ledger.hashing import canonical_json
from ledger.names import validate_dataset_name
from ledger.routes import owns_consumer
from ledger.store import Ledger
from ledger.streams import (
    CLAIMS_STREAM,
    CONFIG_BUCKET,
    EVENTS_STREAM,
    HOLDS_STREAM,
    SEEN_STREAM,
    TASKS_STREAM,
    claims_subject,
    ensure_streams,
    events_subject,
    holds_subject,
    seen_subject,
    tasks_subject,
)

__all__ = [
    "DropReport",
    "drop_dataset",
    "drop_event_id",
    "dropped_at_seq",
    "previous_drop",
]


@dataclass
class DropReport:
    """What a drop did. `already_dropped`: an earlier drop had finished; no new tombstone."""

    dataset: str
    tombstone_seq: int
    already_dropped: bool = False
    purged_tasks: int = 0
    purged_seen: int = 0
    purged_holds: int = 0
    purged_claims: int = 0
    deleted_consumers: list[str] = field(default_factory=list)


def drop_event_id(dataset: str, recorded_at: int) -> str:
    """The tombstone's id: a retried append of the same drop dedupes, a later drop does not."""
    return "drop-" + xxhash.xxh3_128_hexdigest(canonical_json([dataset, recorded_at]))


async def _last_seq(nc: Client, subject: str) -> int:
    try:
        msg = await nc.jetstream().get_last_msg(EVENTS_STREAM, subject, direct=True)
    except NotFoundError:
        return 0
    return int(msg.seq or 0)


async def dropped_at_seq(nc: Client, dataset: str) -> int | None:
    """The seq of the dataset's last tombstone if nothing configured it since, else None."""
    dropped = await _last_seq(nc, events_subject(dataset, "dropped"))
    if dropped and dropped > await _last_seq(nc, events_subject(dataset, "config")):
        return dropped
    return None


async def _purge(nc: Client, stream: str, subject: str) -> int:
    """Purge `subject` from `stream`; return how many messages went."""
    request = json.dumps({"filter": subject}).encode()
    try:
        reply = json.loads((await nc.request(f"$JS.API.STREAM.PURGE.{stream}", request, timeout=30)).data)
    except Exception as exc:
        raise LedgerError(f"NATS did not purge {subject} from {stream}: {exc!r}; run the drop again") from exc
    if "error" in reply:
        description = reply["error"].get("description", reply["error"])
        raise LedgerError(f"NATS refused to purge {subject} from {stream}: {description}; run the drop again")
    return int(reply.get("purged", 0))


async def _delete_consumers(nc: Client, dataset: str) -> list[str]:
    js = nc.jetstream()
    owned: list[str] = []
    offset = 0
    while True:  # the server lists 256 consumers per page
        page = await js.consumers_info(TASKS_STREAM, offset=offset)
        owned += [info.name for info in page if owns_consumer(dataset, info)]
        offset += len(page)
        if len(page) < 256:
            break
    deleted = []
    for name in sorted(owned):
        try:
            await js.delete_consumer(TASKS_STREAM, name)
        except NotFoundError:
            continue  # gone meanwhile (a session consumer expiring): just as good
        deleted.append(name)
    return deleted


async def _cleanup(nc: Client, kv: KeyValue, report: DropReport) -> DropReport:
    dataset = report.dataset
    report.purged_tasks = await _purge(nc, TASKS_STREAM, tasks_subject(dataset))
    report.purged_seen = await _purge(nc, SEEN_STREAM, seen_subject(dataset, "*", "*"))
    report.purged_holds = await _purge(nc, HOLDS_STREAM, holds_subject(dataset, "*"))
    report.purged_claims = await _purge(nc, CLAIMS_STREAM, claims_subject(dataset))
    report.deleted_consumers = await _delete_consumers(nc, dataset)
    # Last: while the key is there, the drop is unfinished and running it again finishes it.
    await kv.purge(f"dataset.{dataset}")
    return report


async def previous_drop(nc: Client, dataset: str) -> int | None:
    """None while `dataset` is configured; the seq of its tombstone once a drop finished.

    Raises `UnknownDataset` if there is nothing to drop.
    """
    validate_dataset_name(dataset)
    kv = await ensure_streams(nc.jetstream())
    try:
        await get_dataset(kv, dataset)
        return None
    except UnknownDataset:
        seq = await dropped_at_seq(nc, dataset)
        if seq is None:
            raise UnknownDataset(
                f"unknown dataset {dataset!r}: nothing to drop. `quorum stats` lists the datasets"
            ) from None
        return seq


async def drop_dataset(nc: Client, dataset: str) -> DropReport:
    """Drop `dataset`: append its tombstone, then clear its tasks, routing state and config.

    Raises `UnknownDataset` if there is nothing to drop. A dataset whose drop finished
    gets no second tombstone: the report says `already_dropped` (and the cleanup, being
    idempotent, runs again anyway).
    """
    seq = await previous_drop(nc, dataset)  # creates the streams and bucket if need be
    kv = await nc.jetstream().key_value(CONFIG_BUCKET)
    if seq is not None:
        return await _cleanup(nc, kv, DropReport(dataset, seq, already_dropped=True))
    # Configured: even if a tombstone is last in the ledger already (a drop that crashed
    # before its cleanup), append a new one, because a recipe may have configured the
    # dataset again since in a message the ledger deduped.
    recorded_at = now_ms()
    tombstone = DatasetDropped(
        event_id=drop_event_id(dataset, recorded_at), dataset=dataset, recorded_at=recorded_at
    )
    seq = await Ledger(nc).append([tombstone])
    return await _cleanup(nc, kv, DropReport(dataset, seq))
