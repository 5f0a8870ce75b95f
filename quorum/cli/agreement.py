"""`quorum agreement`: how far a dataset's annotators agree, and where they don't."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.names import validate_dataset_name
from ledger.natsd import nats_server
from quorum.cli.options import DataDir
from recipes.settings import load_settings

if TYPE_CHECKING:
    from projections.reports import AgreementReport, Disagreement, LabelAgreement

__all__ = ["AgreementResult", "agreement", "compute_agreement", "register"]


class AgreementResult(msgspec.Struct, omit_defaults=True):
    """What the command prints: the report, and the review queue when asked for."""

    report: AgreementReport
    disagreements: list[Disagreement] | None = None


def compute_agreement(
    url: str,
    dataset: str,
    *,
    review: bool = False,
    limit: int | None = None,
    snapshot_dir: str | None = None,
) -> AgreementResult:
    """Agreement figures of `dataset` (and its disagreements with `review`)."""
    from projections.duck import load_projections  # DuckDB and Arrow load for this command only
    from projections.reports import agreement_report, disagreements

    loading = load_projections(url, dataset=dataset, materialize=True, snapshot_dir=snapshot_dir)
    with asyncio.run(loading) as projections:
        report = agreement_report(projections, dataset)
        queue = disagreements(projections, dataset, limit) if review else None
    return AgreementResult(report, queue)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _label_tables(console: Console, title: str, figures: LabelAgreement, task: str) -> None:
    overall = figures.overall
    if task == "spans":
        console.print(
            f"[bold]{escape(title)}[/]: span F1 exact {_fmt(overall['f1_exact'])} · token overlap "
            f"{_fmt(overall['f1_token'])} · {overall['n_items']:,} items annotated by two or more sessions"
        )
        table = Table("session a", "session b", "P exact", "R exact", "F1 exact", "F1 token", "items")
        for pair in figures.pairwise:
            exact, token = pair.exact or {}, pair.token or {}
            table.add_row(
                pair.session_a,
                pair.session_b,
                _fmt(exact.get("precision")),
                _fmt(exact.get("recall")),
                _fmt(exact.get("f1")),
                _fmt(token.get("f1")),
                f"{pair.n_items:,}",
            )
    else:
        note = f" [dim]({escape(overall['note'])})[/]" if overall.get("note") else ""
        console.print(
            f"[bold]{escape(title)}[/]: Fleiss' kappa {_fmt(overall['fleiss_kappa'])} · Krippendorff's "
            f"alpha {_fmt(overall['krippendorff_alpha'])} · observed agreement "
            f"{_fmt(overall['observed_agreement'])} · {overall['n_items']:,} items, "
            f"{overall['n_sessions']} sessions{note}"
        )
        table = Table("session a", "session b", "Cohen's kappa", "observed", "items")
        for pair in figures.pairwise:
            table.add_row(
                pair.session_a,
                pair.session_b,
                _fmt(pair.kappa),
                _fmt(pair.observed_agreement),
                f"{pair.n_items:,}",
            )
    console.print(table)


def _decision(item: dict[str, Any]) -> str:
    parts = [item.get("answer", "?")]
    if item.get("accept") is not None:
        parts.append(",".join(item["accept"]) or "(none)")
    if item.get("spans") is not None:
        parts.append(" ".join(f"{s.get('label')}[{s.get('start')}:{s.get('end')}]" for s in item["spans"]))
    return " ".join(parts)


def _print(result: AgreementResult, console: Console) -> None:
    from projections.reports import LabelAgreement

    report = result.report
    _label_tables(
        console, f"{report.dataset} (overall)", LabelAgreement(report.pairwise, report.overall), report.task
    )
    for label, figures in sorted(report.labels.items()):
        _label_tables(console, f"{report.dataset} · {label}", figures, report.task)
    if result.disagreements is None:
        return
    table = Table("task", "text", "decisions", title=f"Disagreements ({len(result.disagreements):,})")
    for item in result.disagreements:
        text = (item.text or "")[:80]
        decided = "\n".join(f"{d['session']}: {_decision(d)}" for d in item.decisions)
        table.add_row(str(item.task_hash), escape(text), escape(decided))
    console.print(table)


def agreement(
    dataset: Annotated[str, typer.Argument(help="Dataset to measure")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table (for people) or json (for scripts)")
    ] = "table",
    show_disagreements: Annotated[
        bool,
        typer.Option("--disagreements", help="Also list the tasks sessions disagree on (the review queue)"),
    ] = False,
    limit: Annotated[int | None, typer.Option(help="List at most this many disagreements")] = None,
    data_dir: DataDir = None,
) -> None:
    """Inter-annotator agreement: pairwise Cohen's kappa, Fleiss' kappa and Krippendorff's
    alpha for label decisions; pairwise span precision/recall/F1 for NER. Per label and overall.

    Example: quorum agreement news --format json --disagreements
    """
    validate_dataset_name(dataset)
    if fmt not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="--format")
    settings = load_settings(data_dir=data_dir)
    with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
        result = compute_agreement(
            url, dataset, review=show_disagreements, limit=limit, snapshot_dir=settings.snapshot_location
        )
    if fmt == "json":
        payload: dict[str, Any] = msgspec.to_builtins(result.report)
        if result.disagreements is not None:
            payload["disagreements"] = msgspec.to_builtins(result.disagreements)
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(payload)) + b"\n")
        return
    _print(result, Console())


def register(app: typer.Typer) -> None:
    app.command("agreement")(agreement)
