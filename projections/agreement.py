"""Inter-annotator agreement as pure functions over counts.

This module owns the math and nothing else: it never touches DuckDB, NATS or files.
The DuckDB views (`projections/views.sql`) aggregate answers into the counts these
functions take — a contingency table per pair of sessions, per-category sums over
items — and call them as SQL functions, so the CLI, the dashboard and an analyst's
`SELECT * FROM agreement_pairs` all read one implementation.

Edge cases, each returning a figure rather than NaN:

- *No items* (one annotator, or no task answered by two sessions): `value` is None,
  `n_items` is 0 and `note` says "no items annotated by two or more sessions".
- *One category only* (everyone always said "accept"): chance agreement is 1, so a
  chance-corrected figure is undefined — `value` is None, `observed` is 1.0, and the
  note says so. Kappa and alpha are not 1 here: they cannot tell agreement from a
  label nobody varied.
- *Missing answers*: Cohen's kappa uses the items both sessions rated; Fleiss' kappa
  and Krippendorff's alpha use every item with at least two ratings (Fleiss in its
  form for a varying number of raters per item, which is Fleiss' own formula when
  every item has the same number).
- *`ignore` answers* are no rating at all: the caller drops them before counting.

Spans (NER) are compared per pair of sessions over the tasks both accepted:
precision and recall take the first session as the reference, F1 is symmetric,
`2·matched / (n_a + n_b)`. Both sessions marking no span at all is agreement: F1 1.0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

__all__ = [
    "NO_OVERLAP",
    "ONE_CATEGORY",
    "Agreement",
    "CategoryStats",
    "SpanScore",
    "category_stats",
    "cohen_kappa",
    "cohen_kappa_from_ratings",
    "contingency",
    "fleiss_kappa",
    "krippendorff_alpha",
    "pairwise_cohen",
    "pairwise_span_scores",
    "span_score",
    "span_units",
]

NO_OVERLAP = "no items annotated by two or more sessions"
ONE_CATEGORY = "every rating is the same category, so chance-corrected agreement is undefined"


@dataclass(frozen=True, slots=True)
class Agreement:
    """A chance-corrected agreement figure and what it rests on.

    `value` is the kappa or alpha (None when undefined, see `note`); `observed` the
    raw share of agreeing pairs of ratings; `expected` the share chance would give.
    """

    value: float | None
    n_items: int
    observed: float | None = None
    expected: float | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "n_items": self.n_items,
            "observed": self.observed,
            "expected": self.expected,
            "note": self.note,
        }


def _chance_corrected(observed: float, expected: float, n_items: int) -> Agreement:
    if expected >= 1.0 - 1e-12:
        return Agreement(None, n_items, observed, expected, ONE_CATEGORY)
    return Agreement((observed - expected) / (1.0 - expected), n_items, observed, expected)


# -- Cohen's kappa (two sessions) ------------------------------------------------------


def contingency(
    a: Sequence[Hashable | None], b: Sequence[Hashable | None]
) -> Counter[tuple[Hashable, Hashable]]:
    """The contingency table of two paired rating lists; None (no rating) pairs are skipped."""
    if len(a) != len(b):
        raise ValueError(f"paired ratings differ in length: {len(a)} and {len(b)}")
    return Counter((x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None)


def cohen_kappa(table: Mapping[tuple[Hashable, Hashable], int]) -> Agreement:
    """Cohen's kappa from a contingency table {(category_a, category_b): count}."""
    n = sum(table.values())
    if n == 0:
        return Agreement(None, 0, note=NO_OVERLAP)
    rows: Counter[Hashable] = Counter()
    cols: Counter[Hashable] = Counter()
    agree = 0
    for (x, y), count in table.items():
        rows[x] += count
        cols[y] += count
        if x == y:
            agree += count
    expected = sum(rows[c] * cols[c] for c in rows) / (n * n)
    return _chance_corrected(agree / n, expected, n)


def cohen_kappa_from_ratings(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> Agreement:
    """Cohen's kappa of two paired rating lists (None: that session gave no rating)."""
    return cohen_kappa(contingency(a, b))


def pairwise_cohen(
    ratings: Mapping[Hashable, Mapping[str, Hashable | None]],
) -> dict[tuple[str, str], Agreement]:
    """Cohen's kappa for every pair of sessions: {item: {session: category}} in, by pair out."""
    sessions = sorted({s for by_session in ratings.values() for s in by_session})
    tables: dict[tuple[str, str], Counter[tuple[Hashable, Hashable]]] = {
        pair: Counter() for pair in combinations(sessions, 2)
    }
    for by_session in ratings.values():
        rated = sorted((s, c) for s, c in by_session.items() if c is not None)
        for (sa, ca), (sb, cb) in combinations(rated, 2):
            tables[(sa, sb)][(ca, cb)] += 1
    return {pair: cohen_kappa(table) for pair, table in tables.items()}


# -- Fleiss' kappa and Krippendorff's alpha (any number of sessions) -------------------


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """Sufficient statistics of one category over the items with two or more ratings.

    `total` = Σ_u n_uc (ratings in the category); `within` = Σ_u n_uc(n_uc−1)/(m_u−1)
    (Krippendorff's coincidences of the category with itself); `pairs` =
    Σ_u n_uc(n_uc−1)/(m_u(m_u−1)) (this category's part of Fleiss' per-item agreement).
    n_uc is the item's ratings in the category, m_u its ratings in all.
    """

    category: str
    total: float
    within: float
    pairs: float


def category_stats(items: Iterable[Mapping[Hashable, int]]) -> tuple[list[CategoryStats], int]:
    """Per-category statistics and the item count, from per-item category counts.

    Items with fewer than two ratings cannot show (dis)agreement and are skipped, as
    Krippendorff's alpha prescribes.
    """
    total: Counter[str] = Counter()
    within: dict[str, float] = {}
    pairs: dict[str, float] = {}
    n_items = 0
    for counts in items:
        m = sum(counts.values())
        if m < 2:
            continue
        n_items += 1
        for category, n in counts.items():
            key = str(category)
            total[key] += n
            within[key] = within.get(key, 0.0) + n * (n - 1) / (m - 1)
            pairs[key] = pairs.get(key, 0.0) + n * (n - 1) / (m * (m - 1))
    stats = [CategoryStats(c, float(total[c]), within[c], pairs[c]) for c in sorted(total)]
    return stats, n_items


def _items(ratings: Mapping[Hashable, Mapping[str, Hashable | None]]) -> list[Counter[Hashable]]:
    return [Counter(c for c in by_session.values() if c is not None) for by_session in ratings.values()]


def fleiss_kappa(
    stats: Sequence[CategoryStats] | Mapping[Hashable, Mapping[str, Hashable | None]],
    n_items: int | None = None,
) -> Agreement:
    """Fleiss' kappa, from `category_stats` (with `n_items`) or from {item: {session: category}}.

    P̄ is the mean over items of the share of agreeing rating pairs; chance P̄e = Σ p_c²
    with p_c the category's share of all ratings. With a varying number of ratings per
    item this is the usual generalisation; with a constant number it is Fleiss (1971).
    """
    if isinstance(stats, Mapping):
        stats, n_items = category_stats(_items(stats))
    if not n_items:
        return Agreement(None, 0, note=NO_OVERLAP)
    ratings = sum(s.total for s in stats)
    observed = sum(s.pairs for s in stats) / n_items
    expected = sum((s.total / ratings) ** 2 for s in stats)
    return _chance_corrected(observed, expected, n_items)


def krippendorff_alpha(
    stats: Sequence[CategoryStats] | Mapping[Hashable, Mapping[str, Hashable | None]],
    n_items: int | None = None,
) -> Agreement:
    """Krippendorff's alpha for nominal data: 1 − D_o / D_e from the coincidence matrix.

    Takes `category_stats` (with `n_items`) or {item: {session: category}}; items with a
    single rating are not pairable and do not count.
    """
    if isinstance(stats, Mapping):
        stats, n_items = category_stats(_items(stats))
    if not n_items:
        return Agreement(None, 0, note=NO_OVERLAP)
    n = sum(s.total for s in stats)
    observed = sum(s.within for s in stats) / n
    # Expected coincidence of equal values: Σ n_c(n_c − 1) / (n(n − 1)).
    expected = sum(s.total * (s.total - 1) for s in stats) / (n * (n - 1))
    return _chance_corrected(observed, expected, n_items)


# -- spans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanScore:
    """Span agreement of two sessions: session a as reference, b as the other.

    `precision` = matched / n_b, `recall` = matched / n_a (None when that session marked
    nothing), `f1` = 2·matched / (n_a + n_b), 1.0 when neither marked anything.
    """

    matched: int
    n_a: int
    n_b: int
    n_items: int
    precision: float | None
    recall: float | None
    f1: float | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "matched": self.matched,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "n_items": self.n_items,
            "note": self.note,
        }


def span_score(matched: int, n_a: int, n_b: int, n_items: int) -> SpanScore:
    """Precision, recall and F1 from counts of matching and marked units."""
    if n_items == 0:
        return SpanScore(0, 0, 0, 0, None, None, None, NO_OVERLAP)
    precision = matched / n_b if n_b else None
    recall = matched / n_a if n_a else None
    f1 = 2 * matched / (n_a + n_b) if n_a + n_b else 1.0
    return SpanScore(matched, n_a, n_b, n_items, precision, recall, f1)


def span_units(spans: Iterable[Mapping[str, Any]], mode: str) -> set[tuple[Any, ...]]:
    """The units two sessions' spans are compared on.

    `exact`: (start, end, label) per span. `token`: (token, label) per token covered
    (`token_start`..`token_end`, inclusive as in Prodigy), or per character
    (`start`..`end`, exclusive) for spans without token offsets.
    """
    if mode not in ("exact", "token"):
        raise ValueError(f"unknown span match mode {mode!r}: use 'exact' or 'token'")
    units: set[tuple[Any, ...]] = set()
    for span in spans:
        label = span.get("label")
        if mode == "exact":
            units.add((span.get("start"), span.get("end"), label))
        elif span.get("token_start") is not None and span.get("token_end") is not None:
            units.update(("t", i, label) for i in range(span["token_start"], span["token_end"] + 1))
        else:
            units.update(("c", i, label) for i in range(span["start"], span["end"]))
    return units


def pairwise_span_scores(
    annotations: Mapping[Hashable, Mapping[str, Sequence[Mapping[str, Any]] | None]],
    mode: str = "exact",
    label: str | None = None,
) -> dict[tuple[str, str], SpanScore]:
    """Span agreement for every pair of sessions over the items both annotated.

    `annotations` is {item: {session: spans}}, None for an item a session did not accept
    (rejected, ignored or never saw). `label` restricts the comparison to one label.
    """
    sessions = sorted({s for by_session in annotations.values() for s in by_session})
    counts = {pair: [0, 0, 0, 0] for pair in combinations(sessions, 2)}
    for by_session in annotations.values():
        units = {
            s: {u for u in span_units(spans, mode) if label is None or u[-1] == label}
            for s, spans in by_session.items()
            if spans is not None
        }
        for sa, sb in combinations(sorted(units), 2):
            tally = counts[(sa, sb)]
            tally[0] += len(units[sa] & units[sb])
            tally[1] += len(units[sa])
            tally[2] += len(units[sb])
            tally[3] += 1
    return {pair: span_score(*tally) for pair, tally in counts.items()}
