"""Streaming loaders for source files: JSONL, JSON, CSV and plain text.

Loaders are generators: a million-line file never sits in memory. Every problem is
reported with the file name and line number (`BadSource`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from recipes.errors import BadSource

__all__ = ["LOADERS", "get_stream", "validate_source"]

_decoder = msgspec.json.Decoder()


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, _decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise BadSource(f"line {number} of {path.name} is not valid JSON: {exc}") from None


def _json(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadSource(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(data, list):
        raise BadSource(f"{path.name} must hold a JSON array of examples, found {type(data).__name__}")
    yield from enumerate(data, start=1)


def _csv(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "text" not in [f.strip().lower() for f in reader.fieldnames]:
            raise BadSource(f"{path.name} needs a header row with a 'text' column")
        for row in reader:
            record: dict[str, Any] = {}
            meta: dict[str, Any] = {}
            for key, value in row.items():
                key = (key or "").strip()
                if key.lower() == "text":
                    record["text"] = value
                elif key.lower() == "label":
                    record["label"] = value
                elif key:
                    meta[key] = value
            if meta:
                record["meta"] = meta
            yield reader.line_num, record


def _txt(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, {"text": line.rstrip("\r\n")}


LOADERS: dict[str, Callable[[Path], Iterator[tuple[int, Any]]]] = {
    ".jsonl": _jsonl,
    ".ndjson": _jsonl,
    ".json": _json,
    ".csv": _csv,
    ".txt": _txt,
}


def _check(path: Path, number: int, record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BadSource(f"{where} {number} of {path.name} is a {type(record).__name__}, not an object")
    text = record.get("text")
    if not isinstance(text, str):
        raise BadSource(f'{where} {number} of {path.name} has no "text" string; every example needs one')
    return record


def get_stream(source: Path | str, loader: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the examples of `source`, checked; raise `BadSource` naming the line."""
    path = Path(source)
    if not path.exists():
        raise BadSource(f"source file {path} does not exist")
    if path.is_dir():
        raise BadSource(f"source {path} is a directory; pass a .jsonl, .json, .csv or .txt file")
    suffix = f".{loader.lstrip('.')}" if loader else path.suffix.lower()
    read = LOADERS.get(suffix)
    if read is None:
        raise BadSource(
            f"no loader for {path.name}: use one of {', '.join(sorted(LOADERS))}, or pass --loader"
        )
    where = "record" if suffix == ".json" else "line"
    for number, record in read(path):
        yield _check(path, number, record, where)


def validate_source(source: Path | str, loader: str | None = None) -> int:
    """Read the whole source once and return its number of examples.

    Recipes call this before queueing anything, so a bad line 900 leaves the queue
    untouched. Raises `BadSource` for an empty source too.
    """
    count = sum(1 for _ in get_stream(source, loader))
    if count == 0:
        raise BadSource(f"no examples in {Path(source).name}: the file is empty")
    return count
