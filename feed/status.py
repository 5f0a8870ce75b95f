"""Status without side effects: what is queued, out and answered, per session, and
whether the snapshots are kept current (for `/health`).

Reads consumer counters, the HOLDS records, the ledger and the snapshotter's report;
hands out nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
from nats.aio.client import Client

from feed.holds import read_holds
from ledger.datasets import DatasetInfo
from ledger.events import now_ms
from ledger.routes import consumer_info, route_of, session_consumer_name
from ledger.snapshot_status import read_status, snapshot_warning
from ledger.streams import CONFIG_BUCKET, HOLDS_STREAM, holds_subject
from projections.reports import answer_counts

__all__ = ["QueueStatus", "SessionStatus", "queue_status", "snapshot_health"]

_HEALTH_TIMEOUT = 1.0


class SessionStatus(msgspec.Struct):
    """One session: tasks it holds unanswered (`out`) and has answered."""

    session: str
    out: int
    answered: int
    queued: int | None = None


class QueueStatus(msgspec.Struct):
    """One dataset's queue. `queued` + `out` + `answered` covers every hand-out still owed."""

    dataset: str
    mode: str
    annotations_per_task: int
    total: int
    queued: int
    out: int
    answered: int
    sessions: list[SessionStatus]


async def _sessions_with_holds(nc: Client, dataset: str) -> list[str]:
    info = await nc.jetstream().stream_info(HOLDS_STREAM, subjects_filter=holds_subject(dataset, "*"))
    prefix = holds_subject(dataset, "")
    return sorted(subject.removeprefix(prefix) for subject in (info.state.subjects or {}))


async def queue_status(nc: Client, info: DatasetInfo, snapshot_dir: str | None = None) -> QueueStatus:
    """The dataset's queue status, per session."""
    route = route_of(info)
    answered: Counter[str] = await answer_counts(nc, info.dataset, snapshot_dir)
    sessions = sorted(set(answered) | set(await _sessions_with_holds(nc, info.dataset)))
    now = now_ms()
    holds = await asyncio.gather(*(read_holds(nc, info.dataset, s) for s in sessions))
    out_by_session = {
        s: sum(1 for t in record.tasks.values() if t.redeliver_at_ms > now)
        for s, (record, _) in zip(sessions, holds, strict=True)
    }
    rows = [SessionStatus(s, out_by_session[s], answered[s]) for s in sessions]
    if route.mode == "full":
        infos = await asyncio.gather(
            *(consumer_info(nc, info.dataset, session_consumer_name(info.dataset, s)) for s in sessions)
        )
        for row, counters in zip(rows, infos, strict=True):
            row.queued = (counters.num_pending or 0) if counters else info.total - row.answered
        queued = sum(row.queued or 0 for row in rows)
        out = sum(row.out for row in rows)
    else:
        infos = await asyncio.gather(
            *(consumer_info(nc, info.dataset, name) for name in route.consumers_for(""))
        )
        queued = sum((c.num_pending or 0) for c in infos if c)
        out = sum((c.num_ack_pending or 0) for c in infos if c)
    return QueueStatus(
        dataset=info.dataset,
        mode=route.mode,
        annotations_per_task=route.k,
        total=info.total,
        queued=queued,
        out=out,
        answered=sum(answered.values()),
        sessions=rows,
    )


async def snapshot_health(nc: Client | None, *, enabled: bool = True) -> dict[str, str]:
    """`{"snapshots": "failing: <reason>"}` while the snapshotter reports trouble (or has
    stopped reporting), else nothing. Liveness must not hang on NATS: a slow or absent
    NATS says nothing here (`/ready` reports it)."""
    if nc is None or not enabled or not nc.is_connected:
        return {}

    async def warning() -> str | None:
        kv = await nc.jetstream().key_value(CONFIG_BUCKET)
        return snapshot_warning(await read_status(kv))

    try:
        found = await asyncio.wait_for(warning(), _HEALTH_TIMEOUT)
    except Exception:  # no bucket yet, NATS busy or gone: /ready is the place for that
        return {}
    return {"snapshots": found} if found else {}
