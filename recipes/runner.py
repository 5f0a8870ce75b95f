"""The recipe runner: it configures a recipe's dataset and queues its stream.

Runs in the process that owns the serving (the `quorum` parent), never in a feed worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from nats.aio.client import Client

from ledger.connection import connect
from ledger.datasets import DatasetInfo, get_dataset, save_dataset
from ledger.errors import QuorumError, UnknownDataset
from ledger.events import DatasetConfigured, config_event_id, now_ms
from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from ledger.routes import ensure_consumers, route_of
from ledger.store import Ledger
from ledger.streams import ensure_streams
from ledger.tasks import LoadSummary, count_tasks, load_tasks
from projections.datasets import answers
from recipes.components import Components, check_components, peek_checked
from recipes.settings import Settings

__all__ = ["load_components", "routing_of"]


def routing_of(settings: Settings) -> dict[str, Any]:
    """The dataset routing settings a recipe run asks for."""
    return {
        "feed_overlap": settings.feed_overlap,
        "annotations_per_task": settings.annotations_per_task,
        "ack_wait": settings.ack_wait,
        "max_ack_pending": settings.max_ack_pending,
        "session_idle": settings.session_idle,
    }


def _check_same_routing(existing: DatasetInfo, wanted: dict[str, Any]) -> None:
    before = (existing.feed_overlap, existing.annotations_per_task or 1)
    after = (wanted["feed_overlap"], wanted["annotations_per_task"] or 1)
    if before != after:
        raise QuorumError(
            f"dataset {existing.dataset!r} routes with feed_overlap={before[0]}, "
            f"annotations_per_task={before[1]}; it can't change to feed_overlap={after[0]}, "
            f"annotations_per_task={after[1]}. Use a new dataset name, or drop this one first"
        )


async def _excluded_hashes(nc: Client, settings: Settings, more: list[str]) -> set[int]:
    """Task (or input) hashes already answered in the datasets named by --exclude, and
    by the recipe's `exclude`."""
    names = [n.strip() for n in (settings.exclude or "").split(",") if n.strip()]
    names += [n for n in more if n not in names]
    kv = await ensure_streams(nc.jetstream())
    hashes: set[int] = set()
    for name in names:
        validate_dataset_name(name)
        await get_dataset(kv, name)
        async for event in answers(nc, name):
            hashes.add(event.task_hash if settings.exclude_by == "task" else event.input_hash)
    return hashes


async def load_components(
    url: str,
    components: Components | dict[str, Any],
    settings: Settings,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> LoadSummary:
    """Configure the dataset and queue the recipe's stream.

    `components` is checked first (a recipe's dict is checked as `recipe`); its first
    task too, so a stream that is wrong from the start queues nothing. `on_progress(n,
    total)` hears of every `n` tasks queued.
    """
    if not isinstance(components, Components):
        components = check_components("recipe", components)
    components = peek_checked(components)
    nc = await connect(url)
    try:
        kv = await ensure_streams(nc.jetstream())
        routing = routing_of(settings)
        with contextlib.suppress(UnknownDataset):
            _check_same_routing(await get_dataset(kv, components.dataset), routing)
        excluded = await _excluded_hashes(nc, settings, components.exclude)
        key = "_task_hash" if settings.exclude_by == "task" else "_input_hash"
        skipped = 0

        def kept(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal skipped
            for task in stream:
                set_hashes(task)  # a recipe's own hashes are kept
                if excluded and int(task[key]) in excluded:
                    skipped += 1
                    continue
                yield task

        config = {**components.config, "routing": routing}
        await Ledger(nc).append(
            [
                DatasetConfigured(
                    event_id=config_event_id(
                        components.dataset, components.recipe, components.view_id, config
                    ),
                    dataset=components.dataset,
                    recipe=components.recipe,
                    view_id=components.view_id,
                    config=config,
                    recorded_at=now_ms(),
                )
            ]
        )
        summary = await load_tasks(
            nc,
            components.dataset,
            kept(components.stream),
            on_progress=(lambda n: on_progress(n, components.total)) if on_progress else None,
        )
        summary.read += skipped
        summary.excluded = skipped
        info = DatasetInfo(
            dataset=components.dataset,
            recipe=components.recipe,
            view_id=components.view_id,
            config=components.config,
            total=await count_tasks(nc, components.dataset),
            **routing,
        )
        await save_dataset(kv, info)
        await ensure_consumers(nc, route_of(info))
        return summary
    finally:
        await nc.close()
