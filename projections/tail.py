"""The live tail: ledger events newer than the last Parquet snapshot, as Arrow rows.

Projections read the snapshots plus this tail, so an answer shows the moment JetStream
acknowledged it. The tail is written in chunks to a Parquet file in a scratch
directory, so reading a long tail (no snapshotter running yet) keeps memory flat.

This module only reads the ledger; it never writes to NATS or to the snapshot dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from nats.aio.client import Client

from ledger.events import AnswerRecorded, DatasetConfigured, DatasetDropped, Event, ReviewRecorded
from ledger.store import Ledger, LedgerEntry

__all__ = ["TAIL_SCHEMA", "TailFile", "entry_rows", "read_tail", "write_rows"]

_SPAN = pa.struct(
    [
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("label", pa.string()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
    ]
)

# One row per event. Column names follow the snapshot files' (docs/projections.md).
TAIL_SCHEMA = pa.schema(
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
        ("spans", pa.list_(_SPAN)),
        ("example", pa.string()),
        ("recipe", pa.string()),
        ("config", pa.string()),
        ("handed_out_at", pa.int64()),
        ("recorded_at", pa.int64()),
    ]
)

_encode = msgspec.json.Encoder().encode
_KIND = {
    AnswerRecorded: "answer_recorded",
    ReviewRecorded: "review_recorded",
    DatasetConfigured: "dataset_configured",
    DatasetDropped: "dataset_dropped",
}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _label(example: dict[str, Any]) -> str | None:
    label = example.get("label")
    return label if isinstance(label, str) else None


def _accept(example: dict[str, Any]) -> list[str] | None:
    accept = example.get("accept")
    if not isinstance(accept, list):
        return None
    return [str(option) for option in accept]


def _spans(example: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Spans as typed structs; a malformed span keeps its place with null fields."""
    spans = example.get("spans")
    if not isinstance(spans, list):
        return None
    typed = []
    for span in spans:
        span = span if isinstance(span, dict) else {}
        label = span.get("label")
        typed.append(
            {
                "start": _int(span.get("start")),
                "end": _int(span.get("end")),
                "label": label if isinstance(label, str) else None,
                "token_start": _int(span.get("token_start")),
                "token_end": _int(span.get("token_end")),
            }
        )
    return typed


def _row(seq: int, position: int, event: Event) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "position": position,
        "event_id": event.event_id,
        "kind": _KIND[type(event)],
        "dataset": event.dataset,
        "recorded_at": event.recorded_at,
    }
    if isinstance(event, AnswerRecorded | ReviewRecorded):
        example = event.example
        row.update(
            answer=event.answer,
            view_id=event.view_id,
            input_hash=event.input_hash,
            task_hash=event.task_hash,
            label=_label(example),
            accept=_accept(example),
            spans=_spans(example),
            example=_encode(example).decode(),
        )
    if isinstance(event, AnswerRecorded):
        row.update(
            session=event.session,
            session_id=event.session_id,
            annotator=event.annotator,
            handed_out_at=event.handed_out_at,
        )
    elif isinstance(event, ReviewRecorded):
        row["reviewer"] = event.reviewer
    elif isinstance(event, DatasetConfigured):
        row.update(recipe=event.recipe, view_id=event.view_id, config=_encode(event.config).decode())
    return row


def entry_rows(entry: LedgerEntry) -> list[dict[str, Any]]:
    """The rows of one ledger message, in the order of its events."""
    return [_row(entry.seq, position, event) for position, event in enumerate(entry.events)]


def write_rows(writer: pq.ParquetWriter, rows: list[dict[str, Any]]) -> None:
    """Append `rows` to a Parquet file of `TAIL_SCHEMA`."""
    if rows:
        writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=TAIL_SCHEMA))


class TailFile(msgspec.Struct):
    """The tail as read: its Parquet file, how many events, and the last sequence read."""

    path: Path
    rows: int
    after_seq: int
    last_seq: int


async def read_tail(
    nc: Client,
    path: Path,
    *,
    dataset: str | None = None,
    after_seq: int = 0,
    chunk: int = 20_000,
) -> TailFile:
    """Write every event with sequence > `after_seq` (of `dataset`, or all) to `path`.

    The file always exists, with zero rows when the tail is empty, so views over it
    need no special case.
    """
    rows: list[dict[str, Any]] = []
    count = 0
    last_seq = after_seq
    with pq.ParquetWriter(path, TAIL_SCHEMA, compression="zstd") as writer:
        async for entry in Ledger(nc).read(dataset, start_seq=after_seq + 1):
            rows.extend(entry_rows(entry))
            last_seq = entry.seq
            if len(rows) >= chunk:
                write_rows(writer, rows)
                count += len(rows)
                rows = []
        write_rows(writer, rows)
        count += len(rows)
    return TailFile(path=path, rows=count, after_seq=after_seq, last_seq=last_seq)
