"""Match patterns: load a patterns file and pre-highlight its matches as spans.

A patterns file is JSONL in the format Prodigy documents, one pattern a line:
`{"label": "ORG", "pattern": [{"lower": "apple"}]}` (a spaCy token pattern) or
`{"label": "ORG", "pattern": "Apple Inc."}` (a phrase, matched on the exact token texts),
with an optional `"id"`. Every problem is reported naming the file and the line, and a
token pattern is checked by spaCy's own validator, so a bad pattern stops a recipe before
anything is queued, never halfway through a stream.

Spans never overlap: matches that touch an example's existing spans are dropped, and of
overlapping matches the longest wins, then the earliest (spaCy's `filter_spans` rule).
This module never scores patterns; `prodigy.models.matcher` builds that on top of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.errors import BadSource, RecipeError
from recipes.nlp import add_tokens

__all__ = [
    "Match",
    "Pattern",
    "PatternSpans",
    "check_labels",
    "load_patterns",
    "make_patterns",
    "merge_spans",
    "non_overlapping",
]

_EXAMPLE = '{"label": "ORG", "pattern": [{"lower": "apple"}]}'
# Token attributes the tokenizer alone sets; a pattern using any other (POS, LEMMA, DEP,
# ENT_TYPE, `_` extensions…) needs the pipeline's components to run on the text.
_LEXICAL = frozenset(
    [
        "ORTH",
        "TEXT",
        "NORM",
        "LOWER",
        "LENGTH",
        "SHAPE",
        "PREFIX",
        "SUFFIX",
        "SPACY",
        "OP",
        "IS_ALPHA",
        "IS_ASCII",
        "IS_DIGIT",
        "IS_LOWER",
        "IS_UPPER",
        "IS_TITLE",
        "IS_PUNCT",
        "IS_SPACE",
        "IS_STOP",
        "IS_BRACKET",
        "IS_QUOTE",
        "IS_LEFT_PUNCT",
        "IS_RIGHT_PUNCT",
        "IS_CURRENCY",
        "LIKE_NUM",
        "LIKE_URL",
        "LIKE_EMAIL",
    ]
)


@dataclass(frozen=True, eq=False)
class Pattern:
    """One pattern: its `label`, a phrase or a token pattern, and where it came from.

    `key` identifies it in spans and scores: its `id` if it has one, else its `index`
    (its position among the patterns loaded, counted on across files by a matcher).
    """

    label: str
    pattern: str | list[dict[str, Any]]
    index: int
    origin: str  # "line 3 of pats.jsonl", for messages
    id: str | int | None = None

    @property
    def key(self) -> str | int:
        return self.index if self.id is None else self.id


@dataclass(frozen=True)
class Match:
    """One match of `pattern` in an example: tokens `token_start`..`token_end` (inclusive)."""

    pattern: Pattern
    token_start: int
    token_end: int
    start: int
    end: int
    text: str

    def span(self, *, label: bool = True) -> dict[str, Any]:
        """The match as a Prodigy span, with the pattern's key under `"pattern"`."""
        span: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "token_start": self.token_start,
            "token_end": self.token_end,
            "text": self.text,
        }
        if label:
            span["label"] = self.pattern.label
        span["pattern"] = self.pattern.key
        return span


def _token_problem(error: Exception, pattern: list[dict[str, Any]]) -> str:
    """spaCy's multi-line pattern error as one line: which token, which attribute, why."""
    if isinstance(error, re.error):
        return f"a REGEX does not compile ({error})"
    unknown: dict[tuple[int, str], str] = {}
    wanted: dict[tuple[int, str], list[str]] = {}
    for line in str(error).splitlines():
        if not line.startswith("- [pattern -> ") or "] " not in line:
            continue
        path, message = line[len("- [") :].split("] ", 1)
        parts = path.split(" -> ")
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        where = (int(parts[1]), parts[2])
        if message.startswith("Extra inputs"):
            unknown[where] = parts[-1]
        else:
            wanted.setdefault(where, []).append(
                message.removeprefix("Input should be ").removeprefix("String should ")
            )
    problems = [
        f"token {i + 1} has an unknown {'attribute' if key == attr else f'{attr} option'} {key!r}"
        for (i, attr), key in unknown.items()
    ]
    problems += [
        f"token {i + 1} {attr} {pattern[i].get(attr)!r} should be {' or '.join(wants)}"
        for (i, attr), wants in wanted.items()
        if (i, attr) not in unknown
    ]
    if not problems:
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        return first.strip()
    return "; ".join(problems)


def _parse(record: Any, index: int, origin: str, checker: Any, error: type[RecipeError]) -> Pattern:
    if not isinstance(record, Mapping):
        raise error(f"{origin} is a {type(record).__name__}, not an object like {_EXAMPLE}")
    label = record.get("label")
    if not isinstance(label, str) or not label.strip():
        raise error(f'{origin} has no "label": give each pattern one, e.g. {_EXAMPLE}')
    pattern = record.get("pattern")
    phrase, tokens = 'a phrase string ("Apple Inc.")', 'a list of token objects ([{"lower": "apple"}])'
    if isinstance(pattern, str):
        if not pattern.strip():
            raise error(f'{origin} has an empty "pattern": use {phrase} or {tokens}')
    elif isinstance(pattern, list) and pattern and all(isinstance(t, dict) for t in pattern):
        try:
            checker.add(f"check-{index}", [pattern])
        except Exception as exc:  # spaCy's MatchPatternError, re.error for a bad REGEX…
            problem = _token_problem(exc, pattern)
            raise error(f"{origin} has an invalid token pattern: {problem}") from None
    else:
        raise error(f'{origin} has a "pattern" that is neither {phrase} nor {tokens}')
    pattern_id = record.get("id")
    if pattern_id is not None and (isinstance(pattern_id, bool) or not isinstance(pattern_id, str | int)):
        raise error(f'{origin} has an "id" that is neither a string nor an integer')
    return Pattern(label=label.strip(), pattern=pattern, index=index, origin=origin, id=pattern_id)


def _checker() -> Any:
    from spacy.matcher import Matcher
    from spacy.vocab import Vocab

    return Matcher(Vocab(), validate=True)


def make_patterns(records: Iterable[Any], *, start: int = 0) -> list[Pattern]:
    """Patterns from dicts in the file's format; indexes count on from `start`.

    Raises `RecipeError` naming the bad pattern by its position in `records` ("pattern 3").
    """
    checker = _checker()
    return [
        _parse(record, start + n, f"pattern {n + 1}", checker, RecipeError)
        for n, record in enumerate(records)
    ]


def load_patterns(path: Path | str, *, start: int = 0) -> list[Pattern]:
    """The patterns of a JSONL patterns file; indexes count on from `start`.

    Raises `BadSource` (a `RecipeError`) naming the file and line for anything wrong,
    including a file that holds no pattern.
    """
    path = Path(path)
    if not path.exists():
        raise BadSource(f"patterns file {path} does not exist")
    if path.is_dir():
        raise BadSource(f"patterns file {path} is a directory; pass a .jsonl file, one pattern a line")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadSource(f"cannot read patterns file {path}: {exc.strerror or exc}") from None
    checker = _checker()
    patterns: list[Pattern] = []
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        where = f"line {number} of {path.name}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadSource(
                f"{where} is not valid UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}): "
                f"save the patterns file as UTF-8"
            ) from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadSource(f"{where} is not valid JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise BadSource(f"{where} is nested too deeply to read") from None
        patterns.append(_parse(record, start + len(patterns), where, checker, BadSource))
    if not patterns:
        raise BadSource(f"no patterns in {path.name}: the file is empty; write one a line, e.g. {_EXAMPLE}")
    return patterns


def check_labels(patterns: Iterable[Pattern], labels: Iterable[str]) -> None:
    """Raise `RecipeError` naming every pattern label that is not one of `labels`."""
    allowed = set(labels)
    unknown: dict[str, list[str]] = {}
    for pattern in patterns:
        if pattern.label not in allowed:
            unknown.setdefault(pattern.label, []).append(pattern.origin)
    if unknown:
        named = ", ".join(
            f"{label} ({where[0]}{f' and {len(where) - 1} more' if len(where) > 1 else ''})"
            for label, where in unknown.items()
        )
        raise RecipeError(
            f"patterns use labels the recipe was not given: {named}; add them to --label "
            f"(now {','.join(sorted(allowed)) or 'empty'}) or remove those patterns"
        )


def _offsets(span: Any) -> tuple[int, int] | None:
    if isinstance(span, Mapping) and isinstance(span.get("start"), int) and isinstance(span.get("end"), int):
        return span["start"], span["end"]
    return None


def non_overlapping(matches: Iterable[Match], spans: Iterable[Any] = ()) -> list[Match]:
    """The matches that overlap neither the existing `spans` nor each other, in text order.

    Of overlapping matches the longest wins, then the earliest, then the earlier pattern.
    """
    taken = [offsets for offsets in map(_offsets, spans) if offsets is not None]
    kept: list[Match] = []
    for match in sorted(matches, key=lambda m: (m.token_start - m.token_end, m.token_start, m.pattern.index)):
        if any(match.start < end and start < match.end for start, end in taken):
            continue
        if any(match.token_start <= k.token_end and k.token_start <= match.token_end for k in kept):
            continue
        kept.append(match)
    return sorted(kept, key=lambda m: m.token_start)


def _needs_pipeline(pattern: Pattern) -> bool:
    """Whether a token pattern uses attributes only the pipeline's components set."""
    tokens = [] if isinstance(pattern.pattern, str) else pattern.pattern
    return any(key.upper() not in _LEXICAL for token in tokens for key in token)


class PatternSpans:
    """Find `patterns` in examples tokenised by `nlp`; calling it pre-highlights a stream."""

    def __init__(self, nlp: Any, patterns: Iterable[Pattern] = ()) -> None:
        from spacy.matcher import Matcher, PhraseMatcher

        self.nlp = nlp
        self.patterns: list[Pattern] = []
        self._tokens = Matcher(nlp.vocab)
        self._phrases = PhraseMatcher(nlp.vocab, attr="ORTH")
        self._by_id: dict[int, Pattern] = {}
        self._needs_pipeline = False
        self.add(patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def labels(self) -> tuple[str, ...]:
        """The patterns' labels, each once, in the order they first appear."""
        return tuple(dict.fromkeys(p.label for p in self.patterns))

    def add(self, patterns: Iterable[Pattern]) -> None:
        """Add already checked patterns (from `load_patterns` or `make_patterns`)."""
        added = list(patterns)
        annotated = [p for p in added if _needs_pipeline(p)]
        if annotated:
            self._probe(annotated)
            self._needs_pipeline = True
        for pattern in added:
            name = f"quorum-pattern-{len(self._by_id)}"
            self._by_id[self.nlp.vocab.strings.add(name)] = pattern
            if isinstance(pattern.pattern, str):
                self._phrases.add(name, [self.nlp.make_doc(pattern.pattern)])
            else:
                self._tokens.add(name, [pattern.pattern])
        self.patterns.extend(added)

    def _probe(self, patterns: list[Pattern]) -> None:
        """Match once now, so a pattern the pipeline cannot serve (POS on blank:en) fails
        at start-up, naming its line, instead of in the middle of the stream."""
        from spacy.matcher import Matcher

        doc = self.nlp("Probe sentence for the patterns.")
        for pattern in patterns:
            if isinstance(pattern.pattern, str):
                continue
            matcher = Matcher(self.nlp.vocab)
            matcher.add("probe", [pattern.pattern])
            try:
                matcher(doc)
            except Exception as exc:  # E155 (attribute not set), unregistered `_` extension…
                problem = str(exc).split(". Try using", 1)[0]
                raise RecipeError(
                    f"{pattern.origin} can't match with pipeline {self.nlp.lang!r}: {problem}; use a "
                    f"pipeline that sets that attribute, or match on the token text (LOWER, ORTH)"
                ) from None

    def find(self, eg: Mapping[str, Any]) -> list[Match]:
        """Every match in `eg`, overlapping or not; `eg` needs `tokens` from `nlp`."""
        from spacy.tokens import Doc

        tokens = eg["tokens"]
        doc = Doc(self.nlp.vocab, words=[t["text"] for t in tokens], spaces=[t["ws"] for t in tokens])
        if self._needs_pipeline:
            doc = self.nlp(doc)
            if len(doc) != len(tokens):
                raise RecipeError(
                    f"pipeline {self.nlp.lang!r} merges or splits tokens, so matches can't be placed "
                    f"on the example's tokens: remove that component (e.g. merge_entities)"
                )
        # Only matchers holding patterns run: spaCy warns about an empty one.
        found = [hit for matcher in (self._tokens, self._phrases) if len(matcher) for hit in matcher(doc)]
        matches = []
        for match_id, first, last in found:
            start, end = tokens[first]["start"], tokens[last - 1]["end"]
            matches.append(Match(self._by_id[match_id], first, last - 1, start, end, eg["text"][start:end]))
        return sorted(matches, key=lambda m: (m.token_start, m.token_end, m.pattern.index))

    def __call__(self, stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Add `tokens`, then the non-overlapping matches to each example's `spans`."""
        for eg in add_tokens(self.nlp, stream):
            existing = eg.get("spans")
            spans: list[Any] = existing if isinstance(existing, list) else []
            new = non_overlapping(self.find(eg), spans)
            if new:
                eg["spans"] = merge_spans(spans, [m.span() for m in new])
            yield eg


def merge_spans(spans: Iterable[Any], new: Iterable[dict[str, Any]]) -> list[Any]:
    """Existing `spans` and `new` ones in one list, in text order."""
    return sorted([*spans, *new], key=lambda span: _offsets(span) or (-1, -1))
