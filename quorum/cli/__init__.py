"""The `quorum` command: recipes, db-out, stats. Each command lives in its own module
and is a thin wrapper around a plain function."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from ledger.errors import QuorumError

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


def _register() -> None:
    from quorum.cli import agreement, db_out, drop, progress, recipes_cmd, sql, stats, users

    for module in (recipes_cmd, db_out, drop, stats, progress, users, sql, agreement):
        module.register(app)


def run_cli(application: typer.Typer, args: list[str] | None = None) -> None:
    """Run a Typer app, turning `QuorumError` into a one-line message and exit code 1."""
    try:
        application(args=args, standalone_mode=True)
    except QuorumError as exc:
        err.print(f"[bold red]✘[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def main(args: list[str] | None = None) -> None:
    """Entry point of the `quorum` console script."""
    _register()
    run_cli(app, args)
