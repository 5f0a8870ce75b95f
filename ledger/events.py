"""The event model: every fact Quorum records, as frozen, versioned msgspec Structs.

Events are immutable and named in the past tense. A ledger message on the `EVENTS`
stream is one `EventBatch`: all answers of one `give_answers` request travel in one
message, so one fsync (`sync_interval: always`) covers the whole batch.

Schema changes add a version and an upcaster in `UPCASTERS`; history is never
rewritten. Decoding ignores unknown fields, so an older reader can skip additions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import xxhash

from ledger.errors import UnknownEventVersion
from ledger.hashing import canonical_json

__all__ = [
    "ANSWERS",
    "CURRENT_VERSIONS",
    "DECISION_ID_PREFIX",
    "UPCASTERS",
    "AnswerRecorded",
    "DatasetConfigured",
    "DatasetDropped",
    "Event",
    "EventBatch",
    "EventsQuarantined",
    "QuarantinedEvent",
    "ReviewRecorded",
    "answer_event_id",
    "config_event_id",
    "decode_batch",
    "decode_event",
    "encode_batch",
    "is_keyed",
    "now_ms",
]

Answer = Literal["accept", "reject", "ignore"]
ANSWERS: tuple[str, ...] = ("accept", "reject", "ignore")


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch: the ledger's time unit."""
    return time.time_ns() // 1_000_000


class AnswerRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="answer_recorded", tag_field="kind"):
    """An annotator answered a task (accept / reject / ignore)."""

    event_id: str
    """Deterministic id (see `answer_event_id`): `dec-…` names the client's decision key,
    so a retried decision is the same event; `ans-…` (no key) names the content."""
    dataset: str
    """The dataset the task belongs to."""
    session_id: str
    """Prodigy-style session dataset name, `<dataset>-<session>`."""
    session: str
    """The bare session name from `?session=`."""
    annotator: str | None = None
    """The authenticated user who gave the answer, when credentials are in use."""
    answer: Answer
    """The decision."""
    input_hash: int
    """`_input_hash` of the task (signed int64)."""
    task_hash: int
    """`_task_hash` of the task (signed int64)."""
    view_id: str
    """The interface the answer was given in (`ner_manual`, `choice`, …)."""
    example: dict[str, Any]
    """The full annotated example as the annotator left it (spans, accept, …)."""
    handed_out_at: int | None = None
    """Milliseconds since the epoch when a worker handed the task out (from its token)."""
    recorded_at: int
    """Milliseconds since the epoch when a worker appended the event."""
    v: int = 1
    """Schema version of this event kind."""


class ReviewRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="review_recorded", tag_field="kind"):
    """A reviewer settled a task: the gold decision that overrides the annotators."""

    event_id: str
    """Deterministic id of the review."""
    dataset: str
    """The dataset the task belongs to."""
    reviewer: str
    """Who reviewed."""
    answer: Answer
    """The gold decision."""
    input_hash: int
    """`_input_hash` of the task."""
    task_hash: int
    """`_task_hash` of the task."""
    view_id: str
    """The interface the review was given in."""
    example: dict[str, Any]
    """The gold example."""
    recorded_at: int
    """Milliseconds since the epoch."""
    v: int = 1
    """Schema version."""


class DatasetConfigured(
    msgspec.Struct, frozen=True, kw_only=True, tag="dataset_configured", tag_field="kind"
):
    """A recipe (re)configured a dataset: view, labels and routing settings."""

    event_id: str
    """Deterministic id over the configuration, so re-running a recipe is idempotent."""
    dataset: str
    """The dataset configured."""
    recipe: str
    """The recipe name, e.g. `ner.manual`."""
    view_id: str
    """The web app's view for the dataset's tasks."""
    config: dict[str, Any]
    """The project config sent to the web app (labels, choice_style, instructions…)."""
    recorded_at: int
    """Milliseconds since the epoch."""
    v: int = 1
    """Schema version."""


class DatasetDropped(msgspec.Struct, frozen=True, kw_only=True, tag="dataset_dropped", tag_field="kind"):
    """A tombstone: the dataset was dropped; projections stop showing it."""

    event_id: str
    """Id of the drop."""
    dataset: str
    """The dataset dropped."""
    recorded_at: int
    """Milliseconds since the epoch."""
    v: int = 1
    """Schema version."""


class QuarantinedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger event set aside by `ledger quarantine` (see `EventsQuarantined`)."""

    seq: int
    """Stream sequence of the ledger message that holds it."""
    position: int | None = None
    """Its place in that message; None: the whole message, which could not be decoded."""
    event_id: str | None = None
    """Its id, when it could be read: a quarantine applies to this very event only."""
    problem: str = ""
    """Why no reader could project it, as `ledger verify` said."""


class EventsQuarantined(
    msgspec.Struct, frozen=True, kw_only=True, tag="events_quarantined", tag_field="kind"
):
    """Events of a dataset that can't be projected were set aside: readers skip them quietly.

    Readers skip an event that can't be projected anyway (`ledger.projectable`), with a
    warning; after this record they skip it without one, and `ledger verify` lists it as
    quarantined instead of failing. Nothing is deleted: `quorum drop` and `ledger
    compact` remove history.
    """

    event_id: str
    """Deterministic id over the dataset and the events, so a retried quarantine is one."""
    dataset: str
    """The dataset whose events these are (a ledger message holds one dataset's events)."""
    events: list[QuarantinedEvent]
    """The events set aside."""
    reason: str = ""
    """Why, in the words of whoever ran `ledger quarantine --reason`."""
    recorded_at: int
    """Milliseconds since the epoch."""
    v: int = 1
    """Schema version."""


Event = AnswerRecorded | ReviewRecorded | DatasetConfigured | DatasetDropped | EventsQuarantined


class EventBatch(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger message: the events of one request, appended atomically."""

    events: list[Event]
    v: int = 1


# The version each kind is written at today. Readers refuse anything newer.
CURRENT_VERSIONS: dict[str, int] = {
    "answer_recorded": 1,
    "review_recorded": 1,
    "dataset_configured": 1,
    "dataset_dropped": 1,
    "events_quarantined": 1,
}

# (kind, from_version) -> function turning a dict of that version into the next one.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}

_encoder = msgspec.json.Encoder()
_fast_decoder = msgspec.json.Decoder(EventBatch)


class _RawBatch(msgspec.Struct):
    events: list[dict[str, Any]]
    v: int = 1


_raw_decoder = msgspec.json.Decoder(_RawBatch)


def encode_batch(events: Sequence[Event]) -> bytes:
    """The bytes of one ledger message."""
    return _encoder.encode(EventBatch(events=list(events)))


def _upcast(raw: dict[str, Any]) -> Event:
    kind = raw.get("kind")
    if kind not in CURRENT_VERSIONS:
        raise UnknownEventVersion(f"unknown event kind {kind!r}; upgrade Quorum to read this ledger")
    version = int(raw.get("v", 1))
    current = CURRENT_VERSIONS[kind]
    if version > current:
        raise UnknownEventVersion(
            f"event {raw.get('event_id')!r} is {kind} version {version}, but this Quorum reads "
            f"up to version {current}; upgrade Quorum (pip install -U quorum-annotate)"
        )
    while version < current:
        step = UPCASTERS.get((kind, version))
        if step is None:
            raise UnknownEventVersion(f"no upcaster from {kind} version {version} to {version + 1}")
        raw = step(raw)
        version = int(raw["v"])
    event: Event = msgspec.convert(raw, Event)  # type: ignore[arg-type]
    return event


def decode_event(raw: dict[str, Any]) -> Event:
    """One event from its JSON object, upcast to the current version.

    Raises `UnknownEventVersion` like `decode_batch`, and `msgspec.ValidationError`
    (or `ValueError`) for an event no version of its kind describes.
    """
    return _upcast(raw)


def _kind(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def decode_batch(data: bytes) -> list[Event]:
    """Decode a ledger message, upcasting old event versions.

    Raises `UnknownEventVersion` for versions newer than this code knows, never a
    half-decoded batch.
    """
    try:
        batch = _fast_decoder.decode(data)
    except msgspec.ValidationError:
        batch = None
    if batch is not None and all(CURRENT_VERSIONS[_kind(e)] == e.v for e in batch.events):
        return batch.events
    raw = _raw_decoder.decode(data)
    return [_upcast(e) for e in raw.events]


DECISION_ID_PREFIX = "dec-"
"""Prefix of the ids of answers that carried a client decision key (`_decision_id`)."""


def answer_event_id(
    dataset: str,
    session: str,
    task_hash: int,
    answer: str,
    example: dict[str, Any],
    decision_id: str | None = None,
) -> str:
    """A deterministic id for an answer, which is what makes retries idempotent.

    With a client decision key (`_decision_id`, new for every decision the annotator
    makes), the id names that decision: `dec-…`. A retry of it, at any delay, is the same
    event and projections count it once. Without a key, the id names the content:
    `ans-…`. Projections then treat an answer identical to the session's current answer
    on the task as a no-op, and anything else as a new decision (so accept → reject →
    accept ends on accept). See docs/api.md, "Changing an answer".
    """
    if decision_id is not None:
        digest = xxhash.xxh3_128_hexdigest(canonical_json([dataset, session, task_hash, decision_id]))
        return f"{DECISION_ID_PREFIX}{digest}"
    digest = xxhash.xxh3_128_hexdigest(
        canonical_json([dataset, session, task_hash, answer, _content(example)])
    )
    return f"ans-{digest}"


def is_keyed(event_id: str) -> bool:
    """True for the id of an answer that carried a client decision key."""
    return event_id.startswith(DECISION_ID_PREFIX)


def config_event_id(dataset: str, recipe: str, view_id: str, config: dict[str, Any]) -> str:
    """Deterministic id of a configuration: re-running the same recipe adds nothing."""
    return "cfg-" + xxhash.xxh3_128_hexdigest(canonical_json([dataset, recipe, view_id, config]))


_VOLATILE_KEYS = frozenset({"_token", "_timestamp", "_session_id", "_annotator_id", "_decision_id"})


def _content(example: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in example.items() if k not in _VOLATILE_KEYS}
