"""`prodigy.models.matcher`: `PatternMatcher`, match patterns as a model in the loop.

Written from Prodigy's documented behaviour on Quorum's own pattern matching
(`recipes.patterns`); it never imports `prodigy`. Calling the matcher on a stream yields
`(score, task)` for every match, or one task per example with `combine_matches`.
A pattern's score is the mean of a Beta posterior over its answers:

    (accepted + prior_correct) / (accepted + rejected + prior_correct + prior_incorrect)

so every pattern starts at `prior_correct / (prior_correct + prior_incorrect)` and moves
with each accept and reject that `update` sees (0.5 while both priors are 0 and nothing
has been answered). Tasks are new dicts: the stream's
examples are never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.hashing import DEFAULT_TASK_KEYS, set_hashes
from recipes.nlp import add_tokens
from recipes.patterns import (
    Match,
    Pattern,
    PatternSpans,
    load_patterns,
    make_patterns,
    merge_spans,
    non_overlapping,
)

__all__ = ["PatternMatcher"]


class PatternMatcher:
    """Suggest pattern matches as tasks, scored by how often each pattern was accepted.

    - `label_span`: put the pattern's label on each matched span.
    - `label_task`: put the (best) match's label on the task, as text classification wants.
    - `combine_matches`: one task per example holding all its non-overlapping matches
      (existing spans kept), instead of one task per match holding only that match.
    - `all_examples`: also yield examples without a match, with score 0.0.
    - `filter_labels`: only add patterns with these labels; others are skipped.
    - `task_hash_keys`: the keys the tasks' `_task_hash` covers.
    """

    def __init__(
        self,
        nlp: Any,
        label_span: bool = True,
        label_task: bool = False,
        combine_matches: bool = False,
        all_examples: bool = False,
        filter_labels: Sequence[str] | None = None,
        task_hash_keys: Sequence[str] = DEFAULT_TASK_KEYS,
        prior_correct: float = 5.0,
        prior_incorrect: float = 5.0,
    ) -> None:
        self.nlp = nlp
        self.label_span = label_span
        self.label_task = label_task
        self.combine_matches = combine_matches
        self.all_examples = all_examples
        self.filter_labels = None if filter_labels is None else frozenset(filter_labels)
        self.task_hash_keys = tuple(task_hash_keys)
        self.prior_correct = float(prior_correct)
        self.prior_incorrect = float(prior_incorrect)
        self._spans = PatternSpans(nlp)
        # Answers per pattern key: [accepted, rejected].
        self._counts: dict[str | int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._spans)

    @property
    def patterns(self) -> list[Pattern]:
        return self._spans.patterns

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels of the patterns added, each once."""
        return self._spans.labels

    def _add(self, patterns: Iterable[Pattern]) -> None:
        kept = [p for p in patterns if self.filter_labels is None or p.label in self.filter_labels]
        for pattern in kept:
            self._counts.setdefault(pattern.key, [0, 0])
        self._spans.add(kept)

    def from_disk(self, path: str | Path) -> PatternMatcher:
        """Add the patterns of a JSONL patterns file; returns the matcher itself."""
        self._add(load_patterns(path, start=len(self._spans)))
        return self

    def add_patterns(self, patterns: Iterable[Mapping[str, Any]]) -> None:
        """Add patterns given as dicts in the file's format (`label`, `pattern`, `id`)."""
        self._add(make_patterns(patterns, start=len(self._spans)))

    def score(self, key: str | int) -> float:
        """The score of the pattern(s) with this key (a span's `"pattern"` value)."""
        accepted, rejected = self._counts.get(key, (0, 0))
        total = accepted + rejected + self.prior_correct + self.prior_incorrect
        return (accepted + self.prior_correct) / total if total else 0.5

    def __call__(self, stream: Iterable[dict[str, Any]]) -> Iterator[tuple[float, dict[str, Any]]]:
        for eg in add_tokens(self.nlp, stream):
            matches = self._spans.find(eg)
            if self.combine_matches:
                matches = non_overlapping(matches, self._existing(eg))
                if matches:
                    yield self._task(eg, matches, keep_spans=True)
            else:
                for match in matches:
                    yield self._task(eg, [match], keep_spans=False)
            if not matches and self.all_examples:
                yield 0.0, set_hashes(copy.deepcopy(eg), task_keys=self.task_hash_keys)

    @staticmethod
    def _existing(eg: Mapping[str, Any]) -> list[Any]:
        spans = eg.get("spans")
        return spans if isinstance(spans, list) else []

    def _task(
        self, eg: dict[str, Any], matches: list[Match], *, keep_spans: bool
    ) -> tuple[float, dict[str, Any]]:
        task = copy.deepcopy(eg)
        new = [m.span(label=self.label_span) for m in matches]
        task["spans"] = merge_spans(self._existing(task) if keep_spans else [], new)
        scores = [self.score(m.pattern.key) for m in matches]
        best = max(range(len(matches)), key=lambda i: scores[i])
        if self.label_task:
            task["label"] = matches[best].pattern.label
        keys = [m.pattern.key for m in matches]
        meta = dict(task.get("meta") or {})
        meta["pattern"] = keys[0] if len(keys) == 1 else ", ".join(str(k) for k in dict.fromkeys(keys))
        meta["score"] = scores[best]
        task["meta"] = meta
        task.pop("_task_hash", None)
        return scores[best], set_hashes(task, task_keys=self.task_hash_keys)

    def update(self, examples: Iterable[Mapping[str, Any]]) -> float:
        """Count each answered span's pattern as right (accept) or wrong (reject).

        Returns the squared error of the scores before the update, summed over the spans
        counted: a loss that falls as the scores learn which patterns to trust.
        """
        loss = 0.0
        for eg in examples:
            answer = eg.get("answer")
            if answer not in ("accept", "reject"):
                continue
            for span in eg.get("spans") or []:
                key = span.get("pattern") if isinstance(span, Mapping) else None
                if isinstance(key, bool) or not isinstance(key, str | int) or key not in self._counts:
                    continue
                target = 1.0 if answer == "accept" else 0.0
                loss += (target - self.score(key)) ** 2
                self._counts[key][0 if answer == "accept" else 1] += 1
        return loss
