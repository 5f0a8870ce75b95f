"""`quorum users add`: create annotator credentials for `QUORUM_USERS_FILE`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feed.access import hash_password, load_users
from ledger.names import validate_session_name

__all__ = ["add_user", "register"]

users_app = typer.Typer(help="Manage annotator credentials (the users file).", no_args_is_help=True)


def add_user(path: Path, user: str, password: str) -> None:
    """Add or replace `user` in the users file at `path` (a hashed password, never the password)."""
    validate_session_name(user)
    if len(password) < 8:
        raise typer.BadParameter("use at least 8 characters", param_hint="password")
    users = load_users(path) if path.exists() else {}
    users[user] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_text("".join(json.dumps({"user": u, "hash": h}) + "\n" for u, h in sorted(users.items())))
    temp.chmod(0o600)
    temp.replace(path)


@users_app.command("add")
def add(
    user: Annotated[str, typer.Argument(help="User name; the user annotates as the session of this name")],
    users_file: Annotated[
        Path, typer.Option("--users-file", envvar="QUORUM_USERS_FILE", help="Users file to update")
    ] = Path("users.jsonl"),
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="Password (prompted when omitted)"
        ),
    ] = "",
) -> None:
    """Add an annotator. Start the server with QUORUM_USERS_FILE pointing at the file.

    Example: quorum users add alex --users-file team.jsonl
    """
    add_user(users_file, user, password)
    typer.echo(f"✔ {user} saved in {users_file}; serve with QUORUM_USERS_FILE={users_file}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
