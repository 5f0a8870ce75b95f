"""The feed worker: a Litestar app served by Granian, one process of many.

Any request may reach any worker. A worker keeps only its NATS connection, the
shared token secret and its settings; `kill -9` at any moment loses nothing, because
an answer is acknowledged only after the ledger has it and a task only after that.

Every error leaves as `{"error": <code>, "message": <text>, "status": <int>}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter, QueryParameter
from litestar.response import File

from feed.access import Access, TooManyLogins, Unauthorized, load_users
from feed.errors import BadRequest, FeedError, NotReady
from feed.service import Feed, Progress, session_from
from feed.status import health_warnings, queue_status
from ledger.connection import connect
from ledger.errors import LedgerUnavailable, QuorumError, UnknownDataset
from ledger.names import NAME_JSON_PATTERN, NAME_PATTERN
from recipes.logs import configure_logging
from recipes.settings import Settings, load_settings
from web import WEB_DIR

__all__ = ["create_app"]

log = structlog.get_logger("quorum.feed")


# OpenAPI only (`schema_extra` adds to the schema, it validates nothing): the feed's own
# checks give the errors their messages. A session may come from the query, a header, the
# body or the credentials; OpenAPI can't say "one of them", so each is optional there.
_NAME_SCHEMA = {"pattern": NAME_JSON_PATTERN}
_ANSWER_SCHEMA = {
    "type": "object",
    "description": "A task as handed out, with the annotator's edits and an `answer`.",
    "required": ["answer", "_token"],
    "properties": {
        "answer": {"enum": ["accept", "reject", "ignore"]},
        "_token": {"type": "string", "description": "The task's `_token`, unchanged."},
        "_task_hash": {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
        "_input_hash": {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    },
}
SessionQuery = Annotated[
    str | None,
    QueryParameter(
        name="session",
        description="The annotator's session, e.g. alex (or news-alex)",
        schema_extra=_NAME_SCHEMA,
    ),
]
SessionHeader = Annotated[
    str | None,
    HeaderParameter(
        name="X-Quorum-Session", description="The session, when not in the query", schema_extra=_NAME_SCHEMA
    ),
]


class QuestionsRequest(msgspec.Struct):
    """Body of `POST /get_session_questions`. `reload`: the page lost its tasks; resend them."""

    session_id: Annotated[str | None, Parameter(schema_extra=_NAME_SCHEMA)] = None
    reload: bool = False


class QuestionsResponse(msgspec.Struct):
    """A batch of tasks; each carries `_token`, `_input_hash` and `_task_hash` as strings."""

    tasks: list[dict[str, Any]]
    total: int
    progress: float
    answered: int
    session_id: str


class AnswersRequest(msgspec.Struct):
    """Body of `POST /give_answers`: tasks as handed out, each with an `answer`."""

    answers: Annotated[list[Any], Parameter(schema_extra={"items": _ANSWER_SCHEMA})]
    session_id: Annotated[str | None, Parameter(schema_extra=_NAME_SCHEMA)] = None


class AnswersResponse(msgspec.Struct):
    """The dataset's progress after the answers were recorded."""

    progress: float
    total: int
    answered: int
    received: int


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """The one JSON error shape of the API."""

    error: str
    message: str
    status: int
    task_hash: str | None = None
    """`give_answers` only: the task whose answer refused the batch (nothing was recorded)."""


_ERROR_MEANINGS = {
    400: "Malformed request: the body is not JSON or nests too deeply, a field has the wrong type, "
    "the session is missing or invalid",
    401: "A users file is in use and the credentials are missing or wrong",
    403: "Not allowed: a missing, forged or someone else's task token (`forbidden`), an expired one "
    "(`token_expired`), a session not allowed here, a user acting as another session",
    404: "The dataset is not configured (`unknown_dataset`)",
    409: "`surplus_answer`: the task already has as many sessions' answers as its routing allows",
    413: "The body is over QUORUM_MAX_BODY_BYTES (`body_too_large`)",
    422: "An answer is not an object, has an unknown `answer`, or changes what its view can't",
    429: "Too many wrong passwords for this user lately (`too_many_requests`); retry after `Retry-After` s",
    503: "The worker is not connected to NATS or serves no dataset (`not_ready`)",
}


@dataclass
class _OptionalBody(Operation):
    """OpenAPI: this route's body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error responses a route declares in the OpenAPI schema: all of one shape."""
    return {
        status: ResponseSpec(ErrorBody, description=_ERROR_MEANINGS[status], generate_examples=False)
        for status in statuses
    }


def _feed(state: State) -> Feed:
    feed: Feed | None = state.get("feed")
    if feed is None:
        raise NotReady("the worker is not connected to NATS yet")
    return feed


def _dataset(feed: Feed) -> str:
    if not feed.settings.dataset:
        raise NotReady("this worker serves no dataset: start it through a recipe or set QUORUM_DATASET")
    return feed.settings.dataset


async def _session(
    dataset: str, given: tuple[str | None, ...], request: Request[Any, Any, Any]
) -> tuple[str, str | None]:
    """The request's session, and the authenticated annotator (checked against it).

    `given` holds the query's, the header's and the body's session: every one given must
    be valid and name the same session (an empty `?session=` is given, and refused).
    Without any, an API client logged in as alex is session alex.
    """
    access: Access = request.app.state["access"]
    authorization = request.headers.get("authorization")
    named = {session_from(dataset, raw) for raw in given if raw is not None}
    if len(named) > 1:
        raise BadRequest(
            f"the request names sessions {', '.join(sorted(named))}: name one session, the same in "
            f"?session=, X-Quorum-Session and session_id"
        )
    session = named.pop() if named else session_from(dataset, access.user_of(authorization))
    return session, await access.annotator(session, authorization)


@get(
    "/project", summary="The project config: dataset, view, labels, instructions", responses=_errors(404, 503)
)
async def project(state: State) -> dict[str, Any]:
    feed = _feed(state)
    info = await feed.dataset(_dataset(feed))
    return {
        "dataset": info.dataset,
        "recipe_name": info.recipe,
        "view_id": info.view_id,
        "batch_size": feed.settings.batch_size,
        "instant_submit": feed.settings.instant_submit,
        **info.config,
        **({"default_session": name} if (name := feed.hooks.default_session()) else {}),
    }


@post(
    "/get_session_questions",
    status_code=200,
    summary="Hand out the next batch of tasks",
    responses=_errors(400, 401, 403, 404, 413, 429, 503),
    operation_class=_OptionalBody,
)
async def get_session_questions(
    state: State,
    request: Request[Any, Any, Any],
    session: SessionQuery = None,
    session_header: SessionHeader = None,
    data: JSONBody[QuestionsRequest | None] = None,
) -> QuestionsResponse:
    feed = _feed(state)
    dataset = _dataset(feed)
    # Litestar converts leniently (`"reload": 0` would pass as false): the schema says boolean.
    if data is not None and not isinstance((await request.json()).get("reload", False), bool):
        raise BadRequest('"reload" must be true or false')
    given = (session, session_header, data.session_id if data else None)
    session, _ = await _session(dataset, given, request)
    tasks, progress = await feed.questions(dataset, session, reload=bool(data and data.reload))
    return QuestionsResponse(
        tasks=tasks,
        total=progress.total,
        progress=progress.fraction,
        answered=progress.answered,
        session_id=f"{dataset}-{session}",
    )


@post(
    "/give_answers",
    status_code=200,
    summary="Record answers (append to the ledger, then ack)",
    responses=_errors(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def give_answers(
    state: State,
    request: Request[Any, Any, Any],
    data: JSONBody[AnswersRequest],
    session: SessionQuery = None,
    session_header: SessionHeader = None,
) -> AnswersResponse:
    feed = _feed(state)
    dataset = _dataset(feed)
    session, annotator = await _session(dataset, (session, session_header, data.session_id), request)
    progress: Progress = await feed.answers(dataset, session, data.answers, annotator)
    return AnswersResponse(
        progress=progress.fraction,
        total=progress.total,
        answered=progress.answered,
        received=len(data.answers),
    )


@get(
    "/progress",
    summary="Queue status per session: queued, out, answered (operators)",
    responses=_errors(401, 403, 404, 503),
)
async def progress_view(state: State, request: Request[Any, Any, Any]) -> dict[str, Any]:
    feed = _feed(state)
    client = request.client.host if request.client else ""
    state["access"].check_admin(
        request.headers.get("authorization"), client in ("127.0.0.1", "::1", "localhost")
    )
    report = await queue_status(feed.nc, await feed.dataset(_dataset(feed)), feed.settings.snapshot_location)
    return msgspec.to_builtins(report)  # type: ignore[no-any-return]


@get("/dashboard", include_in_schema=False)
async def dashboard_page() -> Response[bytes]:
    return Response((WEB_DIR / "dashboard.html").read_bytes(), media_type="text/html; charset=utf-8")


@get(
    "/dashboard/data",
    summary="Dashboard figures: progress, answers per day, agreement, review queue",
    responses=_errors(400, 401, 403, 404, 503),
)
async def dashboard_data(
    state: State,
    request: Request[Any, Any, Any],
    dataset: Annotated[
        str | None,
        QueryParameter(description="Another dataset than the served one", schema_extra=_NAME_SCHEMA),
    ] = None,
) -> dict[str, Any]:
    from projections.reports import dashboard  # here: DuckDB and Arrow load only when needed

    feed = _feed(state)
    client = request.client.host if request.client else ""
    state["access"].check_admin(
        request.headers.get("authorization"), client in ("127.0.0.1", "::1", "localhost")
    )
    if dataset is not None and not NAME_PATTERN.fullmatch(dataset):
        raise BadRequest(f"invalid dataset name {dataset!r}: use letters, digits, '_' or '-'")
    info = await feed.dataset(dataset or _dataset(feed))
    return await dashboard(
        feed.nc, info.dataset, total_tasks=info.total, snapshot_dir=feed.settings.snapshot_location
    )


@get("/health", summary="Liveness: the process answers (and warns when snapshots are failing)")
async def health(state: State) -> dict[str, str]:
    # Always 200: a failing snapshot target never stops serving, it only makes reads longer.
    feed: Feed | None = state.get("feed")
    return {
        "status": "ok",
        **await health_warnings(
            feed.nc if feed else None,
            feed.settings.dataset if feed else None,
            snapshots=feed is None or feed.settings.snapshots,
        ),
    }


@get(
    "/ready",
    summary="Readiness: NATS and JetStream reachable",
    responses={
        503: ResponseSpec(
            dict[str, str],
            description='Not ready: `{"status": "unavailable", "message": …}`',
            generate_examples=False,
        )
    },
)
async def ready(state: State) -> Response[dict[str, str]]:
    feed = state.get("feed")
    if feed is None or not feed.nc.is_connected:
        return Response({"status": "unavailable", "message": "not connected to NATS"}, status_code=503)
    try:
        await feed.nc.jetstream().account_info()
    except Exception as exc:
        return Response({"status": "unavailable", "message": f"JetStream: {exc!r}"}, status_code=503)
    return Response({"status": "ok"})


@get("/", include_in_schema=False)
async def index() -> Response[bytes]:
    return Response((WEB_DIR / "index.html").read_bytes(), media_type="text/html; charset=utf-8")


# What /static serves: the app's own assets, never the package's Python files.
_ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}


@get("/static/{path:path}", include_in_schema=False)
async def static_asset(path: FromPath[str]) -> File:
    root = WEB_DIR.resolve()
    if "\x00" in path:  # a NUL byte makes resolve() raise: no file has one in its name
        raise NotFoundException(f"no asset {path!r}")
    target = (root / path.lstrip("/")).resolve()
    media_type = _ASSET_TYPES.get(target.suffix)
    if media_type is None or root not in target.parents or not target.is_file():
        raise NotFoundException(f"no asset {path}")
    return File(target, media_type=media_type, content_disposition_type="inline")


class _FeedRequest(Request[Any, Any, Any]):
    """Litestar's request, with a JSON body nested past the decoder's depth a 400, not a 500."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise BadRequest(
                "the JSON body is nested too deeply to read; send tasks as the API returns them"
            ) from None


def _error(status: int, code: str, message: str, task_hash: str | None = None) -> Response[ErrorBody]:
    return Response(
        ErrorBody(error=code, message=message, status=status, task_hash=task_hash), status_code=status
    )


# NATS is away (restarting, unreachable): the request may be retried as it was.
_NATS_AWAY = (
    nats.errors.OutboundBufferLimitError,  # a publish while disconnected: nothing is buffered
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,  # JetStream not up yet after a restart
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    LedgerUnavailable,
)


def _nats_away(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, says NATS can't be reached now."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, _NATS_AWAY):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(_nats_away(inner) for inner in exc.exceptions)
        following = exc.__cause__ if exc.__suppress_context__ else exc.__cause__ or exc.__context__
        exc, seen = following, seen + 1
    return False


def _not_ready(exc: Exception) -> Response[ErrorBody]:
    """503 with `Retry-After`: the web app's outbox sends the same answers again."""
    if isinstance(exc, NotReady):
        message = str(exc)
    else:
        log.warning("nats_unavailable", error=repr(exc))
        message = (
            "NATS is unavailable for a moment (restarting or unreachable); retry in a second. "
            "Sending the same answers again is safe: they are never counted twice"
        )
    response = _error(503, "not_ready", message)
    response.headers["Retry-After"] = "1"
    return response


def _handle_quorum_error(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, Unauthorized):
        response = _error(exc.status, exc.code, str(exc))
        response.headers["WWW-Authenticate"] = 'Basic realm="Quorum"'
        return response
    if isinstance(exc, NotReady) or (not isinstance(exc, FeedError) and _nats_away(exc)):
        return _not_ready(exc)
    if isinstance(exc, TooManyLogins):
        response = _error(exc.status, exc.code, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, FeedError):
        return _error(exc.status, exc.code, str(exc), exc.task_hash)
    if isinstance(exc, UnknownDataset):
        return _error(404, "unknown_dataset", str(exc))
    log.error("request_failed", error=str(exc))
    return _error(500, "internal_error", str(exc))


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _handle_http_error(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 400 and exc.extra:
        message = f"{message}: {exc.extra}"
    if exc.status_code == 413:
        message = "request body too large; send answers in smaller batches (QUORUM_MAX_BODY_BYTES)"
    response = _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message)
    # Keep the exception's headers: a 405 must say which methods are allowed (`Allow`).
    response.headers.update(exc.headers or {})
    return response


def _handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if _nats_away(exc):
        return _not_ready(exc)
    log.exception("unexpected_error", error=repr(exc))
    return _error(
        500, "internal_error", "the worker failed unexpectedly; the answers were not recorded, retry"
    )


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the feed app; Granian calls this in every worker process (`--factory`)."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    access = Access(
        allowed_sessions=settings.session_allow_list,
        users=load_users(settings.users_file) if settings.users_file else None,
        admin_token=settings.admin_token,
    )

    @asynccontextmanager
    async def nats_lifespan(app: Litestar) -> AsyncIterator[None]:
        if not settings.nats_url:
            raise QuorumError("feed workers need QUORUM_NATS_URL (the recipe sets it)")
        nc = await connect(settings.nats_url, name="quorum-feed", reconnect=True)
        app.state.feed = await Feed.start(nc, settings)
        log.info("worker_ready", dataset=settings.dataset, nats=settings.nats_url)
        try:
            yield
        finally:
            # Finish in-flight publishes, but never hold up a shutdown for long.
            try:
                await asyncio.wait_for(nc.drain(), timeout=3)
            except Exception:
                await nc.close()

    return Litestar(
        route_handlers=[
            index,
            project,
            get_session_questions,
            give_answers,
            progress_view,
            dashboard_page,
            dashboard_data,
            health,
            ready,
            static_asset,
        ],
        lifespan=[nats_lifespan],
        state=State({"access": access}),
        exception_handlers={
            QuorumError: _handle_quorum_error,
            HTTPException: _handle_http_error,
            Exception: _handle_unexpected,
        },
        openapi_config=OpenAPIConfig(title="Quorum feed API", version="1", path="/schema"),
        request_class=_FeedRequest,
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
