"""Dataset configuration: what every worker must agree on, kept in NATS.

The recipe writes a `DatasetConfigured` event to the ledger (history) and the current
configuration to the `quorum-config` KV bucket (fast lookup by any worker). No worker
holds it as the source of truth.
"""

from __future__ import annotations

from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ledger.errors import UnknownDataset

__all__ = ["DatasetInfo", "get_dataset", "list_datasets", "save_dataset"]


class DatasetInfo(msgspec.Struct, kw_only=True):
    """The current configuration of one dataset."""

    dataset: str
    recipe: str
    view_id: str
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    total: int = 0
    """Tasks in the source when known (else: queued so far, exact once the stream ends)."""
    queued: int | None = None
    """Tasks in the queue so far; None: all of `total` (a source queued in full)."""
    ack_wait: float = 600.0
    feed_overlap: bool = False
    annotations_per_task: int | None = None
    max_ack_pending: int = 20000
    session_idle: float = 30 * 86400.0


def _key(dataset: str) -> str:
    return f"dataset.{dataset}"


async def save_dataset(kv: KeyValue, info: DatasetInfo) -> None:
    """Store `info` as the dataset's current configuration."""
    await kv.put(_key(info.dataset), msgspec.json.encode(info))


async def get_dataset(kv: KeyValue, dataset: str) -> DatasetInfo:
    """The dataset's configuration, or `UnknownDataset` with the fix."""
    try:
        entry = await kv.get(_key(dataset))
    except KeyNotFoundError:
        raise UnknownDataset(
            f"unknown dataset {dataset!r}: start a recipe for it first, e.g. "
            f"quorum ner.manual {dataset} blank:en data.jsonl --label PERSON"
        ) from None
    if entry.value is None:
        raise UnknownDataset(f"dataset {dataset!r} has no configuration")
    return msgspec.json.decode(entry.value, type=DatasetInfo)


async def list_datasets(kv: KeyValue) -> list[str]:
    """Names of all configured datasets, sorted.

    Watches only the `dataset.` keys (the bucket holds runner reports and more), and
    waits as long as a busy server needs rather than taking a slow answer for "none".
    """
    watcher = await kv.watch("dataset.>", ignore_deletes=True, meta_only=True)
    names: list[str] = []
    try:
        while True:
            entry = await watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]
            if entry is None:  # the end of what the bucket holds now
                break
            names.append(entry.key.removeprefix("dataset."))
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return sorted(names)
