"""Task identity: `_input_hash` and `_task_hash`.

Same semantics as Prodigy's `set_hashes`, different function: Quorum hashes a
canonical JSON form (sorted keys, no whitespace, UTF-8) with xxhash's `xxh3_64` and
stores the result as a *signed* 64-bit integer, so it fits an int64 column in Parquet
and DuckDB. The HTTP API carries hashes as strings (a browser's JSON numbers lose
precision past 2**53).

- `_input_hash` covers the input keys present in the task (`text`, `image`, `html`,
  `input` by default). A task with none of them is hashed whole, minus ignored keys.
- `_task_hash` covers the input hash plus the task keys present (`spans`, `label`,
  `options` by default), so the same text with a different label is another task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import xxhash

__all__ = [
    "DEFAULT_IGNORE_KEYS",
    "DEFAULT_INPUT_KEYS",
    "DEFAULT_TASK_KEYS",
    "canonical_json",
    "get_input_hash",
    "get_task_hash",
    "hash_hex",
    "parse_hash",
    "set_hashes",
]

DEFAULT_INPUT_KEYS: tuple[str, ...] = ("text", "image", "html", "input")
DEFAULT_TASK_KEYS: tuple[str, ...] = ("spans", "label", "options")
# Keys that never take part in a hash: Quorum's and Prodigy's bookkeeping, the
# answer itself, and metadata.
DEFAULT_IGNORE_KEYS: tuple[str, ...] = (
    "score",
    "rank",
    "model",
    "source",
    "_view_id",
    "_session_id",
    "_annotator_id",
    "_timestamp",
    "_token",
    "answer",
    "meta",
    "tokens",
)

_ENCODER = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return _ENCODER.encode(value)


def _signed(unsigned: int) -> int:
    return unsigned - (1 << 64) if unsigned >= (1 << 63) else unsigned


def _hash(value: Any) -> int:
    return _signed(xxhash.xxh3_64_intdigest(canonical_json(value)))


def get_input_hash(
    task: Mapping[str, Any],
    input_keys: Iterable[str] = DEFAULT_INPUT_KEYS,
    ignore: Iterable[str] = DEFAULT_IGNORE_KEYS,
) -> int:
    """The signed 64-bit hash of the task's input keys (or of the whole task)."""
    keys = [k for k in input_keys if k in task]
    if keys:
        return _hash({k: task[k] for k in keys})
    skip = set(ignore)
    return _hash({k: v for k, v in task.items() if k not in skip and not k.startswith("_")})


def get_task_hash(
    task: Mapping[str, Any],
    input_hash: int,
    task_keys: Iterable[str] = DEFAULT_TASK_KEYS,
) -> int:
    """The signed 64-bit hash of the input hash plus the task keys present."""
    payload: dict[str, Any] = {k: task[k] for k in task_keys if k in task}
    payload["_input_hash"] = input_hash
    return _hash(payload)


def set_hashes(
    task: dict[str, Any],
    *,
    input_keys: Iterable[str] = DEFAULT_INPUT_KEYS,
    task_keys: Iterable[str] = DEFAULT_TASK_KEYS,
    ignore: Iterable[str] = DEFAULT_IGNORE_KEYS,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Add `_input_hash` and `_task_hash` to `task` (in place) and return it.

    Existing hashes are kept unless `overwrite` is true, as in Prodigy.
    """
    if overwrite or "_input_hash" not in task:
        task["_input_hash"] = get_input_hash(task, input_keys, ignore)
    if overwrite or "_task_hash" not in task:
        task["_task_hash"] = get_task_hash(task, int(task["_input_hash"]), task_keys)
    return task


def hash_hex(value: int) -> str:
    """The 16-digit hex form of a signed hash, as used in NATS subjects."""
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


def parse_hash(value: object) -> int:
    """A hash from the HTTP API (a decimal string, or an int) as a signed int64.

    Raises `ValueError` with a readable message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a hash: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"not a hash: {value!r} (expected a decimal integer string)") from None
    else:
        raise ValueError(f"not a hash: {value!r} (expected a decimal integer string)")
    if not -(1 << 63) <= number < (1 << 64):
        raise ValueError(f"hash out of 64-bit range: {value!r}")
    return _signed(number) if number >= (1 << 63) else number
