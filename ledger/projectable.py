"""Can a ledger event be projected? The one rule every reader of the ledger applies.

An event becomes one row of typed columns (`ledger/columns.py`): the Parquet snapshots,
the projections' live tail and DuckDB's views all hold it that way. Before answers were
checked against what was served, a worker appended whatever a browser sent, so a ledger
may hold answers that no such row can take — a span `[1]`, a `start` of 2**63, a label
that is a number — and every reader that met one used to crash, for good. Here is what a
row needs (`example_fields`, `event_fields`):

- `spans`: absent, null, or a list of objects with integer `start` < `end` and a string
  `label`; `token_start` <= `token_end` when both are given;
- `accept`: absent, null, or a list of option ids, strings or integers;
- every integer of the event and of its example fits a signed 64-bit integer.

A reader skips an event that breaks the rule and says so once per process on stderr
(`Skips`), unless a quarantine record (`EventsQuarantined`, appended by `ledger
quarantine`, see `quarantine`) set that very event aside: then it skips it quietly. The
rest of the event's ledger message is read as usual. This module appends quarantine
records and nothing else; it never changes or deletes an event.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import xxhash
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from ledger.errors import LedgerError
from ledger.events import (
    AnswerRecorded,
    Event,
    EventsQuarantined,
    QuarantinedEvent,
    ReviewRecorded,
    decode_batch,
    decode_event,
    now_ms,
)
from ledger.hashing import canonical_json
from ledger.pull import pull_all
from ledger.store import Ledger, subject_kind
from ledger.streams import EVENTS_STREAM, ensure_streams, events_subject

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "ExampleFields",
    "Int64",
    "NotProjectable",
    "Quarantine",
    "QuarantineReport",
    "Skips",
    "Span",
    "Unprojectable",
    "event_fields",
    "example_fields",
    "first_oversized_int",
    "load_quarantine",
    "oversized_int",
    "parse_address",
    "quarantine",
    "read_message",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
"""An integer a BIGINT column can hold."""


class NotProjectable(LedgerError):
    """An event (or example) that no row of the snapshot schema can hold; says why."""


class Span(msgspec.Struct, frozen=True):
    """A span as the `spans` column holds it."""

    start: Int64
    end: Int64
    label: str
    token_start: Int64 | None = None
    token_end: Int64 | None = None


class ExampleFields(msgspec.Struct, frozen=True):
    """The fields of an example that get typed columns, once they passed the rule.

    Anything else in the example stays JSON text (the `example` column), which any
    reader takes, but for integers past int64.
    """

    label: Any = None
    """Kept in the `label` column when it is a string (classification)."""
    accept: list[str | Int64] | None = None
    spans: list[Span] | None = None


_fields_decoder = msgspec.json.Decoder(ExampleFields)
_encode = msgspec.json.Encoder().encode
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_RUN = b"0" * 19
_INT64_MAX_DIGITS = str(INT64_MAX).encode()
_INT64_MIN_DIGITS = str(INT64_MIN).encode()[1:]


def _reason(exc: msgspec.ValidationError, where: str = "example") -> str:
    """msgspec's "Expected `int`, got `str` - at `$.spans[0].start`", said about `where`."""
    text = str(exc)
    message, _, path = text.partition(" - at `")
    place = path.rstrip("`").replace("$", where, 1) if path else where
    return f"{place}: {message[:1].lower()}{message[1:]}"


def _may_be_too_big(text: bytes) -> bool:
    """False when the JSON `text` surely holds no integer past int64: no run of 20 digits,
    none of 19 above int64's bounds. A regular expression took 20 µs over an NER example
    (most of what projecting it costs); this takes 1-2 µs. A true answer (a long number
    in a text, say) is then settled value by value."""
    zeros = text.translate(_DIGITS)
    at = zeros.find(_RUN)
    while at >= 0:
        end = at + 19
        if zeros[end : end + 1] == b"0":
            return True
        digits = text[at:end]
        negative = at > 0 and text[at - 1 : at] == b"-"
        if digits > (_INT64_MIN_DIGITS if negative else _INT64_MAX_DIGITS):
            return True
        at = zeros.find(_RUN, end)
    return False


def first_oversized_int(value: Any) -> tuple[tuple[str | int, ...], int] | None:
    """The first integer in `value` (in document order) outside int64: its path of keys
    and indexes, and the number. Booleans are not integers here."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return path, item
        elif isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(item))))
    return None


def oversized_int(value: Any, path: str) -> str | None:
    """The first integer in `value` past int64, as `path…: N does not fit …`."""
    found = first_oversized_int(value)
    if found is None:
        return None
    parts, number = found
    where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    return f"{where}: {number} does not fit a signed 64-bit integer"


def _check_spans(spans: list[Span] | None) -> None:
    for i, span in enumerate(spans or ()):
        if span.start >= span.end:
            raise NotProjectable(f"example.spans[{i}]: start {span.start} is not before end {span.end}")
        if span.token_start is not None and span.token_end is not None and span.token_start > span.token_end:
            raise NotProjectable(
                f"example.spans[{i}]: token_start {span.token_start} is after token_end {span.token_end}"
            )


def example_fields(example: dict[str, Any] | bytes | msgspec.Raw) -> ExampleFields:
    """The typed fields of `example` (a dict, or its JSON text as the ledger holds it).

    Raises `NotProjectable` naming the first thing that breaks the rule. Both forms give
    the same verdict: the JSON text is what the dict was encoded to.
    """
    try:
        if isinstance(example, dict):
            fields = msgspec.convert(example, ExampleFields)
            text: bytes | msgspec.Raw = _encode(example)
        else:
            fields = _fields_decoder.decode(example)
            text = example
    except msgspec.ValidationError as exc:
        raise NotProjectable(_reason(exc)) from None
    _check_spans(fields.spans)
    if _may_be_too_big(bytes(text)):
        problem = oversized_int(
            example if isinstance(example, dict) else msgspec.json.decode(text), "example"
        )
        if problem:
            raise NotProjectable(problem)
    return fields


_INT_FIELDS = ("input_hash", "task_hash", "handed_out_at", "recorded_at")


def event_fields(event: Event) -> ExampleFields | None:
    """The typed example fields of an answer or review (None for other kinds).

    Raises `NotProjectable` when the event breaks the rule.
    """
    for name in _INT_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise NotProjectable(f"{name}: {value} does not fit a signed 64-bit integer")
    if isinstance(event, AnswerRecorded | ReviewRecorded):
        return example_fields(event.example)
    return None


def _kind(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


@dataclass(frozen=True)
class Unprojectable:
    """An event a reader skipped: where it is, whose it is, and why."""

    seq: int
    """Stream sequence of its ledger message."""
    position: int | None
    """Its place in the message; None when the message itself could not be decoded."""
    dataset: str | None
    kind: str | None
    event_id: str | None
    reason: str

    @property
    def address(self) -> str:
        """`SEQ:POSITION` (or `SEQ` for a whole message), as `ledger quarantine` takes it."""
        return str(self.seq) if self.position is None else f"{self.seq}:{self.position}"

    @property
    def key(self) -> tuple[int, int | None, str | None]:
        return (self.seq, self.position, self.event_id)

    def describe(self) -> str:
        what = " ".join(x for x in (self.kind, self.event_id) if x)
        dataset = f"dataset {self.dataset!r}" if self.dataset else "an unknown dataset"
        return f"ledger event {self.address} of {dataset}" + (f" ({what})" if what else "")


class _RawEvents(msgspec.Struct):
    events: list[Any]


_raw_events = msgspec.json.Decoder(_RawEvents)
_UNREADABLE = (msgspec.DecodeError, ValueError, TypeError)
Readable = tuple[int, Event, ExampleFields | None]


def _decode_one(seq: int, position: int, item: Any, dataset: str | None) -> Event | Unprojectable:
    """One event of a message that did not decode whole: the event, or why it can't be read."""
    if not isinstance(item, dict):
        return Unprojectable(seq, position, dataset, None, None, "the event is not a JSON object")
    try:
        return decode_event(item)
    except _UNREADABLE as exc:
        reason = _reason(exc, "event") if isinstance(exc, msgspec.ValidationError) else str(exc)
        kind, event_id, where = (item.get(k) for k in ("kind", "event_id", "dataset"))
        return Unprojectable(
            seq,
            position,
            where if isinstance(where, str) else dataset,
            kind if isinstance(kind, str) else None,
            event_id if isinstance(event_id, str) else None,
            reason,
        )


def read_message(
    seq: int, data: bytes, dataset: str | None = None
) -> tuple[list[Readable], list[Unprojectable]]:
    """The events of the ledger message `seq` that can be projected, with their typed
    fields, and those that can't. `dataset`: the message's (from its subject), if known.

    An event of a version newer than this Quorum still raises `UnknownEventVersion`:
    that one needs an upgrade, not a quarantine.
    """
    items: list[Any]
    try:
        items = list(decode_batch(data))
    except _UNREADABLE:
        try:
            raw = _raw_events.decode(data).events
        except _UNREADABLE as exc:
            return [], [Unprojectable(seq, None, dataset, None, None, f"not a batch of events: {exc}")]
        items = [_decode_one(seq, position, item, dataset) for position, item in enumerate(raw)]
    readable: list[Readable] = []
    skipped: list[Unprojectable] = []
    for position, event in enumerate(items):
        if isinstance(event, Unprojectable):
            skipped.append(event)
            continue
        try:
            readable.append((position, event, event_fields(event)))
        except NotProjectable as exc:
            skipped.append(
                Unprojectable(seq, position, event.dataset, _kind(event), event.event_id, str(exc))
            )
    return readable, skipped


@dataclass(frozen=True)
class Quarantine:
    """The events quarantine records set aside, by (seq, position, event id)."""

    keys: frozenset[tuple[int, int | None, str | None]] = frozenset()
    reasons: dict[tuple[int, int | None, str | None], str] = field(default_factory=dict)

    def covers(self, item: Unprojectable) -> bool:
        return item.key in self.keys

    @classmethod
    def of(cls, records: Iterable[EventsQuarantined]) -> Quarantine:
        reasons = {(t.seq, t.position, t.event_id): r.reason for r in records for t in r.events}
        return cls(frozenset(reasons), reasons)


_QUARANTINED = subject_kind(EventsQuarantined)


async def load_quarantine(nc: Client, dataset: str | None = None) -> Quarantine:
    """Every quarantine record of the ledger (of `dataset`, or of all datasets)."""
    records: list[EventsQuarantined] = []
    try:
        async for msg in pull_all(nc, EVENTS_STREAM, events_subject(dataset or "*", _QUARANTINED), 1):
            readable, _ = read_message(msg.metadata.sequence.stream, msg.data)
            records += [e for _, e, _ in readable if isinstance(e, EventsQuarantined)]
    except NotFoundError:  # no ledger yet
        pass
    return Quarantine.of(records)


_warned: set[tuple[int, int | None, str | None]] = set()


class Skips:
    """What a reader skipped: quarantined events quietly, others with one warning each.

    The warning goes to stderr once per event per process, however many times the
    process reads it (a shell's `.refresh`, a dashboard polled every few seconds).
    """

    def __init__(self, quarantine: Quarantine | None = None, *, warn: bool = True) -> None:
        self.quarantine = quarantine or Quarantine()
        self.warn = warn
        self.skipped: list[Unprojectable] = []
        self.quarantined: list[Unprojectable] = []

    def add(self, item: Unprojectable) -> None:
        if self.quarantine.covers(item):
            self.quarantined.append(item)
            return
        self.skipped.append(item)
        if self.warn and item.key not in _warned:
            _warned.add(item.key)
            sys.stderr.write(
                f"warning: skipped {item.describe()}, which can't be projected: {item.reason}. "
                f"`ledger verify` lists every such event; `ledger quarantine {item.address}` sets "
                f"this one aside\n"
            )

    def read(self, seq: int, data: bytes, dataset: str | None = None) -> list[Readable]:
        """The events of the raw ledger message `seq` that can be projected (as
        `read_message` gives them); the others are added here."""
        readable, unprojectable = read_message(seq, data, dataset)
        for item in unprojectable:
            self.add(item)
        return readable

    def readable(self, seq: int, events: Sequence[Event]) -> list[Readable]:
        """The decoded events of ledger message `seq` that can be projected, with their
        typed fields (as `read_message` gives them); the others are added here."""
        kept: list[Readable] = []
        for position, event in enumerate(events):
            try:
                kept.append((position, event, event_fields(event)))
            except NotProjectable as exc:
                self.add(Unprojectable(seq, position, event.dataset, _kind(event), event.event_id, str(exc)))
        return kept


def parse_address(text: str) -> tuple[int, int | None]:
    """`SEQ` or `SEQ:POSITION`, as `ledger verify` prints them."""
    seq, _, position = text.strip().partition(":")
    try:
        parsed = (int(seq), int(position) if position else None)
    except ValueError:
        parsed = (0, None)
    if parsed[0] < 1 or (parsed[1] is not None and parsed[1] < 0):
        raise LedgerError(
            f"{text!r} is no ledger event: write SEQ (every event of that ledger message that can't be "
            f"projected) or SEQ:POSITION (one event), e.g. 1234 or 1234:2, as `ledger verify` lists them"
        )
    return parsed


@dataclass
class QuarantineReport:
    """What `quarantine` set aside, what was set aside already, and the records' sequences."""

    added: list[Unprojectable] = field(default_factory=list)
    already: list[Unprojectable] = field(default_factory=list)
    records: list[int] = field(default_factory=list)


async def _message(nc: Client, seq: int) -> tuple[str, list[Readable], list[Unprojectable]]:
    try:
        msg = await nc.jetstream().get_msg(EVENTS_STREAM, seq)
    except NotFoundError:
        raise LedgerError(
            f"the ledger holds no message {seq:,} (never written, or purged by `ledger compact`)"
        ) from None
    dataset = (msg.subject or "").split(".")[2]
    readable, skipped = read_message(seq, msg.data or b"", dataset)
    return dataset, readable, skipped


def _pick(
    seq: int, position: int | None, readable: list[Readable], skipped: list[Unprojectable]
) -> list[Unprojectable]:
    if position is None:
        if not skipped:
            raise LedgerError(
                f"ledger message {seq:,} holds no event that can't be projected: nothing to quarantine"
            )
        return skipped
    picked = [item for item in skipped if item.position == position]
    if picked:
        return picked
    if any(item.position is None for item in skipped):
        raise LedgerError(
            f"ledger message {seq:,} can't be decoded at all: quarantine it whole, `ledger quarantine {seq}`"
        )
    event = next((e for p, e, _ in readable if p == position), None)
    if event is None:
        raise LedgerError(f"ledger message {seq:,} has no event at position {position}")
    raise LedgerError(
        f"ledger event {seq}:{position} ({_kind(event)} {event.event_id}) can be projected: quarantine "
        f"only sets aside events no reader can read. To take a dataset's history away, `quorum drop` "
        f"it and run `ledger compact`"
    )


async def quarantine(nc: Client, addresses: Sequence[str], reason: str = "") -> QuarantineReport:
    """Set aside the events at `addresses` (`SEQ` or `SEQ:POSITION`) that can't be projected.

    Appends one `EventsQuarantined` per dataset; from then on every reader skips those
    events without a warning and `ledger verify` lists them as quarantined. Raises
    `LedgerError` (and appends nothing) when an address names no such event.
    """
    targets = [parse_address(a) for a in addresses]
    await ensure_streams(nc.jetstream())
    chosen: dict[tuple[int, int | None, str | None], tuple[str, Unprojectable]] = {}
    for seq, position in targets:
        dataset, readable, skipped = await _message(nc, seq)
        for item in _pick(seq, position, readable, skipped):
            chosen[item.key] = (dataset, item)
    existing = await load_quarantine(nc)
    report = QuarantineReport()
    by_dataset: dict[str, list[Unprojectable]] = {}
    for dataset, item in chosen.values():
        if existing.covers(item):
            report.already.append(item)
        else:
            report.added.append(item)
            by_dataset.setdefault(dataset, []).append(item)
    ledger = Ledger(nc)
    for dataset, items in sorted(by_dataset.items()):
        events = [
            QuarantinedEvent(seq=i.seq, position=i.position, event_id=i.event_id, problem=i.reason)
            for i in items
        ]
        digest = xxhash.xxh3_128_hexdigest(canonical_json([dataset, [list(i.key) for i in items]]))
        record = EventsQuarantined(
            event_id=f"qua-{digest}", dataset=dataset, events=events, reason=reason, recorded_at=now_ms()
        )
        report.records.append(await ledger.append([record]))
    return report
