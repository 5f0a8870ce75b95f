"""Agreement math (`projections.agreement`) against independent reference implementations:
scikit-learn's `cohen_kappa_score`, statsmodels' `fleiss_kappa`, the `krippendorff` package.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.agreement import (
    NO_OVERLAP,
    ONE_CATEGORY,
    category_stats,
    cohen_kappa,
    cohen_kappa_from_ratings,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    pairwise_span_scores,
    span_score,
    span_units,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")
inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
krippendorff = pytest.importorskip("krippendorff")

CATEGORIES = ["accept", "reject", "A", "B"]

paired = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from(CATEGORIES[:3]), min_size=n, max_size=n),
        st.lists(st.sampled_from(CATEGORIES[:3]), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(paired)
def test_cohen_kappa_matches_scikit_learn(pair):
    a, b = pair
    ours = cohen_kappa_from_ratings(a, b)
    assert ours.n_items == len(a)
    if len(set(a) | set(b)) == 1:
        assert ours.value is None and ours.note == ONE_CATEGORY and ours.observed == 1.0
        return
    reference = sklearn_metrics.cohen_kappa_score(a, b)
    assert ours.value == pytest.approx(reference, abs=1e-12)


def _complete_items(draw_items: list[list[str]]) -> tuple[dict, np.ndarray, list[str]]:
    categories = sorted({c for item in draw_items for c in item})
    ratings = {i: {f"s{j}": c for j, c in enumerate(item)} for i, item in enumerate(draw_items)}
    table = np.array([[item.count(c) for c in categories] for item in draw_items])
    return ratings, table, categories


complete = st.tuples(st.integers(2, 6), st.integers(1, 40)).flatmap(
    lambda shape: st.lists(
        st.lists(st.sampled_from(CATEGORIES), min_size=shape[0], max_size=shape[0]),
        min_size=shape[1],
        max_size=shape[1],
    )
)


@settings(max_examples=150, deadline=None)
@given(complete)
def test_fleiss_kappa_matches_statsmodels_when_every_item_has_all_raters(items):
    ratings, table, categories = _complete_items(items)
    ours = fleiss_kappa(ratings)
    assert ours.n_items == len(items)
    if len(categories) == 1:
        assert ours.value is None and ours.note == ONE_CATEGORY
        return
    reference = inter_rater.fleiss_kappa(table, method="fleiss")
    assert ours.value == pytest.approx(reference, abs=1e-9)


sparse = st.tuples(st.integers(2, 6), st.integers(1, 40)).flatmap(
    lambda shape: st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from(CATEGORIES)), min_size=shape[0], max_size=shape[0]),
        min_size=shape[1],
        max_size=shape[1],
    )
)


@settings(max_examples=150, deadline=None)
@given(sparse)
def test_krippendorff_alpha_matches_the_krippendorff_package_with_missing_ratings(items):
    ratings = {i: {f"s{j}": c for j, c in enumerate(item)} for i, item in enumerate(items)}
    ours = krippendorff_alpha(ratings)
    pairable = [item for item in items if sum(c is not None for c in item) >= 2]
    assert ours.n_items == len(pairable)
    if not pairable:
        assert ours.value is None and ours.note == NO_OVERLAP
        return
    values = {c for item in pairable for c in item if c is not None}
    if len(values) == 1:
        assert ours.value is None and ours.note == ONE_CATEGORY
        return
    codes = {c: float(i) for i, c in enumerate(CATEGORIES)}
    # The package wants raters × units, NaN for a missing rating.
    data = np.array([[math.nan if c is None else codes[c] for c in item] for item in items]).T
    reference = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert ours.value == pytest.approx(reference, abs=1e-9)


def test_fleiss_with_a_varying_number_of_raters_reduces_to_pairs_of_two():
    """Every item rated by exactly two sessions, whoever they are: Fleiss' own formula."""
    rng = random.Random(6)
    items = [[rng.choice("xyz") for _ in range(2)] for _ in range(50)]
    sessions = [f"s{i}" for i in range(5)]
    ratings = {}
    for i, (x, y) in enumerate(items):
        a, b = rng.sample(sessions, 2)
        ratings[i] = {a: x, b: y, "absent": None}
    _, table, _ = _complete_items(items)
    assert fleiss_kappa(ratings).value == pytest.approx(inter_rater.fleiss_kappa(table), abs=1e-12)


def test_pairwise_cohen_uses_only_items_both_sessions_rated():
    ratings = {
        1: {"ann": "accept", "bob": "accept", "cat": "reject"},
        2: {"ann": "reject", "bob": "reject"},
        3: {"ann": "accept", "cat": "accept"},
        4: {"bob": "reject", "cat": None},  # cat ignored it
        5: {"ann": "accept", "bob": "reject"},
    }
    pairs = pairwise_cohen(ratings)
    assert set(pairs) == {("ann", "bob"), ("ann", "cat"), ("bob", "cat")}
    assert pairs[("ann", "bob")].n_items == 3
    assert pairs[("ann", "bob")].value == pytest.approx(
        sklearn_metrics.cohen_kappa_score(["accept", "reject", "accept"], ["accept", "reject", "reject"])
    )
    assert pairs[("ann", "cat")].n_items == 2
    assert pairs[("bob", "cat")].n_items == 1


def test_edge_cases_give_figures_not_nan():
    assert cohen_kappa({}).note == NO_OVERLAP
    assert cohen_kappa({}).n_items == 0
    one_annotator = {1: {"ann": "accept"}, 2: {"ann": "reject"}}
    assert pairwise_cohen(one_annotator) == {}
    assert fleiss_kappa(one_annotator).note == NO_OVERLAP
    assert krippendorff_alpha(one_annotator).value is None
    all_agree = {i: {"a": c, "b": c, "c": c} for i, c in enumerate(["x", "y", "x", "z"])}
    assert fleiss_kappa(all_agree).value == pytest.approx(1.0)
    assert krippendorff_alpha(all_agree).value == pytest.approx(1.0)
    assert pairwise_cohen(all_agree)[("a", "b")].value == pytest.approx(1.0)
    same_label = {i: {"a": "accept", "b": "accept"} for i in range(5)}
    figure = krippendorff_alpha(same_label)
    assert figure.value is None and figure.observed == 1.0 and figure.note == ONE_CATEGORY
    for figure in (fleiss_kappa(all_agree), cohen_kappa({("x", "y"): 3})):
        assert figure.value is None or not math.isnan(figure.value)


def test_category_stats_skips_items_with_one_rating():
    stats, n_items = category_stats([{"x": 2}, {"y": 1}, {"x": 1, "y": 1}])
    assert n_items == 2
    assert {s.category: s.total for s in stats} == {"x": 3.0, "y": 1.0}


def test_span_scores_exact_and_token_overlap():
    gold = [
        {"start": 0, "end": 5, "token_start": 0, "token_end": 0, "label": "PER"},
        {"start": 10, "end": 20, "token_start": 2, "token_end": 3, "label": "ORG"},
    ]
    other = [
        {"start": 0, "end": 5, "token_start": 0, "token_end": 0, "label": "PER"},
        {"start": 10, "end": 14, "token_start": 2, "token_end": 2, "label": "ORG"},
        {"start": 30, "end": 34, "token_start": 6, "token_end": 6, "label": "LOC"},
    ]
    assert span_units(gold, "token") == {("t", 0, "PER"), ("t", 2, "ORG"), ("t", 3, "ORG")}
    exact = pairwise_span_scores({1: {"a": gold, "b": other}}, "exact")[("a", "b")]
    assert (exact.matched, exact.n_a, exact.n_b) == (1, 2, 3)
    assert exact.precision == pytest.approx(1 / 3) and exact.recall == pytest.approx(1 / 2)
    assert exact.f1 == pytest.approx(2 * 1 / 5)
    token = pairwise_span_scores({1: {"a": gold, "b": other}}, "token")[("a", "b")]
    assert (token.matched, token.n_a, token.n_b) == (2, 3, 3)
    per_label = pairwise_span_scores({1: {"a": gold, "b": other}}, "exact", label="ORG")[("a", "b")]
    assert per_label.f1 == 0.0
    # Characters stand in for tokens when a span has no token offsets.
    chars = span_units([{"start": 3, "end": 6, "label": "X"}], "token")
    assert chars == {("c", 3, "X"), ("c", 4, "X"), ("c", 5, "X")}


def test_span_edge_cases():
    nothing_marked = pairwise_span_scores({1: {"a": [], "b": []}})[("a", "b")]
    assert nothing_marked.f1 == 1.0 and nothing_marked.precision is None and nothing_marked.n_items == 1
    one_rejected = pairwise_span_scores({1: {"a": [], "b": None}})[("a", "b")]
    assert one_rejected.n_items == 0 and one_rejected.note == NO_OVERLAP
    assert span_score(0, 3, 0, 2).recall == 0.0 and span_score(0, 3, 0, 2).precision is None
    with pytest.raises(ValueError, match="exact"):
        span_units([], "fuzzy")
