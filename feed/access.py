"""Who may annotate as whom: the session allow-list, annotator credentials, the admin token.

Credentials live in a users file (`QUORUM_USERS_FILE`), one JSON object per line:
`{"user": "alex", "hash": "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"}`, made by
`quorum users add alex`. With a users file, every feed request must authenticate as a
user (HTTP basic auth, or `Authorization: Bearer <user>:<password>`), and a user may
annotate only as the session of the same name: alex's password never opens bob's queue.
Without one, any session may annotate — the easy default, meant for localhost.

A password check is PBKDF2 with 200k rounds (~0.1 s of CPU), so it never runs on the
event loop: it runs on a one-thread pool (`_HASHING_THREADS`), a verified header is
remembered for `CACHE_SECONDS` under a keyed hash of the header (never the password), and
a user with `MAX_FAILURES` wrong passwords within `FAILURE_WINDOW` seconds gets 429 with
`Retry-After` until the oldest of them ages out. The cache and the counts are a worker's
own and die with it: they only make checks cheaper and guessing slower, they decide
nothing another worker needs to know (with N workers a guesser gets N× the attempts).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from feed.errors import FeedError, Forbidden
from ledger.errors import QuorumError

__all__ = [
    "CACHE_SECONDS",
    "FAILURE_WINDOW",
    "MAX_FAILURES",
    "Access",
    "LoginGuard",
    "TooManyLogins",
    "Unauthorized",
    "check_users_file",
    "hash_password",
    "load_users",
    "verify_password",
]

_ITERATIONS = 200_000
CACHE_SECONDS = 60.0
MAX_FAILURES = 10
FAILURE_WINDOW = 60.0
_CACHE_LIMIT = 10_000
# hashlib releases the GIL while it hashes, so the loop runs on; one thread per worker keeps
# a burst of logins to one core (~7 checks/s), the rest of the machine keeps serving. More
# workers (QUORUM_WORKERS) check more passwords at once.
_HASHING_THREADS = 1


class Unauthorized(FeedError):
    """No or wrong credentials (401, with a WWW-Authenticate challenge)."""

    status = 401
    code = "unauthorized"


class TooManyLogins(FeedError):
    """Too many wrong passwords for one user lately (429, with Retry-After)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def hash_password(password: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    """A PBKDF2-SHA256 hash string for the users file."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def _parse_hash(encoded: str) -> tuple[int, bytes, str] | None:
    """(iterations, salt, expected hex digest), or None if `encoded` is not a hash string."""
    try:
        algorithm, iterations, salt, expected = encoded.split("$")
        rounds, salt_bytes = int(iterations), bytes.fromhex(salt)
        bytes.fromhex(expected)
    except ValueError:
        return None
    if algorithm != "pbkdf2_sha256" or rounds < 1:
        return None
    return rounds, salt_bytes, expected


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the `hash_password` string `encoded`."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    rounds, salt, expected = parsed
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    return hmac.compare_digest(digest.hex(), expected)


def load_users(path: Path) -> dict[str, str]:
    """user → password hash, from a users file; errors name the line and the fix."""
    users: dict[str, str] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise QuorumError(
            f"cannot read users file {path}: {exc.strerror}; create it with 'quorum users add'"
        ) from None
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise QuorumError(
                f"line {number} of users file {path.name} is not valid utf-8; recreate the user "
                f"with 'quorum users add'"
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            user, encoded = str(record["user"]), str(record["hash"])
        except (ValueError, KeyError, TypeError):
            raise QuorumError(
                f"line {number} of {path.name} is not a user record; recreate it with 'quorum users add'"
            ) from None
        if _parse_hash(encoded) is None:
            raise QuorumError(
                f"line {number} of {path.name}: the hash of user {user!r} is not a pbkdf2_sha256 "
                f"hash; set the password again with 'quorum users add {user}'"
            )
        users[user] = encoded
    return users


def check_users_file(path: Path) -> int:
    """Check a users file a server is about to use; its number of users.

    Run before anything is queued: a file the workers can't read, or one that lets nobody
    in, stops `quorum <recipe>` at once instead of after the load.
    """
    users = load_users(path)
    if not users:
        raise QuorumError(f"users file {path} has no users: add one with 'quorum users add NAME'")
    return len(users)


@dataclass
class LoginGuard:
    """A worker's password checks: off the loop, cached briefly, failures rate-limited."""

    cache_seconds: float = CACHE_SECONDS
    max_failures: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    _key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _verified: dict[bytes, tuple[str, float]] = field(default_factory=dict, repr=False)
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _checking: dict[bytes, asyncio.Future[bool]] = field(default_factory=dict, repr=False)
    _running: Counter[str] = field(default_factory=Counter, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def _digest(self, authorization: str) -> bytes:
        # Keyed, so the cache holds nothing that tests a password guess without the key.
        return hashlib.blake2b(authorization.encode(), key=self._key, digest_size=32).digest()

    async def check(self, user: str, password: str, encoded: str, authorization: str) -> bool:
        """True if the password is right; raises `TooManyLogins` while `user` is locked out."""
        digest = self._digest(authorization)
        hit = self._verified.get(digest)
        if hit is not None and hit[0] == user and hit[1] > time.monotonic():
            return True
        running = self._checking.get(digest)
        if running is None:  # the same header checked concurrently shares one check
            self._refuse_if_locked(user)
            running = asyncio.ensure_future(self._verify(password, encoded))
            self._checking[digest] = running
            self._running[user] += 1

            def done(check: asyncio.Future[bool]) -> None:
                # Once per check, however many requests waited on it.
                self._checking.pop(digest, None)
                self._running[user] -= 1
                if not self._running[user]:
                    del self._running[user]
                if not check.cancelled() and check.exception() is None:
                    self._record(digest, user, check.result())

            running.add_done_callback(done)
        return await asyncio.shield(running)

    def _record(self, digest: bytes, user: str, ok: bool) -> None:
        now = time.monotonic()
        if not ok:
            self._failures.setdefault(user, deque()).append(now)
            return
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
        self._verified[digest] = (user, now + self.cache_seconds)

    async def _verify(self, password: str, encoded: str) -> bool:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_HASHING_THREADS, thread_name_prefix="quorum-pbkdf2")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, verify_password, password, encoded)

    def _refuse_if_locked(self, user: str) -> None:
        now = time.monotonic()
        failures = self._failures.get(user, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(user, None)
        # Checks still running count as failures to come: a burst of guesses sent at once
        # can't all get past the limit before the first of them has failed.
        if len(failures) + self._running[user] < self.max_failures:
            return
        retry = max(1, math.ceil(failures[0] + self.window - now)) if failures else 1
        raise TooManyLogins(
            f"too many wrong passwords for user {user!r}; wait {retry} s and log in again "
            f"(at most {self.max_failures} tries per {self.window:.0f} s)",
            retry_after=retry,
        )


@dataclass(frozen=True)
class Access:
    """The access rules of one worker."""

    allowed_sessions: frozenset[str] | None = None
    users: dict[str, str] | None = None
    admin_token: str | None = None
    guard: LoginGuard = field(default_factory=LoginGuard, compare=False)

    async def annotator(self, session: str, authorization: str | None) -> str | None:
        """The authenticated user allowed to act as `session` (None without credentials).

        Raises `Unauthorized` (401) for missing or wrong credentials, `TooManyLogins` (429)
        after too many wrong passwords, and `Forbidden` (403) for a user acting as another
        session or a session not on the allow-list.
        """
        if self.allowed_sessions is not None and session not in self.allowed_sessions:
            raise Forbidden(
                f"session {session!r} is not allowed to annotate here; ask the project owner to add "
                f"it to QUORUM_ALLOWED_SESSIONS"
            )
        if self.users is None:
            return None
        user, password = _credentials(authorization)
        if user is None or user not in self.users or authorization is None:
            raise Unauthorized("log in with your Quorum user name and password")
        if not await self.guard.check(user, password, self.users[user], authorization):
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
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), self.admin_token.encode()
        ):
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
