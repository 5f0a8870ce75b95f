"""`quorum ner.manual`, `quorum textcat.manual` and `quorum serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from quorum.cli.options import (
    AckWait,
    AnnotationsPerTask,
    BatchSize,
    DataDir,
    Exclude,
    ExcludeBy,
    FeedOverlap,
    Host,
    Port,
    Workers,
)
from quorum.serve import serve_components
from quorum.settings import Settings, load_settings
from recipes.registry import Components, get_recipe

__all__ = ["register"]

console = Console(stderr=True)


def _settings(**options: object) -> Settings:
    """Settings from the environment with the command's options on top, checked first."""
    return load_settings(None, **options)


def _serve(components: Components | None, dataset: str, settings: Settings) -> None:
    def loaded(summary: object) -> None:
        console.print(f"[green]✔[/] {dataset}: {summary}")

    serve_components(components, settings, dataset, on_loaded=loaded)


def ner_manual(
    dataset: Annotated[str, typer.Argument(help="Dataset to save answers to, e.g. news")],
    spacy_model: Annotated[
        str, typer.Argument(help="blank:en for tokenisation only, or an installed pipeline")
    ],
    source: Annotated[Path, typer.Argument(help="Examples to annotate: .jsonl, .json, .csv or .txt")],
    label: Annotated[
        str, typer.Option("--label", "-l", help="Comma-separated labels, or a .txt file of labels")
    ],
    loader: Annotated[
        str | None, typer.Option(help="Loader to use instead of the file suffix: jsonl, json, csv, txt")
    ] = None,
    feed_overlap: FeedOverlap = None,
    annotations_per_task: AnnotationsPerTask = None,
    exclude: Exclude = None,
    exclude_by: ExcludeBy = None,
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    ack_wait: AckWait = None,
) -> None:
    """Highlight entity spans by hand, on text tokenised by spaCy.

    Example: quorum ner.manual news blank:en examples/news.jsonl --label PERSON,ORG,PRODUCT,LOCATION
    then open http://localhost:8080/?session=alex  (add --annotations-per-task 2 for two annotators per text)
    """
    settings = _settings(
        feed_overlap=feed_overlap,
        annotations_per_task=annotations_per_task,
        exclude=exclude,
        exclude_by=exclude_by,
        data_dir=data_dir,
        host=host,
        port=port,
        workers=workers,
        batch_size=batch_size,
        ack_wait=ack_wait,
    )
    components = get_recipe("ner.manual")(dataset, spacy_model, source, label, loader=loader)
    _serve(components, dataset, settings)


def textcat_manual(
    dataset: Annotated[str, typer.Argument(help="Dataset to save answers to, e.g. topics")],
    source: Annotated[Path, typer.Argument(help="Examples to annotate: .jsonl, .json, .csv or .txt")],
    label: Annotated[
        str, typer.Option("--label", "-l", help="Comma-separated labels, or a .txt file of labels")
    ],
    exclusive: Annotated[
        bool, typer.Option("--exclusive", help="Labels are mutually exclusive (single choice)")
    ] = False,
    loader: Annotated[str | None, typer.Option(help="Loader to use instead of the file suffix")] = None,
    feed_overlap: FeedOverlap = None,
    annotations_per_task: AnnotationsPerTask = None,
    exclude: Exclude = None,
    exclude_by: ExcludeBy = None,
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    ack_wait: AckWait = None,
) -> None:
    """Classify whole texts: one label gives accept/reject, several give a choice.

    Example: quorum textcat.manual topics examples/news.jsonl --label Tech,Politics --exclusive --feed-overlap
    """
    settings = _settings(
        feed_overlap=feed_overlap,
        annotations_per_task=annotations_per_task,
        exclude=exclude,
        exclude_by=exclude_by,
        data_dir=data_dir,
        host=host,
        port=port,
        workers=workers,
        batch_size=batch_size,
        ack_wait=ack_wait,
    )
    components = get_recipe("textcat.manual")(dataset, source, label, exclusive=exclusive, loader=loader)
    _serve(components, dataset, settings)


def serve(
    dataset: Annotated[str, typer.Argument(help="A dataset a recipe has already set up")],
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
) -> None:
    """Serve an existing dataset again, without loading a source; routing stays as configured.

    Example: quorum serve news --workers 2 --port 8081
    """
    settings = _settings(data_dir=data_dir, host=host, port=port, workers=workers, batch_size=batch_size)
    _serve(None, dataset, settings)


def register(app: typer.Typer) -> None:
    app.command("ner.manual")(ner_manual)
    app.command("textcat.manual")(textcat_manual)
    app.command("serve")(serve)
