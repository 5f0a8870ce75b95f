"""The `quorum` command: recipes, db-out, stats. Each command lives in its own module
and is a thin wrapper around a plain function."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from ledger.errors import QuorumError
from quorum.cli import options

__all__ = ["app", "main", "run_cli"]

err = Console(stderr=True)


class QuorumGroup(TyperGroup):
    """Names unknown commands with a suggestion instead of click's bare usage error."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise QuorumError(
                f"unknown recipe or command {name!r}.{hint} Run '{ctx.info_name} --help' to list them."
            )
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=QuorumGroup,
    help="Quorum: annotation for teams. Run a recipe, annotate in the browser, export with db-out.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _recipe_files(file: options.RecipeFiles = None) -> None:
    """`quorum -F recipe.py …`: the files were loaded before parsing (`_load_recipes`)."""


def _register() -> None:
    from quorum.cli import agreement, db_out, drop, progress, recipes_cmd, sql, stats, users

    for module in (recipes_cmd, db_out, drop, stats, progress, users, sql, agreement):
        module.register(app)


def _load_recipes(args: list[str] | None) -> None:
    """The built-in recipes and those of the `-F` files on the command line, before it is
    parsed: a file's recipe is a command of its own."""
    from quorum.cli.recipes_cmd import register_recipes, replaced_notices
    from recipes.catalog import load
    from recipes.files import recipe_file_args

    load(recipe_file_args(sys.argv[1:] if args is None else args))
    register_recipes(app)
    for notice in replaced_notices():
        err.print(f"[yellow]ℹ[/] {notice}", highlight=False)


_show_warning = warnings.showwarning


def _one_line_warning(message: Any, category: type[Warning], *rest: Any, **more: Any) -> None:
    """Quorum's own warnings (an unknown component or config key) as one line, no source."""
    if category.__module__.split(".")[0] in ("recipes", "quorum", "feed", "ledger", "projections"):
        err.print(f"[yellow]⚠[/] {message}", highlight=False, soft_wrap=True)
    else:
        _show_warning(message, category, *rest, **more)


def run_cli(application: typer.Typer, args: list[str] | None = None, before: Any = None) -> None:
    """Run a Typer app, turning `QuorumError` into a one-line message and its exit code
    (1; 2 for a usage error such as a bad recipe file). `before(args)` runs first, inside."""
    warnings.showwarning = _one_line_warning
    try:
        if before is not None:
            before(args)
        application(args=args, standalone_mode=True)
    except QuorumError as exc:
        err.print(f"[bold red]✘[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def main(args: list[str] | None = None) -> None:
    """Entry point of the `quorum` console script."""
    _register()
    run_cli(app, args, before=_load_recipes)
