"""The feed's errors. `feed/app.py` maps each to one HTTP status and one JSON shape."""

from __future__ import annotations

from ledger.errors import QuorumError

__all__ = ["BadRequest", "FeedError", "Forbidden", "InvalidAnswer", "NotReady"]


class FeedError(QuorumError):
    """An error a feed request can end with; `status` is its HTTP status code."""

    status = 500
    code = "internal_error"


class BadRequest(FeedError):
    """The request is malformed (not JSON, missing session…)."""

    status = 400
    code = "bad_request"


class Forbidden(FeedError):
    """A missing, forged or expired task token, or a session not allowed to annotate."""

    status = 403
    code = "forbidden"


class InvalidAnswer(FeedError):
    """Well-formed JSON whose content is wrong, e.g. an unknown `answer` value."""

    status = 422
    code = "invalid_answer"


class NotReady(FeedError):
    """NATS is unreachable or the worker has no dataset to serve."""

    status = 503
    code = "not_ready"
