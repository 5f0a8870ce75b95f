"""JetStream streams and buckets Quorum relies on, created idempotently.

- `EVENTS` — the ledger, `quorum.events.<dataset>.<kind>`; file storage, never
  expires. The source of truth.
- `TASKS` — the work queue, `quorum.tasks.<dataset>.<task_hash_hex>`; at most one
  message per subject with *discard new per subject*, so re-loading a source file is
  a no-op however long after the first load.
- `SEEN` — `quorum.seen.<dataset>.<session>.<task_hash_hex>`, one empty message per
  (session, task) ever handed out under k-overlap: publishing is an atomic
  test-and-set ("first time this session gets this task?").
- `CLAIMS` — `quorum.claims.<dataset>.<task_hash_hex>.<slot>`, one message per answer
  slot of a task (its payload: the session holding the slot), written before an answer
  is appended: without full overlap a task takes answers from at most k sessions, even
  when a crash redelivered it to more.
- `HOLDS` — `quorum.holds.<dataset>.<session>`, the latest record (one per subject) of
  the tasks a session holds unanswered, so a reloaded page gets them back.
- `quorum-config` (KV) — per-dataset configuration and the shared token secret, so no
  worker keeps either in memory as the source of truth.
"""

from __future__ import annotations

import xxhash
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

__all__ = [
    "CLAIMS_STREAM",
    "CONFIG_BUCKET",
    "EVENTS_STREAM",
    "HOLDS_STREAM",
    "SEEN_STREAM",
    "TASKS_STREAM",
    "claims_subject",
    "ensure_streams",
    "events_subject",
    "holds_subject",
    "ledger_identity",
    "seen_subject",
    "tasks_subject",
]

EVENTS_STREAM = "EVENTS"
TASKS_STREAM = "TASKS"
SEEN_STREAM = "SEEN"
HOLDS_STREAM = "HOLDS"
CLAIMS_STREAM = "CLAIMS"
CONFIG_BUCKET = "quorum-config"
# Ledger messages carry whole batches of annotated examples.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def events_subject(dataset: str, kind: str = "*") -> str:
    """`quorum.events.<dataset>.<kind>`; pass `dataset="*"` to match every dataset."""
    return f"quorum.events.{dataset}.{kind}"


def tasks_subject(dataset: str, task_hash_hex: str = ">") -> str:
    """`quorum.tasks.<dataset>.<task_hash_hex>`."""
    return f"quorum.tasks.{dataset}.{task_hash_hex}"


def seen_subject(dataset: str, session: str, task_hash_hex: str) -> str:
    """`quorum.seen.<dataset>.<session>.<task_hash_hex>`."""
    return f"quorum.seen.{dataset}.{session}.{task_hash_hex}"


def claims_subject(dataset: str, task_hash_hex: str = "*", slot: int | str = "*") -> str:
    """`quorum.claims.<dataset>.<task_hash_hex>.<slot>`."""
    return f"quorum.claims.{dataset}.{task_hash_hex}.{slot}"


def holds_subject(dataset: str, session: str) -> str:
    """`quorum.holds.<dataset>.<session>`."""
    return f"quorum.holds.{dataset}.{session}"


def _test_and_set(name: str, description: str, subjects: str) -> StreamConfig:
    """A stream whose publish is an atomic test-and-set: one message per subject, ever
    (discard new per subject), so the first publisher wins and the others are refused."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=[subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=1,
        discard=DiscardPolicy.NEW,
        discard_new_per_subject=True,
        allow_direct=True,
    )


def _seen_config() -> StreamConfig:
    return _test_and_set(
        SEEN_STREAM, "Quorum routing: which session was handed which task (k-overlap)", "quorum.seen.>"
    )


def _claims_config() -> StreamConfig:
    return _test_and_set(
        CLAIMS_STREAM, "Quorum routing: which sessions hold a task's answer slots", "quorum.claims.>"
    )


def _holds_config() -> StreamConfig:
    return StreamConfig(
        name=HOLDS_STREAM,
        description="Quorum routing: the tasks each session holds unanswered",
        subjects=["quorum.holds.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=1,
        max_msg_size=MAX_MESSAGE_BYTES,
        allow_direct=True,
    )


def _events_config() -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Quorum ledger: every answer, review, configuration and drop",
        subjects=["quorum.events.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msg_size=MAX_MESSAGE_BYTES,
        duplicate_window=120.0,
        allow_direct=True,
    )


def _tasks_config() -> StreamConfig:
    return StreamConfig(
        name=TASKS_STREAM,
        description="Quorum work queue: one message per task hash per dataset",
        subjects=["quorum.tasks.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=1,
        discard=DiscardPolicy.NEW,
        discard_new_per_subject=True,
        max_msg_size=MAX_MESSAGE_BYTES,
        duplicate_window=120.0,
        allow_direct=True,
    )


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with another configuration (an older Quorum): bring it up to date.
        await js.update_stream(config)


async def ensure_streams(js: JetStreamContext) -> KeyValue:
    """Create (or update) EVENTS, TASKS and the config bucket; safe to call often."""
    await _ensure(js, _events_config())
    await _ensure(js, _tasks_config())
    await _ensure(js, _seen_config())
    await _ensure(js, _holds_config())
    await _ensure(js, _claims_config())
    try:
        return await js.key_value(CONFIG_BUCKET)
    except (NotFoundError, BadRequestError):
        return await js.create_key_value(
            KeyValueConfig(bucket=CONFIG_BUCKET, history=5, storage=StorageType.FILE)
        )


async def ledger_identity(js: JetStreamContext) -> str:
    """The identity of this ledger: derived from when its EVENTS stream was created.

    Snapshots record it, so a snapshot directory is never mixed with another ledger's
    (a stream deleted and created again is another ledger: its sequences restart).
    """
    info = await js.stream_info(EVENTS_STREAM)
    created = info.created.isoformat() if info.created is not None else "unknown"
    return "ledger-" + xxhash.xxh3_64_hexdigest(f"{EVENTS_STREAM}@{created}".encode())
