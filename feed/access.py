"""Who may annotate as whom: the session allow-list, annotator credentials, the admin token.

Credentials live in a users file (`QUORUM_USERS_FILE`), one JSON object per line:
`{"user": "alex", "hash": "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"}`, made by
`quorum users add alex`. With a users file, every feed request must authenticate as a
user (HTTP basic auth, or `Authorization: Bearer <user>:<password>`), and a user may
annotate only as the session of the same name: alex's password never opens bob's queue.
Without one, any session may annotate — the easy default, meant for localhost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from feed.errors import FeedError, Forbidden
from ledger.errors import QuorumError

__all__ = ["Access", "Unauthorized", "hash_password", "load_users", "verify_password"]

_ITERATIONS = 200_000


class Unauthorized(FeedError):
    """No or wrong credentials (401, with a WWW-Authenticate challenge)."""

    status = 401
    code = "unauthorized"


def hash_password(password: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    """A PBKDF2-SHA256 hash string for the users file."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the `hash_password` string `encoded`."""
    try:
        algorithm, iterations, salt, expected = encoded.split("$")
    except ValueError:
        return False
    if algorithm != "pbkdf2_sha256":
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(digest.hex(), expected)


def load_users(path: Path) -> dict[str, str]:
    """user → password hash, from a users file; errors name the line."""
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QuorumError(
            f"cannot read users file {path}: {exc.strerror}; create it with 'quorum users add'"
        ) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            users[str(record["user"])] = str(record["hash"])
        except (ValueError, KeyError, TypeError):
            raise QuorumError(
                f"line {number} of {path.name} is not a user record; recreate it with 'quorum users add'"
            ) from None
    return users


@dataclass(frozen=True)
class Access:
    """The access rules of one worker."""

    allowed_sessions: frozenset[str] | None = None
    users: dict[str, str] | None = None
    admin_token: str | None = None

    def annotator(self, session: str, authorization: str | None) -> str | None:
        """The authenticated user allowed to act as `session` (None without credentials).

        Raises `Unauthorized` (401) for missing or wrong credentials and `Forbidden` (403)
        for a user acting as another session or a session not on the allow-list.
        """
        if self.allowed_sessions is not None and session not in self.allowed_sessions:
            raise Forbidden(
                f"session {session!r} is not allowed to annotate here; ask the project owner to add "
                f"it to QUORUM_ALLOWED_SESSIONS"
            )
        if self.users is None:
            return None
        user, password = _credentials(authorization)
        if user is None or user not in self.users or not verify_password(password, self.users[user]):
            raise Unauthorized("log in with your Quorum user name and password")
        if user != session:
            raise Forbidden(f"user {user!r} may not annotate or read as session {session!r}")
        return user

    def user_of(self, authorization: str | None) -> str | None:
        """The user name a request claims (unverified; `annotator` verifies it)."""
        return _credentials(authorization)[0] if self.users is not None else None

    def check_admin(self, authorization: str | None, client_is_local: bool) -> None:
        """Operator endpoints: the admin token, or a local client when none is set."""
        if self.admin_token is None:
            if client_is_local and self.users is None:
                return
            raise Forbidden("operator endpoints need QUORUM_ADMIN_TOKEN (send it as a Bearer token)")
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), self.admin_token):
            raise Unauthorized("send the admin token: Authorization: Bearer <QUORUM_ADMIN_TOKEN>")


def _credentials(authorization: str | None) -> tuple[str | None, str]:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return None, ""
    elif scheme.lower() == "bearer":
        decoded = value.strip()
    else:
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")
