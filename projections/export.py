"""db-out over the projections: a dataset as Prodigy JSONL, streamed in record batches.

Rows come out of the `dataset_examples` view in db-out order (the first answer of each
session to each task) in Arrow batches of a few thousand, so exporting a million
answers holds one batch in Python at a time; DuckDB spills its sort to the scratch dir.
"""

from __future__ import annotations

from typing import BinaryIO

import duckdb
import msgspec

from projections.datasets import prodigy_record
from projections.duck import Projections

__all__ = ["export_jsonl"]

_encode = msgspec.json.Encoder().encode
# Only the example's top-level keys are decoded; each value stays the JSON text the
# ledger holds (msgspec's own output) and is written back as is, so a line costs the
# same whether the example carries a few fields or a thousand tokens.
_decode = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def export_jsonl(
    projections: Projections,
    dataset: str,
    out: BinaryIO,
    *,
    session: str | None = None,
    answer: str | None = None,
    batch_rows: int = 4096,
) -> int:
    """Write the dataset's current answers to `out`, one JSON object a line; return how many."""
    where = ["dataset = ?"]
    params: list[str] = [dataset]
    if session is not None:
        where.append("session = ?")
        params.append(session)
    if answer is not None:
        where.append("answer = ?")
        params.append(answer)
    relation = projections.relation(
        "SELECT example, _input_hash, _task_hash, _view_id, answer, _timestamp, _session_id "
        f"FROM dataset_examples WHERE {' AND '.join(where)} ORDER BY answer_order",
        params,
    )
    count = 0
    try:
        for batch in relation.to_arrow_reader(batch_rows):
            columns = [column.to_pylist() for column in batch.columns]
            lines = [
                _encode(prodigy_record(_decode(example), *rest)) + b"\n"
                for example, *rest in zip(*columns, strict=True)
            ]
            out.write(b"".join(lines))
            count += len(lines)
    except duckdb.Error as exc:
        raise projections.failure("db-out failed reading the projection", exc) from None
    return count
