"""An answer is checked against the task that was served; pure, no NATS and no I/O.

An annotator may change only what the task's view lets them change (`spans` in
`ner_manual`, `accept` in `choice`, …) plus the client's bookkeeping (`_timestamp`,
`_decision_id`, …); every other key must come back as it was served. Spans must lie in
the text, cover whole tokens and use the project's labels, and every integer anywhere
in an answer must fit a signed 64-bit integer, so that no reader of the ledger ever
meets a value it cannot hold.

The task token carries `content_digest` of the task as served. While the answer's own
digest matches, the served task need not be read; otherwise `check_answer` raises
`NeedsServedTask`, and the caller reads the task and calls again with it, which names
the changed key. docs/api.md ("What an answer may change") is the user's view of this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

from feed.errors import InvalidAnswer
from ledger.events import ANSWERS
from ledger.hashing import canonical_json, parse_hash
from ledger.projectable import INT64_MAX, INT64_MIN, first_oversized_int

__all__ = ["BOOKKEEPING", "INT64_MAX", "INT64_MIN", "NeedsServedTask", "check_answer", "content_digest"]

# A client's bookkeeping: never part of the task as served, so always the client's to set.
BOOKKEEPING = frozenset({"answer", "_token", "_session_id", "_timestamp", "_annotator_id", "_decision_id"})
_HASH_KEYS = ("_input_hash", "_task_hash")
_SPAN_KEYS = ("start", "end", "token_start", "token_end", "label")
_SPAN_EXTRAS: dict[str, type | tuple[type, ...]] = {
    "text": str,
    "source": str,
    "kb_id": str,
    "score": (int, float),
    "rank": int,
    "input_hash": int,
}
_MISSING = object()


class NeedsServedTask(InvalidAnswer):
    """The token's digest can't vouch for this answer: check it again with the served task.

    The message is what the client hears when the served task can't be read.
    """


@dataclass(frozen=True)
class _View:
    """What an annotator may change in one view, and how its message says so."""

    editable: frozenset[str] = frozenset()
    addable: frozenset[str] = frozenset()  # only when the task was served without them
    spans: bool = False
    overlaps: bool = False
    may_change: str = "answer"


_VIEWS = {
    "ner_manual": _View(
        frozenset({"spans"}), frozenset({"tokens"}), spans=True, may_change="answer and spans"
    ),
    "spans_manual": _View(
        frozenset({"spans"}), frozenset({"tokens"}), spans=True, overlaps=True, may_change="answer and spans"
    ),
    "choice": _View(frozenset({"accept"}), may_change="answer and accept"),
    "classification": _View(),
    "text": _View(),
}


def _view_of(task: Mapping[str, Any], default: str) -> str:
    """A task's own `_view_id` wins over the project's, as in the web app."""
    own = task.get("_view_id")
    return own if isinstance(own, str) and own else default


def _normal(key: str, value: Any) -> Any:
    """Hashes compare as int64 whether they came as strings (the API) or ints (TASKS)."""
    if key in _HASH_KEYS:
        try:
            return parse_hash(value)
        except ValueError:
            return value
    return value


def _bound(view: str, task: Mapping[str, Any]) -> dict[str, Any]:
    editable = _VIEWS[view].editable if view in _VIEWS else frozenset()
    return {k: _normal(k, v) for k, v in task.items() if k not in BOOKKEEPING and k not in editable}


def content_digest(view: str, task: Mapping[str, Any]) -> bytes:
    """xxh3_128 of the canonical JSON of what an answer to `task` may not change.

    `view` is the project's view; the task's own `_view_id` wins. Not a MAC: the token's
    HMAC makes the digest unforgeable, the digest only summarises the content.
    """
    return xxhash.xxh3_128_digest(canonical_json(_bound(_view_of(task, view), task)))


def check_answer(
    served_view: str,
    labels: Sequence[str] | None,
    answer: Mapping[str, Any],
    *,
    served: Mapping[str, Any] | None = None,
    digest: bytes | None = None,
    choice_style: str | None = None,
) -> dict[str, Any]:
    """The answer, checked against its task as served; `InvalidAnswer` names what is wrong.

    `served_view` is the project's view, `labels` its label set (None: any label).
    Give `served` (the task from TASKS) or `digest` (its `content_digest`, from the
    token); with only a digest that doesn't match, or a span label only the served task
    can vouch for, `NeedsServedTask` asks for a call with `served`. The result takes the
    served values of the keys it may not change, and fills a span's token indices when
    it has only character offsets.
    """
    if answer.get("answer") not in ANSWERS:
        raise InvalidAnswer(f"unknown answer {answer.get('answer')!r}: use one of {', '.join(ANSWERS)}")
    _check_ints(answer)
    if served is not None:
        view = _view_of(served, served_view)
        cleaned = _as_served(view, served, answer)
    elif digest is None:
        raise NeedsServedTask(
            "this answer's task token predates content checks and its task can no longer be "
            "read; reload the page to get fresh tasks"
        )
    elif content_digest(served_view, answer) != digest:
        raise NeedsServedTask(
            "the answer changes a key its task was served with (the task can no longer be read "
            "to say which); send the task back as it was served, with only the annotation changed"
        )
    else:
        view = _view_of(answer, served_view)
        cleaned = dict(answer)
    _check_bookkeeping(cleaned)
    rules = _VIEWS.get(view)
    if rules is not None and rules.spans and "spans" in cleaned:
        preset = None if served is None else _labels_of(served.get("spans"))
        cleaned["spans"] = _checked_spans(view, rules, cleaned, labels, preset)
    if view == "choice" and "accept" in cleaned:
        _check_accept(cleaned["accept"], cleaned.get("options"), single=choice_style == "single")
    return cleaned


def _as_served(view: str, served: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """The answer with the served values of every key it may not change, compared key by key."""
    rules = _VIEWS.get(view)
    bound = _bound(view, served)
    missing = [k for k in bound if k not in answer]
    if missing:
        raise InvalidAnswer(
            f"the answer lacks {_keys(missing)}, which its task was served with; send the task "
            f"back whole, with only the annotation changed"
        )
    changed = [k for k in bound if not _same(bound[k], _normal(k, answer[k]))]
    if changed:
        allowed = rules.may_change if rules else "answer and what its task was served without"
        raise InvalidAnswer(
            f"the answer changes {_keys(changed)}, which its task was served with; "
            f"a {view} answer may change only {allowed}"
        )
    if rules is not None:
        added = [
            k
            for k in answer
            if k not in served
            and k not in BOOKKEEPING
            and k not in rules.editable
            and k not in rules.addable
            and not (k == "_view_id" and answer[k] == view)
        ]
        if added:
            raise InvalidAnswer(
                f"the answer adds {_keys(added)}, which its task was served without; "
                f"a {view} answer may change only {rules.may_change}"
            )
    return {k: served[k] if k in bound else v for k, v in answer.items()}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, and a browser's rounding of an integer
    past 2**53 (its numbers are doubles) is not a change."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if a == b:
            return True
        try:
            return max(abs(a), abs(b)) > 1 << 53 and float(a) == float(b)
        except OverflowError:
            return False
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _check_ints(answer: Mapping[str, Any]) -> None:
    """Every integer fits int64 (hashes are parsed on their own: they may be unsigned)."""
    found = first_oversized_int({k: v for k, v in answer.items() if k not in _HASH_KEYS})
    if found is not None:
        raise InvalidAnswer(
            f"{_path(found[0])} does not fit a signed 64-bit integer "
            f"({INT64_MIN} to {INT64_MAX}); send a smaller number"
        )


def _check_bookkeeping(answer: Mapping[str, Any]) -> None:
    timestamp = answer.get("_timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int | float)):
        raise InvalidAnswer(f"_timestamp must be a number (seconds since 1970), got {_show(timestamp)}")
    for key in ("_annotator_id", "_session_id"):
        if answer.get(key) is not None and not isinstance(answer[key], str):
            raise InvalidAnswer(f"{key} must be a string, got {_show(answer[key])}")


def _checked_spans(
    view: str,
    rules: _View,
    answer: Mapping[str, Any],
    labels: Sequence[str] | None,
    preset: set[str] | None,
) -> list[dict[str, Any]]:
    spans = answer["spans"]
    if not isinstance(spans, list):
        raise InvalidAnswer(f'"spans" must be a list of spans, got {_show(spans)}')
    if not spans:
        return spans
    text = answer.get("text")
    if not isinstance(text, str):
        raise InvalidAnswer('the task has no "text" to mark spans in; answer it with "spans": []')
    tokens = answer.get("tokens")
    if tokens is not None:
        _check_tokens(tokens, text)
    checked = [_checked_span(i, span, text, tokens, labels, preset) for i, span in enumerate(spans)]
    if not rules.overlaps:
        _check_no_overlaps(view, checked)
    return checked


def _checked_span(
    i: int,
    span: object,
    text: str,
    tokens: list[dict[str, Any]] | None,
    labels: Sequence[str] | None,
    preset: set[str] | None,
) -> dict[str, Any]:
    where = f"spans[{i}]"
    if not isinstance(span, dict):
        raise InvalidAnswer(f"{where} must be an object with start, end and label, got {_show(span)}")
    unknown = [k for k in span if k not in _SPAN_KEYS and k not in _SPAN_EXTRAS]
    if unknown:
        raise InvalidAnswer(
            f"{where} has unknown {_keys(unknown)}; a span has {', '.join(_SPAN_KEYS)} "
            f"and may have {', '.join(_SPAN_EXTRAS)}"
        )
    start, end = _int(span, "start", where), _int(span, "end", where)
    if not 0 <= start < end <= len(text):
        raise InvalidAnswer(
            f"{where} runs from {start} to {end}; a span needs 0 <= start < end <= {len(text)}, "
            f"the length of the text in characters (code points)"
        )
    label = span.get("label", _MISSING)
    if not isinstance(label, str) or not label:
        raise InvalidAnswer(f"{where}.label must be a non-empty string, got {_show(label)}")
    if labels is not None and label not in labels and (preset is None or label not in preset):
        message = f"{where}.label {_show(label)} is not one of this project's labels: {', '.join(labels)}"
        raise NeedsServedTask(message) if preset is None else InvalidAnswer(message)
    for key, kind in _SPAN_EXTRAS.items():
        value = span.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise InvalidAnswer(f"{where}.{key} has the wrong type: got {_show(value)}")
    if "text" in span and span["text"] != text[start:end]:
        raise InvalidAnswer(
            f"{where}.text is {_show(span['text'])}, but the text from {start} to {end} "
            f"is {_show(text[start:end])}"
        )
    if tokens is None:
        if "token_start" in span or "token_end" in span:
            first, last = _int(span, "token_start", where), _int(span, "token_end", where)
            if first > last:
                raise InvalidAnswer(f"{where} has token_start {first} after token_end {last}")
        return span
    return {**span, **_token_range(where, span, start, end, tokens)}


def _token_range(
    where: str, span: Mapping[str, Any], start: int, end: int, tokens: list[dict[str, Any]]
) -> dict[str, int]:
    """The span's token indices, checked against its offsets (or found from them)."""
    if "token_start" not in span and "token_end" not in span:
        firsts = [i for i, t in enumerate(tokens) if t["start"] == start]
        lasts = [i for i, t in enumerate(tokens) if t["end"] == end]
        if not firsts or not lasts:
            edge = "start" if not firsts else "end"
            raise InvalidAnswer(
                f"{where} {edge}s at {start if edge == 'start' else end}, inside a token; a span "
                f"covers whole tokens: its {edge} is where one of the task's tokens {edge}s"
            )
        return {"token_start": firsts[0], "token_end": lasts[-1]}
    first, last = _int(span, "token_start", where), _int(span, "token_end", where)
    if not 0 <= first <= last < len(tokens):
        raise InvalidAnswer(
            f"{where} covers tokens {first} to {last}; they need 0 <= token_start <= token_end "
            f"< {len(tokens)}, the task's number of tokens"
        )
    if tokens[first]["start"] != start:
        raise InvalidAnswer(
            f"{where} starts at {start}, but its token_start {first} starts at "
            f"{tokens[first]['start']}; a span starts where its first token starts"
        )
    if tokens[last]["end"] != end:
        raise InvalidAnswer(
            f"{where} ends at {end}, but its token_end {last} ends at {tokens[last]['end']}; "
            f"a span ends where its last token ends"
        )
    return {"token_start": first, "token_end": last}


def _check_tokens(tokens: object, text: str) -> None:
    if not isinstance(tokens, list):
        raise InvalidAnswer(f'"tokens" must be a list of tokens, got {_show(tokens)}')
    previous = 0
    for i, token in enumerate(tokens):
        where = f"tokens[{i}]"
        if not isinstance(token, dict):
            raise InvalidAnswer(f"{where} must be an object with start and end, got {_show(token)}")
        start, end = _int(token, "start", where), _int(token, "end", where)
        if not previous <= start <= end <= len(text):
            raise InvalidAnswer(
                f"{where} runs from {start} to {end}; tokens lie in the text ({len(text)} "
                f"characters), in order, without overlapping"
            )
        if "text" in token and token["text"] != text[start:end]:
            raise InvalidAnswer(
                f"{where}.text is {_show(token['text'])}, but the text from {start} to {end} "
                f"is {_show(text[start:end])}"
            )
        previous = end


def _check_no_overlaps(view: str, spans: list[dict[str, Any]]) -> None:
    order = sorted(range(len(spans)), key=lambda i: (spans[i]["start"], spans[i]["end"]))
    reach = order[0]  # of the spans so far, the one that ends last
    for i in order[1:]:
        if spans[i]["start"] < spans[reach]["end"]:
            a, b = sorted((reach, i))
            raise InvalidAnswer(
                f"spans[{a}] ({_describe(spans[a])}) and spans[{b}] ({_describe(spans[b])}) "
                f"overlap; {view} spans may not overlap (spans_manual allows it)"
            )
        if spans[i]["end"] > spans[reach]["end"]:
            reach = i


def _check_accept(accept: object, options: object, *, single: bool) -> None:
    if not isinstance(accept, list):
        raise InvalidAnswer(f'"accept" must be a list of option ids, got {_show(accept)}')
    ids = [o["id"] for o in options if isinstance(o, dict) and "id" in o] if isinstance(options, list) else []
    for i, chosen in enumerate(accept):
        if not any(_same(chosen, known) for known in ids):
            raise InvalidAnswer(
                f'"accept" holds {_show(chosen)}, which is not an option of this task; '
                f"its options are {', '.join(_show(known) for known in ids) or 'none'}"
            )
        if any(_same(chosen, earlier) for earlier in accept[:i]):
            raise InvalidAnswer(f'"accept" holds {_show(chosen)} twice; list each chosen option once')
    if single and len(accept) > 1:
        raise InvalidAnswer(
            f'"accept" holds {len(accept)} options, but this project is single choice: choose one at most'
        )


def _labels_of(spans: object) -> set[str]:
    """The labels of the spans a task was served with: an answer may keep them."""
    if not isinstance(spans, list):
        return set()
    return {s["label"] for s in spans if isinstance(s, dict) and isinstance(s.get("label"), str)}


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key, _MISSING)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAnswer(f"{where}.{key} must be an integer, got {_show(value)}")
    return value


def _describe(span: Mapping[str, Any]) -> str:
    return f"{span['label']} {span['start']}-{span['end']}"


def _keys(keys: Sequence[str]) -> str:
    return ", ".join(f'"{k}"' for k in keys)


def _path(parts: tuple[str | int, ...]) -> str:
    head, *rest = parts
    out = str(head)
    for part in rest:
        out += (
            f"[{part}]"
            if isinstance(part, int)
            else f".{part}"
            if part.isidentifier()
            else f"[{_show(part)}]"
        )
    return out


def _show(value: object) -> str:
    """A value as the client wrote it (JSON), cut short."""
    if value is _MISSING:
        return "nothing"
    try:
        text = canonical_json(value).decode()
    except (TypeError, OverflowError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
