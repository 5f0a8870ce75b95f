"""Reports read from the views: agreement, the review queue, counts, dashboard series.

Each function takes an open `Projections` and returns plain result objects (msgspec
Structs, so `--format json` and the dashboard serialise them as they are). The SQL
lives in `views.sql`; these only select from it and shape the rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import msgspec
from nats.aio.client import Client

from projections.agreement import NO_OVERLAP, span_score
from projections.duck import Projections, open_projections
from projections.errors import NoOverlap

__all__ = [
    "AgreementReport",
    "Disagreement",
    "LabelAgreement",
    "PairFigure",
    "agreement_report",
    "dashboard_data",
    "dataset_counts",
    "disagreements",
    "review_queue",
    "session_counts",
]

SPAN_VIEWS = ("ner_manual", "spans_manual")


class PairFigure(msgspec.Struct, omit_defaults=True):
    """Agreement of one pair of sessions. Label tasks fill `kappa`; span tasks `exact`/`token`."""

    session_a: str
    session_b: str
    n_items: int
    kappa: float | None = None
    observed_agreement: float | None = None
    exact: dict[str, Any] | None = None
    token: dict[str, Any] | None = None
    note: str | None = None


class LabelAgreement(msgspec.Struct, omit_defaults=True):
    """The figures of one label (or of the whole dataset): every pair, and all sessions at once."""

    pairwise: list[PairFigure]
    overall: dict[str, Any]


class AgreementReport(msgspec.Struct):
    """`quorum agreement DATASET --format json`: overall and pairwise, then per label."""

    dataset: str
    task: str
    pairwise: list[PairFigure]
    overall: dict[str, Any]
    labels: dict[str, LabelAgreement]


def _task(projections: Projections, dataset: str) -> str:
    views = [
        row[0]
        for row in projections.execute(
            "SELECT view_id FROM answers WHERE dataset = ? GROUP BY view_id ORDER BY count(*) DESC",
            [dataset],
        ).fetchall()
    ]
    return "spans" if views and views[0] in SPAN_VIEWS else "labels"


def _label_figures(projections: Projections, dataset: str) -> dict[str | None, LabelAgreement]:
    pairs: dict[str | None, list[PairFigure]] = {}
    for label, a, b, kappa, n_items, observed, note in projections.execute(
        "SELECT label, session_a, session_b, kappa, n_items, observed, note FROM agreement_pairs "
        "WHERE dataset = ? ORDER BY label NULLS FIRST, session_a, session_b",
        [dataset],
    ).fetchall():
        pairs.setdefault(label, []).append(PairFigure(a, b, n_items, kappa, observed, note=note))
    result: dict[str | None, LabelAgreement] = {}
    for label, n_sessions, n_items, fleiss, alpha in projections.execute(
        "SELECT label, n_sessions, n_items, fleiss, krippendorff FROM agreement_summary "
        "WHERE dataset = ? ORDER BY label NULLS FIRST",
        [dataset],
    ).fetchall():
        overall = {
            "fleiss_kappa": fleiss["value"],
            "krippendorff_alpha": alpha["value"],
            "n_items": n_items,
            "n_sessions": n_sessions,
            "observed_agreement": alpha["observed"],
        }
        note = alpha["note"] or fleiss["note"]
        if note:
            overall["note"] = note
        result[label] = LabelAgreement(pairs.get(label, []), overall)
    return result


def _score(precision: float | None, recall: float | None, f1: float | None) -> dict[str, Any]:
    return {"precision": precision, "recall": recall, "f1": f1}


def _span_figures(projections: Projections, dataset: str) -> dict[str | None, LabelAgreement]:
    pairs: dict[str | None, dict[tuple[str, str], PairFigure]] = {}
    totals: dict[tuple[str | None, str], list[int]] = {}
    for a, b, mode, label, precision, recall, f1, matched, n_a, n_b, n_items in projections.execute(
        "SELECT session_a, session_b, mode, label, precision, recall, f1, matched, n_a, n_b, n_items "
        "FROM span_agreement WHERE dataset = ? ORDER BY label NULLS FIRST, session_a, session_b",
        [dataset],
    ).fetchall():
        figure = pairs.setdefault(label, {}).setdefault((a, b), PairFigure(a, b, n_items))
        setattr(figure, mode, _score(precision, recall, f1))
        tally = totals.setdefault((label, mode), [0, 0, 0])
        tally[0] += matched
        tally[1] += n_a
        tally[2] += n_b
    shared = projections.execute(
        "WITH docs AS (SELECT task_hash, session FROM answers WHERE dataset = ? AND answer = 'accept' "
        f"AND view_id IN {SPAN_VIEWS}), "
        "shared AS (SELECT task_hash FROM docs GROUP BY task_hash HAVING count(*) >= 2) "
        "SELECT (SELECT count(*) FROM shared), "
        "(SELECT count(DISTINCT session) FROM docs WHERE task_hash IN (SELECT task_hash FROM shared))",
        [dataset],
    ).fetchone()
    n_items, n_sessions = shared if shared else (0, 0)
    result: dict[str | None, LabelAgreement] = {}
    for label, by_pair in pairs.items():
        overall: dict[str, Any] = {"n_items": n_items, "n_sessions": n_sessions}
        for mode in ("exact", "token"):
            matched, n_a, n_b = totals.get((label, mode), [0, 0, 0])
            overall[f"f1_{mode}"] = span_score(matched, n_a, n_b, n_items).f1
        result[label] = LabelAgreement(list(by_pair.values()), overall)
    return result


def agreement_report(projections: Projections, dataset: str) -> AgreementReport:
    """Agreement of `dataset`'s sessions; `NoOverlap` when no task has two answers."""
    task = _task(projections, dataset)
    figures = _span_figures(projections, dataset) if task == "spans" else _label_figures(projections, dataset)
    overall = figures.get(None)
    if overall is None or not overall.overall.get("n_items"):
        raise NoOverlap(
            f"dataset {dataset!r}: {NO_OVERLAP}, so there is no agreement to compute. Route tasks to "
            f"several annotators with --feed-overlap or --annotations-per-task 2 (or more)"
        )
    labels = {label: figure for label, figure in figures.items() if label is not None}
    return AgreementReport(dataset, task, overall.pairwise, overall.overall, labels)


class Disagreement(msgspec.Struct):
    """One task of the review queue, and what each session decided."""

    task_hash: int
    input_hash: int
    text: str | None
    n_sessions: int
    decisions: list[dict[str, Any]]


def disagreements(projections: Projections, dataset: str, limit: int | None = None) -> list[Disagreement]:
    """Tasks where sessions' decisions differ, oldest first (the order they were answered)."""
    return review_queue(projections, dataset, limit)[0]


def review_queue(projections: Projections, dataset: str, limit: int | None) -> tuple[list[Disagreement], int]:
    """The first `limit` disagreements (all without a limit), and how many there are.

    With a limit, the tasks are picked from `_disagreement_tasks` (hashes of decisions,
    no lists) and only those are read from `disagreements`: the lists of decisions and
    the example texts are built for `limit` tasks, not for the whole queue (issue 22).
    """
    sql = "SELECT task_hash, input_hash, text, n_sessions, decisions FROM disagreements WHERE dataset = ?"
    params: list[Any] = [dataset]
    total: int | None = None
    if limit is not None:
        picked = projections.execute(
            "SELECT task_hash, count(*) OVER () FROM _disagreement_tasks WHERE dataset = ? "
            "ORDER BY answer_order, task_hash LIMIT ?",
            [dataset, max(limit, 1)],
        ).fetchall()
        total = picked[0][1] if picked else 0
        if limit < 1 or not picked:
            return [], total
        sql += " AND list_contains(?, task_hash)"
        params.append([task for task, _ in picked])
    rows = projections.execute(sql + " ORDER BY answer_order, task_hash", params).fetchall()
    queue = [
        Disagreement(
            task, input_hash, text, n, [{k: v for k, v in d.items() if v is not None} for d in decided]
        )
        for task, input_hash, text, n, decided in rows
    ]
    return queue, len(queue) if total is None else total


async def answer_counts(nc: Client, dataset: str, snapshot_dir: str | None = None) -> Counter[str]:
    """Current answers per session of `dataset`, from snapshots plus the live tail."""
    projections = await open_projections(nc, dataset=dataset, snapshot_dir=snapshot_dir)
    try:
        return await asyncio.to_thread(session_counts, projections, dataset)
    finally:
        projections.close()


def session_counts(projections: Projections, dataset: str) -> Counter[str]:
    """Current answers per session of `dataset`."""
    rows = projections.execute(
        "SELECT session, count(*) FROM answers WHERE dataset = ? GROUP BY session", [dataset]
    ).fetchall()
    return Counter({session: count for session, count in rows})


class DatasetCounts(msgspec.Struct):
    """`quorum stats` for one dataset: recipe, answers by decision and by session."""

    dataset: str
    recipe: str = ""
    view_id: str = ""
    answers: dict[str, int] = msgspec.field(default_factory=dict)
    sessions: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.answers.values())


def dataset_counts(projections: Projections, names: list[str]) -> list[DatasetCounts]:
    """Counts for each dataset in `names`, in that order."""
    found = {name: DatasetCounts(name) for name in names}
    for dataset, recipe, view_id in projections.execute(
        "SELECT dataset, recipe, view_id FROM datasets"
    ).fetchall():
        if dataset in found:
            found[dataset].recipe, found[dataset].view_id = recipe or "", view_id or ""
    for dataset, session, decision, count in projections.execute(
        "SELECT dataset, session, answer, count(*) FROM answers GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        if dataset in found:
            item = found[dataset]
            item.answers[decision] = item.answers.get(decision, 0) + count
            item.sessions[session] = item.sessions.get(session, 0) + count
    return [found[name] for name in names]


def _progress(projections: Projections, dataset: str) -> dict[str, Any]:
    """Cumulative answers and tasks answered, by hour for a young dataset, else by day."""
    span = projections.execute(
        "SELECT min(answered_at), max(answered_at) FROM answers WHERE dataset = ?", [dataset]
    ).fetchone()
    if not span or span[0] is None:
        return {"bucket": "day", "points": []}
    bucket = "hour" if (span[1] - span[0]).total_seconds() < 3 * 86400 else "day"
    rows = projections.execute(
        f"""
        WITH firsts AS (SELECT task_hash, min(answered_at) AS first_at FROM answers WHERE dataset = ?
                        GROUP BY task_hash),
             answered AS (SELECT date_trunc('{bucket}', answered_at) AS t, count(*) AS n
                          FROM answers WHERE dataset = ? GROUP BY t),
             tasks AS (SELECT date_trunc('{bucket}', first_at) AS t, count(*) AS n FROM firsts GROUP BY t)
        SELECT a.t, sum(a.n) OVER (ORDER BY a.t), sum(coalesce(k.n, 0)) OVER (ORDER BY a.t)
        FROM answered a LEFT JOIN tasks k USING (t) ORDER BY a.t
        """,
        [dataset, dataset],
    ).fetchall()
    return {
        "bucket": bucket,
        "points": [{"t": t.isoformat(), "answers": int(n), "tasks": int(k)} for t, n, k in rows],
    }


def _heatmap(report: AgreementReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    spans = report.task == "spans"
    cells: list[dict[str, Any]] = []
    for pair in report.pairwise:
        value = (pair.exact or {}).get("f1") if spans else pair.kappa
        cells.append({"a": pair.session_a, "b": pair.session_b, "value": value, "n_items": pair.n_items})
    sessions = sorted({p.session_a for p in report.pairwise} | {p.session_b for p in report.pairwise})
    return {
        "metric": "span F1 (exact)" if spans else "Cohen's kappa",
        "sessions": sessions,
        "cells": cells,
        "overall": report.overall,
        "task": report.task,
    }


def dashboard_data(
    projections: Projections, dataset: str, *, total_tasks: int = 0, review_limit: int = 50
) -> dict[str, Any]:
    """Everything the dashboard draws, as one JSON-ready object."""
    per_day = [
        {"session": session, "day": str(day), "answers": n, "accept": acc, "reject": rej, "ignore": ign}
        for session, day, n, acc, rej, ign in projections.execute(
            "SELECT session, day, answers, accept, reject, ignore FROM annotator_counts "
            "WHERE dataset = ? ORDER BY day, session",
            [dataset],
        ).fetchall()
    ]
    try:
        report: AgreementReport | None = agreement_report(projections, dataset)
        agreement_note = None
    except NoOverlap as exc:
        report, agreement_note = None, str(exc)
    times = projections.execute(
        "SELECT median(seconds), avg(seconds), count(*) FROM task_times WHERE dataset = ?", [dataset]
    ).fetchone()
    tasks_answered = projections.execute(
        "SELECT count(DISTINCT task_hash) FROM answers WHERE dataset = ?", [dataset]
    ).fetchone()
    queue, queued = review_queue(projections, dataset, review_limit)
    totals = {key: sum(row[key] for row in per_day) for key in ("answers", "accept", "reject", "ignore")}
    return {
        "dataset": dataset,
        "total_tasks": total_tasks,
        "tasks_answered": tasks_answered[0] if tasks_answered else 0,
        "totals": totals,
        "sessions": sorted({row["session"] for row in per_day}),
        "progress": _progress(projections, dataset),
        "per_day": per_day,
        "agreement": _heatmap(report),
        "agreement_note": agreement_note,
        "task_seconds": {"median": times[0], "mean": times[1], "n": times[2]} if times else None,
        "disagreements": msgspec.to_builtins(queue),
        "disagreement_count": queued,
    }


async def dashboard(
    nc: Client, dataset: str, *, total_tasks: int = 0, snapshot_dir: str | None = None
) -> dict[str, Any]:
    """`dashboard_data` over fresh projections of `dataset` (DuckDB runs off the event loop)."""
    projections = await open_projections(nc, dataset=dataset, snapshot_dir=snapshot_dir, materialize=True)
    try:
        return await asyncio.to_thread(dashboard_data, projections, dataset, total_tasks=total_tasks)
    finally:
        projections.close()
