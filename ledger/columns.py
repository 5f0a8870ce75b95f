"""Ledger events as typed Arrow columns: the schema of every Parquet snapshot.

One row per event. The snapshot files (`ledger snapshot`), the live tail the
projections read, and the export archive all use `EVENT_SCHEMA`, built by the one
`ColumnBuffer` below, so an event reads the same whichever way it reached DuckDB.
docs/ledger.md documents every column; it is a public interface (analysts query the
files with plain DuckDB), so a change adds columns and never renames one.

An event that can't be projected (`ledger.projectable` says which, and why) gets no
row: it is handed to the reader's `Skips` instead, and the rest of its message is read.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pyarrow as pa

from ledger.events import (
    CURRENT_VERSIONS,
    AnswerRecorded,
    DatasetConfigured,
    Event,
    EventsQuarantined,
    QuarantinedEvent,
    ReviewRecorded,
)
from ledger.projectable import (
    ExampleFields,
    Int64,
    NotProjectable,
    Skips,
    example_fields,
)

__all__ = [
    "DATASET_AT",
    "EVENT_SCHEMA",
    "RECORDED_AT",
    "SCHEMA_VERSION",
    "ColumnBuffer",
    "Row",
    "entry_rows",
    "events_from_rows",
    "message_rows",
]

# Bumped when a column is added; stored in each file's key-value metadata.
SCHEMA_VERSION = 1

SPAN_TYPE = pa.struct(
    [
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("label", pa.string()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("position", pa.int32()),
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("dataset", pa.string()),
        ("session", pa.string()),
        ("session_id", pa.string()),
        ("annotator", pa.string()),
        ("reviewer", pa.string()),
        ("answer", pa.string()),
        ("view_id", pa.string()),
        ("input_hash", pa.int64()),
        ("task_hash", pa.int64()),
        ("label", pa.string()),
        ("accept", pa.list_(pa.string())),
        ("spans", pa.list_(SPAN_TYPE)),
        ("example", pa.string()),
        ("recipe", pa.string()),
        ("config", pa.string()),
        ("handed_out_at", pa.int64()),
        ("recorded_at", pa.int64()),
    ],
    metadata={b"quorum.schema_version": str(SCHEMA_VERSION).encode()},
)

# A row: one value per column of `EVENT_SCHEMA`, in order.
Row = tuple[Any, ...]
DATASET_AT = 4
RECORDED_AT = -1
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_KIND: dict[type, str] = {cls: str(cls.__struct_config__.tag) for cls in get_args(Event)}
_TYPES = {kind: cls for cls, kind in _KIND.items()}


def _typed(fields: ExampleFields) -> tuple[Any, ...]:
    """The `label`, `accept` and `spans` columns of an example that passed the rule."""
    label = fields.label if isinstance(fields.label, str) else None
    accept = None if fields.accept is None else [a if isinstance(a, str) else str(a) for a in fields.accept]
    spans = fields.spans
    typed = None if spans is None else [(s.start, s.end, s.label, s.token_start, s.token_end) for s in spans]
    return label, accept, typed


def _values(seq: int, position: int, event: Event, fields: ExampleFields | None) -> Row:
    """One event's row, in the order of `EVENT_SCHEMA`; `fields`: its example's, checked."""
    head = (seq, position, event.event_id, _KIND[type(event)], event.dataset)
    if isinstance(event, AnswerRecorded | ReviewRecorded):
        typed = (
            event.answer,
            event.view_id,
            event.input_hash,
            event.task_hash,
            *_typed(fields or ExampleFields()),
            _encode(event.example).decode(),
        )
        if isinstance(event, AnswerRecorded):
            who = (event.session, event.session_id, event.annotator, None)
            return (*head, *who, *typed, None, None, event.handed_out_at, event.recorded_at)
        return (*head, None, None, None, event.reviewer, *typed, None, None, None, event.recorded_at)
    nobody = (None, None, None, None)
    if isinstance(event, DatasetConfigured):
        config = _encode(event.config).decode()
        no_answer = (None, event.view_id, None, None, None, None, None, None)
        return (*head, *nobody, *no_answer, event.recipe, config, None, event.recorded_at)
    if isinstance(event, EventsQuarantined):
        # What was set aside, and why, goes in `config` as JSON text (docs/ledger.md).
        record = _encode({"events": event.events, "reason": event.reason}).decode()
        return (*head, *nobody, *(None,) * 8, None, record, None, event.recorded_at)
    return (*head, *nobody, *(None,) * 10, None, event.recorded_at)


class _Flat(msgspec.Struct):
    """Any event, decoded flat: the example and config stay raw JSON (no Python objects)."""

    kind: str
    event_id: str
    dataset: str
    recorded_at: Int64
    v: int = 1
    session: str | None = None
    session_id: str | None = None
    annotator: str | None = None
    reviewer: str | None = None
    answer: str | None = None
    view_id: str | None = None
    input_hash: Int64 | None = None
    task_hash: Int64 | None = None
    example: msgspec.Raw = msgspec.Raw()
    recipe: str | None = None
    config: msgspec.Raw = msgspec.Raw()
    handed_out_at: Int64 | None = None


class _FlatBatch(msgspec.Struct):
    events: list[_Flat]
    v: int = 1


_flat_decoder = msgspec.json.Decoder(_FlatBatch)
_ANSWERS = frozenset(("accept", "reject", "ignore"))
_ANSWER_VERSION = CURRENT_VERSIONS["answer_recorded"]


def _flat_values(seq: int, position: int, e: _Flat) -> Row | None:
    """An answer's row straight from the flat decoding; None when the typed path must do."""
    if (
        e.kind != "answer_recorded"
        or e.v != _ANSWER_VERSION
        or e.answer not in _ANSWERS
        or e.session is None
        or e.session_id is None
        or e.view_id is None
        or e.input_hash is None
        or e.task_hash is None
        or not e.example
    ):
        return None
    try:
        fields = example_fields(e.example)
    except NotProjectable:
        return None  # the typed path says why, and skips the event
    return (
        seq,
        position,
        e.event_id,
        "answer_recorded",
        e.dataset,
        e.session,
        e.session_id,
        e.annotator,
        None,
        e.answer,
        e.view_id,
        e.input_hash,
        e.task_hash,
        *_typed(fields),
        bytes(e.example).decode(),
        None,
        None,
        e.handed_out_at,
        e.recorded_at,
    )


def message_rows(seq: int, data: bytes, skips: Skips | None = None, dataset: str | None = None) -> list[Row]:
    """The rows of the raw ledger message at stream sequence `seq`.

    Answers of the current version skip building Python objects for the example: its
    JSON goes into the `example` column as the bytes the ledger holds (the text
    `msgspec` encodes the decoded example to). Anything else — older versions to
    upcast, configuration, drops, events that can't be projected — takes the typed path
    of `ledger.projectable.read_message`, which raises `UnknownEventVersion` for what a
    newer Quorum wrote. Events that can't be projected get no row and go to `skips`
    (default: a warning on stderr); `dataset` (the message subject's) names the dataset
    of a message that can't even be decoded.
    """
    try:
        flat = _flat_decoder.decode(data)
    except msgspec.DecodeError:
        flat = None
    if flat is not None and flat.v == 1:
        rows = [_flat_values(seq, position, e) for position, e in enumerate(flat.events)]
        if all(row is not None for row in rows):
            return rows  # type: ignore[return-value]
    readable = (skips if skips is not None else Skips()).read(seq, data, dataset)
    return [_values(seq, position, event, fields) for position, event, fields in readable]


class ColumnBuffer:
    """Events appended one ledger message at a time, turned into Arrow record batches."""

    def __init__(self) -> None:
        self._rows: list[Row] = []

    @property
    def rows(self) -> int:
        return len(self._rows)

    def append(self, seq: int, events: list[Event], skips: Skips | None = None) -> None:
        """Add the (decoded) events of the ledger message at stream sequence `seq`; those
        that can't be projected go to `skips` (default: a warning on stderr)."""
        readable = (skips if skips is not None else Skips()).readable(seq, events)
        self._rows.extend(_values(seq, position, event, fields) for position, event, fields in readable)

    def extend(self, rows: list[Row]) -> None:
        """Add rows made by `message_rows`."""
        self._rows.extend(rows)

    def take(self) -> pa.RecordBatch:
        """The rows so far as one record batch; the buffer starts empty again."""
        columns = list(zip(*self._rows, strict=True)) if self._rows else [()] * len(EVENT_SCHEMA)
        arrays = [pa.array(column, type=f.type) for column, f in zip(columns, EVENT_SCHEMA, strict=True)]
        self._rows = []
        return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def entry_rows(seq: int, events: list[Event]) -> list[dict[str, Any]]:
    """The rows of one ledger message as dicts (for tests and small tools)."""
    buffer = ColumnBuffer()
    buffer.append(seq, events)
    rows: list[dict[str, Any]] = buffer.take().to_pylist()
    return rows


def events_from_rows(rows: list[dict[str, Any]]) -> list[Event]:
    """Rebuild the events of one ledger message from its rows (import, replay from Parquet).

    The inverse of `ColumnBuffer.append`: every field of an event has its column, the
    example and the config are kept as JSON.
    """
    events: list[Event] = []
    for row in sorted(rows, key=lambda r: r["position"]):
        kind = row["kind"]
        fields: dict[str, Any] = {"event_id": row["event_id"], "dataset": row["dataset"]}
        fields["recorded_at"] = row["recorded_at"]
        if kind in ("answer_recorded", "review_recorded"):
            for name in ("answer", "view_id", "input_hash", "task_hash"):
                fields[name] = row[name]
            fields["example"] = _decode(row["example"])
        if kind == "answer_recorded":
            for name in ("session", "session_id", "annotator", "handed_out_at"):
                fields[name] = row[name]
        elif kind == "review_recorded":
            fields["reviewer"] = row["reviewer"]
        elif kind == "dataset_configured":
            fields.update(recipe=row["recipe"], view_id=row["view_id"], config=_decode(row["config"]))
        elif kind == "events_quarantined":
            record = _decode(row["config"])
            events_set_aside = [msgspec.convert(e, QuarantinedEvent) for e in record["events"]]
            fields.update(events=events_set_aside, reason=record.get("reason", ""))
        events.append(_TYPES[kind](**fields))
    return events
