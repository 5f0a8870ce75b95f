"""How a dataset's recipe runner is doing, kept in NATS for the stateless feed workers.

The runner records, under `runner.<dataset>` in the config bucket: the state of the
recipe's stream (`streaming`, `done` once it ran out, `failed` with the reason), how
many tasks it read and queued, the recipe's `progress` value and the state of its
`update` learner. Feed workers read it for `/health`, `/progress` and the `progress` of
every question batch; `quorum progress` prints it.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import msgspec
from nats.js.kv import KeyValue

from ledger.events import now_ms

__all__ = [
    "RunnerStatus",
    "hungry_subject",
    "read_runner_status",
    "runner_warning",
    "unsaved_subject",
    "write_runner_status",
]

StreamState = Literal["starting", "streaming", "done", "failed"]


class RunnerStatus(msgspec.Struct, kw_only=True):
    """The runner's last report for one dataset."""

    dataset: str
    stream: StreamState = "starting"
    read: int = 0
    """Tasks pulled from the recipe's stream so far (excluded ones included)."""
    queued: int = 0
    """Tasks in the queue after the last top-up."""
    reason: str = ""
    """Why the stream failed."""
    progress: float | None = None
    """The recipe's `progress(ctrl, loss)` value, 0–1, when it has one."""
    updates: int = 0
    """Batches the recipe's `update` applied."""
    loss: float | None = None
    """What the last `update` returned, when it was a number."""
    update_error: str = ""
    """Why `update` was disabled (it raised three times in a row)."""
    updated_at: int = 0


def _key(dataset: str) -> str:
    return f"runner.{dataset}"


async def write_runner_status(kv: KeyValue, status: RunnerStatus) -> None:
    """Store `status`; a failing write never stops the runner."""
    status.updated_at = now_ms()
    with contextlib.suppress(Exception):
        await kv.put(_key(status.dataset), msgspec.json.encode(status))


async def read_runner_status(kv: KeyValue, dataset: str) -> RunnerStatus | None:
    """The runner's last report, or None when no runner reported for `dataset`."""
    try:
        entry = await kv.get(_key(dataset))
    except Exception:  # KeyNotFoundError: no runner yet (a dataset queued in full)
        return None
    try:
        return msgspec.json.decode(entry.value or b"", type=RunnerStatus)
    except msgspec.DecodeError:
        return None


def runner_warning(status: RunnerStatus | None) -> str | None:
    """What `/health` and `quorum progress` say about the runner, or None when all is well."""
    if status is None:
        return None
    if status.stream == "failed":
        return f"stream failed: {status.reason} (what was queued is still served)"
    if status.update_error:
        return f"update disabled: {status.update_error} (answers are still saved)"
    return None


def hungry_subject(dataset: str) -> str:
    """Where a feed worker that found the queue short tells the runner to top it up now,
    by how many tasks it lacked (the payload, a decimal number). Core NATS, no stream: a
    lost message only means the runner's next poll does it."""
    return f"quorum.runner.{dataset}.hungry"


def unsaved_subject(dataset: str) -> str:
    """Where feed workers hand the answers of a recipe with `db: False` to its runner's
    `update`, instead of the ledger (core NATS: nothing is saved, by the recipe's choice)."""
    return f"quorum.runner.{dataset}.unsaved"
