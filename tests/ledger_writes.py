"""Helpers for the projection tests: events written to the real ledger, no HTTP.

(No tests here: the ledger and projection tests share it.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from ledger.connection import connect
from ledger.datasets import DatasetInfo, save_dataset
from ledger.events import (
    AnswerRecorded,
    DatasetConfigured,
    DatasetDropped,
    Event,
    answer_event_id,
    config_event_id,
)
from ledger.store import Ledger
from ledger.streams import ensure_streams

__all__ = ["answer", "configure", "drop", "register", "write"]

DAY_MS = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_clock = itertools.count()


def answer(
    dataset: str,
    session: str,
    task: int,
    decision: str = "accept",
    *,
    view_id: str = "classification",
    example: dict[str, Any] | None = None,
    at: int | None = None,
    handed_out_at: int | None = None,
    annotator: str | None = None,
    input_hash: int | None = None,
    decision_id: str | None = None,
) -> AnswerRecorded:
    """An answer by `session` to task hash `task`; the example defaults to a labelled text.

    `decision_id`: the client's decision key, as the web app sends it (`dec-` event id).
    """
    example = dict(example if example is not None else {"text": f"text {task}", "label": "POSITIVE"})
    example.setdefault("_input_hash", input_hash if input_hash is not None else task * 7)
    example.setdefault("_task_hash", task)
    example.setdefault("_view_id", view_id)
    recorded = at if at is not None else T0 + next(_clock) * 1000
    return AnswerRecorded(
        event_id=answer_event_id(dataset, session, task, decision, example, decision_id),
        dataset=dataset,
        session_id=f"{dataset}-{session}",
        session=session,
        annotator=annotator,
        answer=decision,  # type: ignore[arg-type]
        input_hash=example["_input_hash"],
        task_hash=task,
        view_id=view_id,
        example=example,
        handed_out_at=handed_out_at if handed_out_at is not None else recorded - 4000,
        recorded_at=recorded,
    )


def configure(
    dataset: str,
    *,
    feed_overlap: bool = False,
    annotations_per_task: int | None = None,
    view_id: str = "classification",
    recipe: str = "textcat.manual",
    labels: Sequence[str] = ("POSITIVE",),
    choice_style: str | None = None,
) -> DatasetConfigured:
    config: dict[str, Any] = {
        "labels": list(labels),
        "routing": {"feed_overlap": feed_overlap, "annotations_per_task": annotations_per_task},
    }
    if choice_style:
        config["choice_style"] = choice_style
    return DatasetConfigured(
        event_id=config_event_id(dataset, recipe, view_id, config),
        dataset=dataset,
        recipe=recipe,
        view_id=view_id,
        config=config,
        recorded_at=T0,
    )


def drop(dataset: str, at: int = T0) -> DatasetDropped:
    return DatasetDropped(event_id=f"drop-{dataset}-{at}", dataset=dataset, recorded_at=at)


async def write(nats_url: str, batches: Iterable[Sequence[Event]]) -> list[int]:
    """Append each batch as one ledger message (splitting by kind); their sequences."""
    nc = await connect(nats_url)
    try:
        await ensure_streams(nc.jetstream())
        ledger = Ledger(nc)
        seqs = []
        for batch in batches:
            for _, group in itertools.groupby(batch, key=type):
                seqs.append(await ledger.append(list(group)))
        return seqs
    finally:
        await nc.close()


async def register(nats_url: str, dataset: str, **info: Any) -> None:
    """Save the dataset's configuration in the KV bucket, as a recipe would."""
    nc = await connect(nats_url)
    try:
        kv = await ensure_streams(nc.jetstream())
        fields = {"recipe": "textcat.manual", "view_id": "classification", **info}
        await save_dataset(kv, DatasetInfo(dataset=dataset, **fields))
    finally:
        await nc.close()
