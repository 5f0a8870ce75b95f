"""The feed's errors. `feed/app.py` maps each to one HTTP status and one JSON shape."""

from __future__ import annotations

from ledger.errors import QuorumError

__all__ = [
    "BadRequest",
    "FeedError",
    "Forbidden",
    "InvalidAnswer",
    "NotReady",
    "SurplusAnswer",
    "TokenExpired",
]


class FeedError(QuorumError):
    """An error a feed request can end with; `status` is its HTTP status code."""

    status = 500
    code = "internal_error"
    task_hash: str | None = None
    """The task of the answer that failed a `give_answers` batch, when one did."""

    def for_task(self, task_hash: object) -> FeedError:
        """This error, naming the task whose answer caused it (as the API writes hashes)."""
        if self.task_hash is None and task_hash is not None:
            self.task_hash = str(task_hash)
        return self


class BadRequest(FeedError):
    """The request is malformed (not JSON, missing session…)."""

    status = 400
    code = "bad_request"


class Forbidden(FeedError):
    """A missing, forged or expired task token, or a session not allowed to annotate."""

    status = 403
    code = "forbidden"


class TokenExpired(Forbidden):
    """A genuine task token past its expiry: the client should fetch fresh questions."""

    code = "token_expired"


class InvalidAnswer(FeedError):
    """Well-formed JSON whose content is wrong, e.g. an unknown `answer` value."""

    status = 422
    code = "invalid_answer"


class NotReady(FeedError):
    """NATS is unreachable or the worker has no dataset to serve."""

    status = 503
    code = "not_ready"


class SurplusAnswer(FeedError):
    """The task already has as many sessions' answers as its routing allows."""

    status = 409
    code = "surplus_answer"


class RecipeRejected(InvalidAnswer):
    """The recipe's `validate_answer` refused the answer; the message is the recipe's."""

    code = "recipe_rejected"


class RecipeFailed(FeedError):
    """The recipe's `before_db` returned what can't be stored; nothing was."""

    code = "recipe_failed"
