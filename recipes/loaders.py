"""Streaming loaders for source files: JSONL, JSON, CSV and plain text.

Loaders are generators: a million-line file never sits in memory. Every problem is
reported with the file name and line number (`BadSource`): bad JSON, a record without
text, bytes that are not in the file's encoding, a record over the size limit. Recipes
run `validate_source` over the whole file before anything is queued, so every one of
these stops a load before it starts.

How a source is read (`SourceOptions`: its encoding, the largest record) comes from the
arguments, else from the `source_options` context the CLI opens around a recipe, so a
recipe file (built in, `-F` or Prodigy's) reads sources the way the command line asked
without passing the options through.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ledger.projectable import oversized_int
from recipes.errors import BadSource

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "LOADERS",
    "PREFLIGHT_RECORDS",
    "CountedStream",
    "SourceOptions",
    "get_stream",
    "source_options",
    "validate_source",
]

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class SourceOptions:
    """How sources are read: their text `encoding` and the largest record in bytes."""

    encoding: str = "utf-8"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


_OPTIONS: ContextVar[SourceOptions | None] = ContextVar("quorum_source_options", default=None)


def _current() -> SourceOptions:
    return _OPTIONS.get() or SourceOptions()


@contextmanager
def source_options(
    *, encoding: str | None = None, max_record_bytes: int | None = None
) -> Iterator[SourceOptions]:
    """Read every source opened inside this block with these options (None: unchanged)."""
    current = _current()
    options = SourceOptions(
        encoding=encoding or current.encoding,
        max_record_bytes=max_record_bytes or current.max_record_bytes,
    )
    token = _OPTIONS.set(options)
    try:
        yield options
    finally:
        _OPTIONS.reset(token)


@dataclass(frozen=True)
class _Reading:
    """One source being read: where it is, its codec, its record limit."""

    path: Path
    encoding: str
    codec: str
    limit: int

    def check_size(self, where: str, number: int, size: int) -> None:
        if size > self.limit:
            raise BadSource(
                f"{where} {number} of {self.path.name} is {_size(size)}, over the limit of "
                f"{_size(self.limit)} per task: split it into smaller examples, or raise the limit "
                f"with --max-task-bytes / QUORUM_MAX_TASK_BYTES"
            )

    def not_encoded(self, number: int, exc: UnicodeDecodeError, column: int | None = None) -> BadSource:
        byte = exc.object[exc.start]
        column = exc.start + 1 if column is None else column
        return BadSource(
            f"line {number} of {self.path.name} is not valid {self.encoding} (byte 0x{byte:02x} at "
            f"column {column}): pass the file's encoding, e.g. --encoding latin-1, or "
            f"convert it to UTF-8"
        )


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _lines(source: _Reading) -> Iterator[tuple[int, str]]:
    """(line number, text with its newline), decoded line by line and size-checked.

    Reading bytes and decoding incrementally (instead of a text-mode file) is what lets a
    decoding error name its line, and the size check see a 50 MB line before parsing it.
    """
    decoder = codecs.getincrementaldecoder(source.codec)()
    utf8 = source.codec == "utf-8-sig"
    number, pending = 0, ""
    with source.path.open("rb") as handle:
        for raw in handle:
            try:
                pending += decoder.decode(raw)
            except UnicodeDecodeError as exc:
                raise source.not_encoded(number + pending.count("\n") + 1, exc) from None
            if "\n" not in pending:
                continue  # a line longer than one read, or UTF-16's second byte of "\n"
            *complete, pending = pending.split("\n")
            for text in complete:
                number += 1
                source.check_size("line", number, len(raw) if utf8 else len(text.encode()))
                yield number, text + "\n"
        try:
            pending += decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise source.not_encoded(number + 1, exc) from None
    if pending:
        source.check_size("line", number + 1, len(pending.encode()))
        yield number + 1, pending


def _jsonl(source: _Reading) -> Iterator[tuple[int, Any]]:
    for number, line in _lines(source):
        if not line.strip():
            continue
        try:
            yield number, _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise BadSource(f"line {number} of {source.path.name} is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadSource(f"line {number} of {source.path.name} is nested too deeply to read") from None


def _json(source: _Reading) -> Iterator[tuple[int, Any]]:
    raw = source.path.read_bytes()
    try:
        text = raw.decode(source.codec)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise source.not_encoded(line, exc, column) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadSource(
            f"{source.path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadSource(f"{source.path.name} is nested too deeply to read") from None
    if not isinstance(data, list):
        raise BadSource(f"{source.path.name} must hold a JSON array of examples, found {type(data).__name__}")
    for number, record in enumerate(data, start=1):
        source.check_size("record", number, len(_encoder.encode(record)))
        yield number, record


def _csv(source: _Reading) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(line for _, line in _lines(source))
    if not reader.fieldnames or "text" not in [f.strip().lower() for f in reader.fieldnames]:
        raise BadSource(f"{source.path.name} needs a header row with a 'text' column")
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
        # A quoted field may span lines: check the record, not only each line.
        source.check_size("line", reader.line_num, len(_encoder.encode(record)))
        yield reader.line_num, record


def _txt(source: _Reading) -> Iterator[tuple[int, Any]]:
    for number, line in _lines(source):
        if line.strip():
            yield number, {"text": line.rstrip("\r\n")}


LOADERS: dict[str, Callable[[_Reading], Iterator[tuple[int, Any]]]] = {
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
    # The ledger stores integers as int64: a task holding a bigger one could never be answered.
    problem = oversized_int(record, "record")
    if problem is not None:
        raise BadSource(
            f"{where} {number} of {path.name}: {problem.removeprefix('record.')}; store such ids as strings"
        )
    return record


def _codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise BadSource(
            f"unknown encoding {encoding!r}: pass a Python codec name such as utf-8, latin-1 or cp1252"
        ) from None
    # A UTF-8 byte order mark (Windows editors write one) is not part of the first line.
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def get_stream(
    source: Path | str,
    loader: str | None = None,
    *,
    encoding: str | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the examples of `source`, checked; raise `BadSource` naming the line.

    `encoding` and `max_record_bytes` default to the `source_options` in force.
    """
    path = Path(source)
    options = _current()
    encoding = encoding or options.encoding
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
    reading = _Reading(path, encoding, _codec(encoding), max_record_bytes or options.max_record_bytes)
    where = "record" if suffix == ".json" else "line"
    try:
        for number, record in read(reading):
            yield _check(path, number, record, where)
    except OSError as exc:
        raise BadSource(f"cannot read source file {path}: {exc.strerror or exc}") from None


PREFLIGHT_RECORDS = 10_000
"""Records a built-in recipe checks before serving: enough to catch a wrong file, format or
encoding at once, few enough that a source of any size starts serving in a second."""


def validate_source(
    source: Path | str,
    loader: str | None = None,
    *,
    encoding: str | None = None,
    max_record_bytes: int | None = None,
    limit: int | None = None,
) -> int | None:
    """Read the source (its first `limit` records, or all) and return its number of
    examples, or None when it holds more than `limit`.

    Recipes call this before queueing anything, so a bad line among those read — bad
    JSON, bytes not in the encoding, a record over the size limit — leaves the queue and
    the ledger untouched; a bad line past them fails the stream while serving (reported
    by `/health` and `quorum progress`). Raises `BadSource` for an empty source too.
    """
    stream = get_stream(source, loader, encoding=encoding, max_record_bytes=max_record_bytes)
    count = sum(1 for _ in itertools.islice(stream, limit))
    if count == 0:
        raise BadSource(f"no examples in {Path(source).name}: the file is empty")
    if limit is not None and count == limit and next(stream, None) is not None:
        return None
    return count


class CountedStream:
    """A stream that is read anew each time it is iterated and may know its length, so
    progress has a total: `CountedStream(lambda: (…), total)` (`total=None`: unknown)."""

    def __init__(self, make: Callable[[], Iterator[dict[str, Any]]], total: int | None) -> None:
        self._make = make
        self.total = total

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._make()
