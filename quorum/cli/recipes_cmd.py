"""`quorum <recipe> …` for every registered recipe, and `quorum serve`.

Each recipe becomes a command built from its `@recipe` description (its own arguments,
in order) plus the serving options every recipe takes (`--host`, `--port`,
`--data-dir`, `--workers`, the routing flags…, and `-F` for recipe files). The command
calls the recipe function, checks what it returns, and serves it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer
from rich.console import Console

from feed.access import check_users_file
from feed.hooks import ENV as HOOKS_ENV
from ledger.ownership import check_unowned
from quorum.cli import options
from quorum.serve import serve_components
from recipes.catalog import RecipeCall
from recipes.components import Components, check_components
from recipes.config import merged_config, project_config, read_instructions
from recipes.loaders import source_options
from recipes.registry import REGISTRY, replaced
from recipes.settings import Settings, load_settings, with_recipe_config
from recipes.spec import Arg, RecipeSpec

__all__ = ["recipe_command", "register", "register_recipes", "replaced_notices"]

console = Console(stderr=True)

SERVING_OPTIONS: dict[str, Any] = {
    "data_dir": options.DataDir,
    "host": options.Host,
    "port": options.Port,
    "workers": options.Workers,
    "batch_size": options.BatchSize,
    "ack_wait": options.AckWait,
    "feed_overlap": options.FeedOverlap,
    "annotations_per_task": options.AnnotationsPerTask,
    "exclude": options.Exclude,
    "exclude_by": options.ExcludeBy,
    "users_file": options.UsersFile,
    "snapshots": options.Snapshots,
    "feed": options.Feed,
    "max_task_bytes": options.MaxTaskBytes,
    "encoding": options.Encoding,
}
"""The options every recipe command takes, from the shared Typer definitions."""


def _settings(**given: object) -> Settings:
    """Settings from the environment with the command's options on top, checked first.

    The users file too: a bad one must stop the command before anything is queued, not
    after, when the workers start.
    """
    settings = load_settings(None, **given)
    if settings.users_file:
        check_users_file(settings.users_file)
    if not settings.nats_url:  # a second Quorum on the data dir fails before reading its source
        check_unowned(settings.data_dir)
    return settings


def _reading(settings: Settings, encoding: str) -> AbstractContextManager[object]:
    """Sources read inside (the recipe's check and its stream, queued later) use these options."""
    return source_options(encoding=encoding, max_record_bytes=settings.max_task_bytes)


def _serve(
    components: Components | None, dataset: str, settings: Settings, worker_env: dict[str, str] | None = None
) -> None:
    def loaded(summary: str) -> None:
        console.print(f"[green]✔[/] {dataset}: {summary}")

    serve_components(components, settings, dataset, on_loaded=loaded, worker_env=worker_env)


class _Converter:
    """A recipe argument's converter for Typer: one that raises is a usage error (exit 2)."""

    def __init__(self, arg: Arg) -> None:
        self.arg = arg
        self.__name__ = getattr(arg.converter, "__name__", "value")

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.arg.converter is None:
            return value
        try:
            return self.arg.converter(value)
        except Exception as exc:
            raise typer.BadParameter(f"{value!r}: {exc}", param_hint=self.arg.name) from None


def _parameter(arg: Arg) -> inspect.Parameter:
    """A recipe argument as a parameter Typer reads (an `Annotated` Argument or Option)."""
    info: Any
    if arg.kind == "flag":
        decls = [arg.flag] + ([f"-{arg.shortcut}"] if arg.shortcut else [])
        annotation: Any = Annotated[bool, typer.Option(*decls, help=arg.help)]
        return inspect.Parameter(
            arg.name, inspect.Parameter.KEYWORD_ONLY, default=bool(arg.default), annotation=annotation
        )
    if arg.kind == "positional":
        info = typer.Argument(
            help=arg.help, parser=_Converter(arg), metavar=arg.name.upper(), show_default=False
        )
    else:
        decls = [arg.flag] + ([f"-{arg.shortcut}"] if arg.shortcut else [])
        info = typer.Option(*decls, help=arg.help, parser=_Converter(arg), metavar="TEXT")
    default = inspect.Parameter.empty if arg.required else arg.default
    return inspect.Parameter(
        arg.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[str, info]
    )


def _run(spec: RecipeSpec, values: dict[str, Any]) -> None:
    serving = {name: values.pop(name) for name in list(values) if name in SERVING_OPTIONS}
    files = values.pop("file", None) or []  # loaded before the command line was parsed
    encoding = serving.pop("encoding", None) or "utf-8"
    settings = _settings(**serving)
    with _reading(settings, encoding):
        components = check_components(spec.name, spec.func(**values))
        components.config = read_instructions(merged_config(spec.name, components.config, project_config()))
        settings = with_recipe_config(settings, components.config, given=serving)
        # The workers run validate_answer and before_db: they make the same recipe call.
        hooks = components.validate_answer or components.before_db or components.get_session_id
        call = {HOOKS_ENV: RecipeCall(spec.name, list(files), values).encode()} if hooks else None
        _serve(components, components.dataset, settings, call)


def recipe_command(spec: RecipeSpec) -> Callable[..., None]:
    """The `quorum <recipe>` command of `spec`, as a function Typer can register: the
    recipe's own arguments, then the serving options (a recipe argument named like one,
    such as Prodigy's `--exclude`, is the recipe's), then `-F`."""
    own = {arg.name for arg in spec.args}
    params = [_parameter(arg) for arg in spec.args]
    for name, annotated in SERVING_OPTIONS.items():
        if name not in own:
            default = "utf-8" if name == "encoding" else None
            params.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotated)
            )
    params.append(
        inspect.Parameter(
            "file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=options.RecipeFiles
        )
    )

    def command(**values: Any) -> None:
        _run(spec, values)

    origin = "" if spec.origin == "built-in" else f"\n\n(From {spec.origin}.)"
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = (spec.doc or spec.name) + origin
    command.__name__ = spec.name.replace(".", "_")
    return command


def replaced_notices() -> list[str]:
    """One line for each built-in a `-F` file replaced."""
    return [
        f"recipe {old.name!r} from {REGISTRY[old.name].origin} replaces the built-in one" for old in replaced
    ]


def serve(
    dataset: Annotated[str, typer.Argument(help="A dataset a recipe has already set up")],
    data_dir: options.DataDir = None,
    host: options.Host = None,
    port: options.Port = None,
    workers: options.Workers = None,
    batch_size: options.BatchSize = None,
    users_file: options.UsersFile = None,
    snapshots: options.Snapshots = None,
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
    app.command("serve")(serve)


def register_recipes(app: typer.Typer) -> None:
    """A command for every registered recipe (load the `-F` files first)."""
    for name, spec in sorted(REGISTRY.items()):
        app.command(name, short_help=spec.summary)(recipe_command(spec))
