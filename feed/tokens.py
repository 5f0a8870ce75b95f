"""Stateless task tokens: which worker handed out a task does not matter.

A token is `base64url(payload).base64url(hmac_sha256(secret, payload))`. The payload
holds the JetStream reply subject of the delivered task message *verbatim* (its format
is the server's business and changes between versions; Quorum never parses it), the
dataset, session, task hash, times and a digest of the task's content as served
(`feed/validate.py:content_digest`), so an answer can't change what it was given. Any
worker with the shared secret can verify a token and ack the task by publishing to that
reply subject.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from feed.errors import Forbidden, TokenExpired

__all__ = ["TaskToken", "sign_token", "verify_token"]


class TaskToken(msgspec.Struct, array_like=True, frozen=True):
    """What a token proves: this session may answer this task, as served, until `expires_ms`."""

    reply: str
    dataset: str
    session: str
    task_hash: int
    issued_ms: int
    expires_ms: int
    digest: bytes | None = None
    """xxh3_128 of the served task's content. None in tokens signed before digests
    existed: their answers are checked against the task read back from TASKS."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TaskToken)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret: bytes, token: TaskToken) -> str:
    """The signed, URL-safe string form of `token`."""
    payload = _encoder.encode(token)
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify_token(secret: bytes, text: object, *, now_ms: int | None = None) -> TaskToken:
    """The token inside `text`, or `Forbidden` if it is missing, forged or expired."""
    if not isinstance(text, str) or not text:
        raise Forbidden("answer has no task token (_token); answer tasks you were given")
    try:
        payload_b64, mac_b64 = text.split(".", 1)
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except ValueError:
        raise Forbidden("task token is malformed") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise Forbidden("task token signature does not match; the token was altered or forged")
    token = _decoder.decode(payload)
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if token.expires_ms < now:
        raise TokenExpired(
            "task token expired; reload the page to get fresh tasks "
            "(QUORUM_TOKEN_TTL sets how long a token lasts)"
        )
    return token
