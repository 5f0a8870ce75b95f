"""Agreement through the DuckDB views (what `quorum agreement` and the dashboard read),
against the pure functions on the same ratings and against the reference packages."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from ledger.connection import connect
from projections.agreement import (
    NO_OVERLAP,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    pairwise_span_scores,
)
from projections.duck import open_projections
from projections.errors import NoOverlap
from projections.reports import agreement_report, disagreements
from tests.conftest import quorum_cli, run
from tests.ledger_writes import answer, configure, register, write

krippendorff = pytest.importorskip("krippendorff")
SESSIONS = ["ann", "bob", "cat", "dan"]


async def _with_projections(nats_url, dataset, func):
    nc = await connect(nats_url)
    try:
        with await open_projections(nc, dataset=dataset) as projections:
            return func(projections)
    finally:
        await nc.close()


def _rows(nats_url, dataset, sql):
    return run(_with_projections(nats_url, dataset, lambda p: p.execute(sql, [dataset]).fetchall()))


def _binary_ledger(rng, dataset):
    """Full overlap, two labels, ignores and skipped tasks; the ratings each session gave."""
    batches = [[configure(dataset, feed_overlap=True, labels=["POS", "NEG"])]]
    ratings: dict[str | None, dict[int, dict[str, str | None]]] = {None: {}, "POS": {}, "NEG": {}}
    for task in range(1, 41):
        label = "POS" if task % 2 else "NEG"
        truth = rng.choice(["accept", "reject"])
        for session in SESSIONS:
            if rng.random() < 0.2:
                continue  # this session never saw the task
            decision = truth if rng.random() < 0.7 else rng.choice(["accept", "reject", "ignore"])
            example = {"text": f"text {task}", "label": label}
            batches.append([answer(dataset, session, task, decision, example=example)])
            rating = None if decision == "ignore" else decision
            ratings[None].setdefault(task, {})[session] = rating
            ratings[label].setdefault(task, {})[session] = rating
    return batches, ratings


def test_label_agreement_views_match_the_pure_functions(nats_url, dataset_name):
    batches, ratings = _binary_ledger(random.Random(61), dataset_name)
    run(write(nats_url, batches))
    pairs = _rows(
        nats_url,
        dataset_name,
        "SELECT label, session_a, session_b, kappa, n_items FROM agreement_pairs WHERE dataset = ?",
    )
    assert len(pairs) == 3 * 6
    for label, a, b, kappa, n_items in pairs:
        expected = pairwise_cohen(ratings[label])[(a, b)]
        assert n_items == expected.n_items
        assert kappa == pytest.approx(expected.value, abs=1e-12)
    summary = _rows(
        nats_url,
        dataset_name,
        "SELECT label, n_items, fleiss.value, krippendorff.value FROM agreement_summary WHERE dataset = ?",
    )
    assert {row[0] for row in summary} == {None, "POS", "NEG"}
    for label, n_items, fleiss, alpha in summary:
        assert n_items == fleiss_kappa(ratings[label]).n_items
        assert fleiss == pytest.approx(fleiss_kappa(ratings[label]).value, abs=1e-12)
        assert alpha == pytest.approx(krippendorff_alpha(ratings[label]).value, abs=1e-12)
    # And straight against the krippendorff package for the overall figure.
    codes = {"accept": 1.0, "reject": 2.0, None: math.nan}
    data = np.array(
        [[codes[ratings[None].get(t, {}).get(s)] for t in sorted(ratings[None])] for s in SESSIONS]
    )
    overall = next(row for row in summary if row[0] is None)
    assert overall[3] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    )


def _choice_ledger(rng, dataset, multiple):
    options = [{"id": o, "text": o} for o in ("A", "B", "C")]
    batches = [
        [
            configure(
                dataset,
                annotations_per_task=3,
                view_id="choice",
                labels=["A", "B", "C"],
                choice_style="multiple" if multiple else "single",
            )
        ]
    ]
    chosen: dict[int, dict[str, list[str] | None]] = {}
    for task in range(1, 31):
        for session in rng.sample(SESSIONS, 3):
            decision = "reject" if rng.random() < 0.1 else "accept"
            pick = sorted(rng.sample("ABC", rng.randint(0, 2) if multiple else 1))
            example = {"text": f"text {task}", "options": options, "accept": pick}
            batches.append([answer(dataset, session, task, decision, view_id="choice", example=example)])
            chosen.setdefault(task, {})[session] = pick if decision == "accept" else None
    return batches, chosen


@pytest.mark.parametrize("multiple", [False, True])
def test_choice_agreement_per_option_and_overall(nats_url, dataset_name, multiple):
    batches, chosen = _choice_ledger(random.Random(f"choice{multiple}"), dataset_name, multiple)
    run(write(nats_url, batches))
    per_option = {
        option: {
            task: {
                s: (None if pick is None else ("yes" if option in pick else "no")) for s, pick in by.items()
            }
            for task, by in chosen.items()
        }
        for option in "ABC"
    }
    if multiple:
        overall = {
            (task, option): by_session
            for option, items in per_option.items()
            for task, by_session in items.items()
        }
    else:
        overall = {
            task: {s: "(rejected)" if pick is None else "|".join(pick) for s, pick in by.items()}
            for task, by in chosen.items()
        }
    report = run(_with_projections(nats_url, dataset_name, lambda p: agreement_report(p, dataset_name)))
    assert report.task == "labels"
    assert report.overall["krippendorff_alpha"] == pytest.approx(krippendorff_alpha(overall).value)
    assert report.overall["fleiss_kappa"] == pytest.approx(fleiss_kappa(overall).value)
    assert report.overall["n_items"] == fleiss_kappa(overall).n_items
    for pair in report.pairwise:
        assert pair.kappa == pytest.approx(pairwise_cohen(overall)[(pair.session_a, pair.session_b)].value)
    assert set(report.labels) == {"A", "B", "C"}
    for option, figure in report.labels.items():
        assert figure.overall["krippendorff_alpha"] == pytest.approx(
            krippendorff_alpha(per_option[option]).value
        )


def _spans(rng, tokens):
    spans = []
    for i in sorted(rng.sample(range(tokens), 3)):
        if spans and spans[-1]["token_end"] >= i:
            continue
        end = min(i + rng.randint(0, 1), tokens - 1)
        spans.append(
            {
                "start": i * 6,
                "end": end * 6 + 5,
                "token_start": i,
                "token_end": end,
                "label": rng.choice(["PER", "ORG"]),
            }
        )
    return spans


def test_span_agreement_view_matches_the_pure_function(nats_url, dataset_name):
    rng = random.Random(66)
    batches = [[configure(dataset_name, feed_overlap=True, view_id="ner_manual", recipe="ner.manual")]]
    marked: dict[int, dict[str, list | None]] = {}
    for task in range(1, 16):
        base = _spans(rng, 12)
        for session in SESSIONS[:3]:
            spans = base if rng.random() < 0.5 else _spans(rng, 12)
            decision = rng.choice(["accept"] * 5 + ["reject", "ignore"])
            example = {"text": " ".join(f"word{i:01d}" for i in range(12)), "spans": spans}
            batches.append(
                [answer(dataset_name, session, task, decision, view_id="ner_manual", example=example)]
            )
            marked.setdefault(task, {})[session] = spans if decision == "accept" else None
    run(write(nats_url, batches))
    report = run(_with_projections(nats_url, dataset_name, lambda p: agreement_report(p, dataset_name)))
    assert report.task == "spans"
    for mode in ("exact", "token"):
        expected = pairwise_span_scores(marked, mode)
        for pair in report.pairwise:
            score = expected[(pair.session_a, pair.session_b)]
            got = getattr(pair, mode)
            assert pair.n_items == score.n_items
            assert got["f1"] == pytest.approx(score.f1)
            assert got["precision"] == pytest.approx(score.precision)
        for label, figure in report.labels.items():
            by_label = pairwise_span_scores(marked, mode, label=label)
            for pair in figure.pairwise:
                assert getattr(pair, mode)["f1"] == pytest.approx(
                    by_label[(pair.session_a, pair.session_b)].f1
                )


def test_no_overlap_one_annotator_and_all_agree(nats_url, dataset_name):
    solo, shared, same = f"{dataset_name}solo", f"{dataset_name}split", f"{dataset_name}same"
    run(
        write(
            nats_url,
            [
                [configure(solo)],
                [answer(solo, "ann", 1), answer(solo, "ann", 2, "reject")],
                [configure(shared)],
                [answer(shared, "ann", 1)],
                [answer(shared, "bob", 2)],
                [configure(same, feed_overlap=True)],
                [answer(same, "ann", 1), answer(same, "ann", 2)],
                [answer(same, "bob", 1), answer(same, "bob", 2)],
            ],
        )
    )
    for dataset in (solo, shared):
        with pytest.raises(NoOverlap, match=NO_OVERLAP):
            run(_with_projections(nats_url, dataset, lambda p, d=dataset: agreement_report(p, d)))
    report = run(_with_projections(nats_url, same, lambda p: agreement_report(p, same)))
    assert report.overall["krippendorff_alpha"] is None
    assert report.overall["observed_agreement"] == 1.0
    assert "undefined" in report.overall["note"]
    assert report.pairwise[0].kappa is None and report.pairwise[0].n_items == 2


def test_disagreements_list_each_sessions_decision(nats_url, dataset_name):
    d = dataset_name
    run(
        write(
            nats_url,
            [
                [configure(d, feed_overlap=True)],
                [answer(d, "ann", 1, "accept"), answer(d, "ann", 2, "accept"), answer(d, "ann", 3, "ignore")],
                [answer(d, "bob", 1, "reject"), answer(d, "bob", 2, "accept"), answer(d, "bob", 3, "reject")],
            ],
        )
    )
    queue = run(_with_projections(nats_url, d, lambda p: disagreements(p, d)))
    assert [item.task_hash for item in queue] == [1]
    assert [(x["session"], x["answer"]) for x in queue[0].decisions] == [("ann", "accept"), ("bob", "reject")]
    assert queue[0].text == "text 1"


def test_quorum_agreement_cli(nats_url, dataset_name):
    d = dataset_name
    batches, _ = _binary_ledger(random.Random(7), d)
    run(write(nats_url, batches))
    run(register(nats_url, d, feed_overlap=True))
    env = {"NATS_URL": nats_url}
    result = quorum_cli("agreement", d, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert set(report["overall"]) >= {"fleiss_kappa", "krippendorff_alpha", "n_items"}
    assert {"session_a", "session_b", "kappa", "n_items"} <= set(report["pairwise"][0])
    assert set(report["labels"]) == {"POS", "NEG"}
    table = quorum_cli("agreement", d, "--disagreements", env=env)
    assert table.returncode == 0, table.stderr.decode()
    text = table.stdout.decode()
    assert "Fleiss" in text and "Krippendorff" in text and "text " in text
    missing = quorum_cli("agreement", f"{d}nope", env=env)
    assert missing.returncode == 1 and b"unknown dataset" in missing.stderr
    assert b"Traceback" not in missing.stderr
    solo = f"{d}solo"
    run(write(nats_url, [[configure(solo)], [answer(solo, "ann", 1)]]))
    run(register(nats_url, solo))
    none = quorum_cli("agreement", solo, env=env)
    assert none.returncode == 1
    assert NO_OVERLAP in none.stderr.decode() and "NaN" not in none.stderr.decode()
