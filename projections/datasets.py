"""The dataset projection read straight from the ledger: latest answer per task per session.

This is the reference implementation of the dataset's semantics, in plain Python over
the stream: the latest decision of a session on a task wins, a retried answer never
shows twice (see `answers` for the exact rule), it honours
`DatasetDropped` tombstones and keeps the first k sessions per task. The DuckDB
`answers` view (`projections/views.sql`) implements the same rules over snapshots and
the live tail and is what `db-out` and `stats` read; a test holds the two to
byte-identical exports. `prodigy_record` / `to_prodigy` give the JSONL shape for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client

from ledger.events import AnswerRecorded, DatasetConfigured, DatasetDropped, is_keyed
from ledger.projectable import Skips, load_quarantine
from ledger.store import Ledger

__all__ = ["answers", "prodigy_record", "to_prodigy"]

# Prodigy's key order for the bookkeeping keys that follow the example's own keys.
_TAIL = ("_input_hash", "_task_hash", "_view_id", "answer", "_timestamp", "_annotator_id", "_session_id")


def prodigy_record(
    example: dict[str, Any],
    input_hash: int,
    task_hash: int,
    view_id: str,
    answer: str,
    timestamp: int,
    session_id: str,
) -> dict[str, Any]:
    """Prodigy's JSONL shape: the example's own keys, then hashes, answer, time, session."""
    record = {k: v for k, v in example.items() if k not in _TAIL}
    record["_input_hash"] = input_hash
    record["_task_hash"] = task_hash
    record["_view_id"] = view_id
    record["answer"] = answer
    record["_timestamp"] = timestamp
    record["_annotator_id"] = session_id
    record["_session_id"] = session_id
    return record


def to_prodigy(event: AnswerRecorded) -> dict[str, Any]:
    """The answer in Prodigy's JSONL shape (`_timestamp` in seconds)."""
    return prodigy_record(
        event.example,
        event.input_hash,
        event.task_hash,
        event.view_id,
        event.answer,
        event.recorded_at // 1000,
        event.session_id,
    )


def _cap(config: dict[str, Any]) -> int | None:
    """How many sessions' answers per task the dataset keeps (None: every session's)."""
    routing = config.get("routing") or {}
    if routing.get("feed_overlap"):
        return None
    return int(routing.get("annotations_per_task") or 1)


async def answers(
    nc: Client, dataset: str, *, session: str | None = None, answer: str | None = None
) -> AsyncIterator[AnswerRecorded]:
    """The dataset's current answers: the latest decision per (task, session), in
    first-answer order.

    A keyed answer's retry (the same client decision key) and an answer identical to the
    session's current one on the task change nothing; any other answer replaces it.

    Without full overlap, a task keeps the answers of the first k sessions that answered
    it (k = `annotations_per_task`, 1 without overlap): a late answer to a task that went
    to someone else after `ack_wait` stays in the ledger but is not a (k+1)-th answer.
    """
    latest: dict[tuple[int, str], AnswerRecorded] = {}
    sessions_by_task: dict[int, list[str]] = {}
    seen: set[str] = set()
    cap: int | None = 1
    skips = Skips(await load_quarantine(nc, dataset))  # what no row can hold, the views never see
    async for raw in Ledger(nc).read_raw(dataset):
        for _, event, _ in skips.read(raw.seq, raw.data, dataset):
            # Configurations, drops and keyed answers count at their first place only;
            # an unkeyed answer counts wherever it is not identical to the current one.
            if not isinstance(event, AnswerRecorded) or is_keyed(event.event_id):
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
            if isinstance(event, DatasetDropped):
                latest.clear()
                sessions_by_task.clear()
                seen.clear()  # the same answer given again after a drop counts
            elif isinstance(event, DatasetConfigured):
                cap = _cap(event.config)
            elif isinstance(event, AnswerRecorded):
                answered = sessions_by_task.setdefault(event.task_hash, [])
                if event.session not in answered:
                    if cap is not None and len(answered) >= cap:
                        continue
                    answered.append(event.session)
                current = latest.get((event.task_hash, event.session))
                if current is None or current.event_id != event.event_id:
                    latest[(event.task_hash, event.session)] = event
    for event in latest.values():
        if session is not None and event.session != session:
            continue
        if answer is not None and event.answer != answer:
            continue
        yield event
