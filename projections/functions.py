"""The agreement math as DuckDB functions (`quorum_cohen_kappa` …), for the views.

A thin adapter: each function turns DuckDB's lists of structs into the arguments of a
pure function in `projections.agreement` and its result back into a struct. The
views aggregate first, so these run once per pair or per label, never per answer.
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb

from projections.agreement import (
    Agreement,
    CategoryStats,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    span_score,
)

__all__ = ["FUNCTIONS", "register_functions", "unregister_functions"]

_FIGURE = "STRUCT(value DOUBLE, n_items BIGINT, observed DOUBLE, expected DOUBLE, note VARCHAR)"
_CELLS = "STRUCT(a VARCHAR, b VARCHAR, n BIGINT)[]"
_STATS = "STRUCT(category VARCHAR, total DOUBLE, within DOUBLE, pairs DOUBLE)[]"
_SPAN = "STRUCT(precision DOUBLE, recall DOUBLE, f1 DOUBLE, note VARCHAR)"


def _figure(result: Agreement) -> dict[str, Any]:
    return result.as_dict()


def _cohen(cells: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[tuple[Any, Any], int] = {}
    for cell in cells:
        key = (cell["a"], cell["b"])
        table[key] = table.get(key, 0) + int(cell["n"])
    return _figure(cohen_kappa(table))


def _stats(cells: list[dict[str, Any]]) -> list[CategoryStats]:
    return [CategoryStats(c["category"], c["total"], c["within"], c["pairs"]) for c in cells]


def _fleiss(cells: list[dict[str, Any]], n_items: int) -> dict[str, Any]:
    return _figure(fleiss_kappa(_stats(cells), n_items))


def _alpha(cells: list[dict[str, Any]], n_items: int) -> dict[str, Any]:
    return _figure(krippendorff_alpha(_stats(cells), n_items))


def _span(matched: int, n_a: int, n_b: int, n_items: int) -> dict[str, Any]:
    score = span_score(matched, n_a, n_b, n_items)
    return {"precision": score.precision, "recall": score.recall, "f1": score.f1, "note": score.note}


# name -> (function, parameter types, return type)
FUNCTIONS: dict[str, tuple[Any, list[str], str]] = {
    "quorum_cohen_kappa": (_cohen, [_CELLS], _FIGURE),
    "quorum_fleiss_kappa": (_fleiss, [_STATS, "BIGINT"], _FIGURE),
    "quorum_krippendorff_alpha": (_alpha, [_STATS, "BIGINT"], _FIGURE),
    "quorum_span_score": (_span, ["BIGINT", "BIGINT", "BIGINT", "BIGINT"], _SPAN),
}


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Make the `quorum_*` functions callable on `con`."""
    for name, (func, params, returns) in FUNCTIONS.items():
        con.create_function(
            name,
            func,
            [duckdb.sqltype(p) for p in params],
            duckdb.sqltype(returns),
            side_effects=False,
        )


def unregister_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Remove them again: a Python function left registered outlives the connection."""
    for name in FUNCTIONS:
        with contextlib.suppress(duckdb.Error):
            con.remove_function(name)
