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
from ledger.routes import consumer_info, route_of, session_consumer_name, sessions_holding_tasks
from ledger.snapshot_status import read_status, snapshot_warning
from ledger.streams import CONFIG_BUCKET
from recipes.status import read_runner_status, runner_warning

__all__ = ["QueueStatus", "SessionStatus", "health_warnings", "queue_status"]

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
    stream: str | None = None
    """The recipe runner's stream: `streaming`, `done` or `failed` (None: queued in full)."""
    warning: str | None = None
    """What needs a look: a failed stream, a disabled `update`."""
    progress: float | None = None
    """The recipe's own `progress` value, when it has one."""


async def queue_status(nc: Client, info: DatasetInfo, snapshot_dir: str | None = None) -> QueueStatus:
    """The dataset's queue status, per session."""
    from projections.reports import answer_counts  # here: DuckDB and Arrow load only when needed

    route = route_of(info)
    answered: Counter[str] = await answer_counts(nc, info.dataset, snapshot_dir)
    sessions = sorted(set(answered) | set(await sessions_holding_tasks(nc, info.dataset)))
    now = now_ms()
    holds = await asyncio.gather(*(read_holds(nc, info.dataset, s) for s in sessions))
    out_by_session = {
        s: sum(1 for t in record.tasks.values() if t.redeliver_at_ms > now)
        for s, (record, _) in zip(sessions, holds, strict=True)
    }
    rows = [SessionStatus(s, out_by_session[s], answered[s]) for s in sessions]
    queued_so_far = info.total if info.queued is None else info.queued
    if route.mode == "full":
        infos = await asyncio.gather(
            *(consumer_info(nc, info.dataset, session_consumer_name(info.dataset, s)) for s in sessions)
        )
        for row, counters in zip(rows, infos, strict=True):
            row.queued = (counters.num_pending or 0) if counters else queued_so_far - row.answered
        queued = sum(row.queued or 0 for row in rows)
        out = sum(row.out for row in rows)
    else:
        infos = await asyncio.gather(
            *(consumer_info(nc, info.dataset, name) for name in route.consumers_for(""))
        )
        queued = sum((c.num_pending or 0) for c in infos if c)
        out = sum((c.num_ack_pending or 0) for c in infos if c)
    runner = await read_runner_status(await nc.jetstream().key_value(CONFIG_BUCKET), info.dataset)
    return QueueStatus(
        stream=runner.stream if runner else None,
        progress=runner.progress if runner else None,
        warning=runner_warning(runner),
        dataset=info.dataset,
        mode=route.mode,
        annotations_per_task=route.k,
        total=info.total,
        queued=queued,
        out=out,
        answered=sum(answered.values()),
        sessions=rows,
    )


async def health_warnings(
    nc: Client | None, dataset: str | None = None, *, snapshots: bool = True
) -> dict[str, str]:
    """`{"snapshots": "failing: <reason>"}` while the snapshotter reports trouble (or has
    stopped reporting), `{"recipe": "stream failed: …"}` while `dataset`'s runner does;
    else nothing. Liveness must not hang on NATS: a slow or absent NATS says nothing here
    (`/ready` reports it)."""
    if nc is None or not nc.is_connected:
        return {}

    async def warnings() -> dict[str, str | None]:
        kv = await nc.jetstream().key_value(CONFIG_BUCKET)
        found = {"snapshots": snapshot_warning(await read_status(kv)) if snapshots else None}
        if dataset:
            found["recipe"] = runner_warning(await read_runner_status(kv, dataset))
        return found

    try:
        found = await asyncio.wait_for(warnings(), _HEALTH_TIMEOUT)
    except Exception:  # no bucket yet, NATS busy or gone: /ready is the place for that
        return {}
    return {key: value for key, value in found.items() if value}
