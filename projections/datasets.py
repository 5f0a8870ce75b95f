"""The dataset projection read straight from the ledger: latest answer per task per session.

This is the live path `db-out` and `stats` use today; it dedupes on event id (so a
retried append never shows twice) and honours `DatasetDropped` tombstones. The DuckDB
projections over Parquet snapshots will take over the heavy lifting; the semantics
stay these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from ledger.events import AnswerRecorded, DatasetConfigured, DatasetDropped
from ledger.store import Ledger

__all__ = ["DatasetStats", "answers", "dataset_stats", "to_prodigy"]

# Prodigy's key order for the bookkeeping keys that follow the example's own keys.
_TAIL = ("_input_hash", "_task_hash", "_view_id", "answer", "_timestamp", "_annotator_id", "_session_id")


def to_prodigy(event: AnswerRecorded) -> dict[str, Any]:
    """The answer in Prodigy's JSONL shape: the example, then hashes, answer, session."""
    record = {k: v for k, v in event.example.items() if k not in _TAIL}
    record["_input_hash"] = event.input_hash
    record["_task_hash"] = event.task_hash
    record["_view_id"] = event.view_id
    record["answer"] = event.answer
    record["_timestamp"] = event.recorded_at // 1000
    record["_annotator_id"] = event.session_id
    record["_session_id"] = event.session_id
    return record


async def answers(
    nc: Client, dataset: str, *, session: str | None = None, answer: str | None = None
) -> AsyncIterator[AnswerRecorded]:
    """The dataset's current answers: the latest per (task, session), in first-answer order."""
    latest: dict[tuple[int, str], AnswerRecorded] = {}
    seen: set[str] = set()
    async for entry in Ledger(nc).read(dataset):
        for event in entry.events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            if isinstance(event, DatasetDropped):
                latest.clear()
            elif isinstance(event, AnswerRecorded):
                latest[(event.task_hash, event.session)] = event
    for event in latest.values():
        if session is not None and event.session != session:
            continue
        if answer is not None and event.answer != answer:
            continue
        yield event


@dataclass
class DatasetStats:
    """Counts for one dataset."""

    dataset: str
    recipe: str = ""
    view_id: str = ""
    answers: Counter[str] = field(default_factory=Counter)
    sessions: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.answers.values())


async def dataset_stats(nc: Client, dataset: str) -> DatasetStats:
    """Answer counts by decision and by session."""
    stats = DatasetStats(dataset=dataset)
    async for entry in Ledger(nc).read(dataset):
        for event in entry.events:
            if isinstance(event, DatasetConfigured):
                stats.recipe, stats.view_id = event.recipe, event.view_id
    async for event in answers(nc, dataset):
        stats.answers[event.answer] += 1
        stats.sessions[event.session] += 1
    return stats
