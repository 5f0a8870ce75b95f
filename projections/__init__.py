"""Projections: everything derived from the ledger, as DuckDB views over Parquet
snapshots plus the live tail.

- `tail` reads the ledger events newer than the last snapshot into Arrow/Parquet;
  `snapshots` finds the snapshot files; `duck` builds the connection and the views of
  `views.sql` (read-only for analysts); `functions` exposes `agreement`'s pure math to SQL.
- `export` streams db-out; `reports` shapes agreement, the review queue, counts and the
  dashboard's series; `output` writes query results as CSV, JSON or Parquet.
- `datasets` is the plain-Python reference of the dataset's semantics.

Projections never write to the ledger or to the snapshot directory.
"""

from __future__ import annotations

__all__: list[str] = []
