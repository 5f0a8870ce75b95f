"""`prodigy.components.db`: Prodigy's `connect()` and `Database`, on Quorum's ledger.

`connect()` returns Quorum's `Database` (`recipes.db`), whose methods carry Prodigy's
names. Prodigy's database choice (`db_id`: sqlite, postgresql…) has no meaning here: the
ledger is the database; of `db_settings` only a `data_dir` is used. This module never
imports `prodigy`: `quorum.compat.install()` makes it that.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recipes.db import Database
from recipes.db import connect as connect_quorum

__all__ = ["Database", "connect"]


def connect(db_id: str | None = None, db_settings: Mapping[str, Any] | None = None) -> Database:
    """Quorum's database, as Prodigy's `connect` gives its own.

    `db_id` is ignored; `db_settings` may name a `data_dir` (else Quorum's settings
    decide, as for `quorum db-out`).
    """
    data_dir = (db_settings or {}).get("data_dir")
    return connect_quorum(data_dir=Path(data_dir) if data_dir is not None else None)
