"""`quorum ner.manual`, `quorum textcat.manual` and `quorum serve`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from feed.access import check_users_file
from quorum.cli.options import (
    AckWait,
    AnnotationsPerTask,
    BatchSize,
    DataDir,
    Encoding,
    Exclude,
    ExcludeBy,
    FeedOverlap,
    Host,
    MaxTaskBytes,
    Port,
    Snapshots,
    UsersFile,
    Workers,
)
from quorum.ownership import check_unowned
from quorum.serve import serve_components
from quorum.settings import Settings, load_settings
from recipes.loaders import source_options
from recipes.registry import Components, get_recipe

__all__ = ["register"]

console = Console(stderr=True)


def _settings(**options: object) -> Settings:
    """Settings from the environment with the command's options on top, checked first.

    The users file too: a bad one must stop the command before anything is queued, not
    after, when the workers start.
    """
    settings = load_settings(None, **options)
    if settings.users_file:
        check_users_file(settings.users_file)
    if not settings.nats_url:  # a second Quorum on the data dir fails before reading its source
        check_unowned(settings.data_dir)
    return settings


def _reading(settings: Settings, encoding: str) -> AbstractContextManager[object]:
    """Sources read inside (the recipe's check and its stream, queued later) use these options."""
    return source_options(encoding=encoding, max_record_bytes=settings.max_task_bytes)


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
    encoding: Encoding = "utf-8",
    max_task_bytes: MaxTaskBytes = None,
    users_file: UsersFile = None,
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
    snapshots: Snapshots = None,
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
        max_task_bytes=max_task_bytes,
        users_file=users_file,
        snapshots=snapshots,
    )
    with _reading(settings, encoding):
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
    encoding: Encoding = "utf-8",
    max_task_bytes: MaxTaskBytes = None,
    users_file: UsersFile = None,
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
    snapshots: Snapshots = None,
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
        max_task_bytes=max_task_bytes,
        users_file=users_file,
        snapshots=snapshots,
    )
    with _reading(settings, encoding):
        components = get_recipe("textcat.manual")(dataset, source, label, exclusive=exclusive, loader=loader)
        _serve(components, dataset, settings)


def serve(
    dataset: Annotated[str, typer.Argument(help="A dataset a recipe has already set up")],
    data_dir: DataDir = None,
    host: Host = None,
    port: Port = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    users_file: UsersFile = None,
    snapshots: Snapshots = None,
) -> None:
    """Serve an existing dataset again, without loading a source; routing stays as configured.

    Example: quorum serve news --workers 2 --port 8081
    """
    settings = _settings(
        data_dir=data_dir,
        host=host,
        port=port,
        workers=workers,
        batch_size=batch_size,
        users_file=users_file,
        snapshots=snapshots,
    )
    _serve(None, dataset, settings)


def register(app: typer.Typer) -> None:
    app.command("ner.manual")(ner_manual)
    app.command("textcat.manual")(textcat_manual)
    app.command("serve")(serve)
