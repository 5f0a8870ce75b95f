"""Writing query results: CSV, JSON and Parquet, streamed batch by batch from Arrow.

`quorum sql` uses these; the table format for people lives in the CLI (rich).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FORMATS", "rows_of", "write_csv", "write_json", "write_parquet"]

FORMATS = ("table", "csv", "json", "parquet")
_encode = msgspec.json.Encoder(decimal_format="number").encode


def rows_of(reader: pa.RecordBatchReader) -> Iterator[dict[str, Any]]:
    """Each row of `reader` as a dict of Python values."""
    for batch in reader:
        yield from batch.to_pylist()


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return _encode(value).decode()
    if isinstance(value, bytes):
        return value.hex()
    return value


def write_csv(reader: pa.RecordBatchReader, out: BinaryIO) -> int:
    """CSV with a header row; lists and structs as JSON text. Returns the row count."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(reader.schema.names)
    count = 0
    for batch in reader:
        columns = [column.to_pylist() for column in batch.columns]
        for row in zip(*columns, strict=True):
            writer.writerow([_cell(value) for value in row])
        count += batch.num_rows
    text.flush()
    text.detach()
    return count


def write_json(reader: pa.RecordBatchReader, out: BinaryIO) -> int:
    """A JSON array of objects, one per line inside it, streamed. Returns the row count."""
    out.write(b"[")
    count = 0
    for row in rows_of(reader):
        out.write((b",\n" if count else b"\n") + _encode(row))
        count += 1
    out.write(b"\n]\n" if count else b"]\n")
    return count


def write_parquet(reader: pa.RecordBatchReader, path: Path) -> int:
    """A zstd Parquet file at `path`. Returns the row count."""
    count = 0
    with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            count += batch.num_rows
    return count
