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
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import File

from feed.access import Access, Unauthorized, load_users
from feed.errors import BadRequest, FeedError, NotReady
from feed.service import Feed, Progress, session_from
from feed.status import queue_status
from ledger.connection import connect
from ledger.errors import QuorumError, UnknownDataset
from ledger.names import NAME_PATTERN
from projections.reports import dashboard
from quorum.logging import configure_logging
from quorum.settings import Settings, load_settings
from web import WEB_DIR

__all__ = ["create_app"]

log = structlog.get_logger("quorum.feed")


class QuestionsRequest(msgspec.Struct):
    """Body of `POST /get_session_questions`. `reload`: the page lost its tasks; resend them."""

    session_id: str | None = None
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

    answers: list[Any]
    session_id: str | None = None


class AnswersResponse(msgspec.Struct):
    """The dataset's progress after the answers were recorded."""

    progress: float
    total: int
    answered: int
    received: int


class ErrorBody(msgspec.Struct):
    """The one JSON error shape of the API."""

    error: str
    message: str
    status: int


def _feed(state: State) -> Feed:
    feed: Feed | None = state.get("feed")
    if feed is None:
        raise NotReady("the worker is not connected to NATS yet")
    return feed


def _dataset(feed: Feed) -> str:
    if not feed.settings.dataset:
        raise NotReady("this worker serves no dataset: start it through a recipe or set QUORUM_DATASET")
    return feed.settings.dataset


def _session(
    dataset: str, body_session: str | None, request: Request[Any, Any, Any]
) -> tuple[str, str | None]:
    """The request's session, and the authenticated annotator (checked against it)."""
    access: Access = request.app.state["access"]
    authorization = request.headers.get("authorization")
    raw = (
        request.query_params.get("session")
        or request.headers.get("x-quorum-session")
        or body_session
        or access.user_of(authorization)  # an API client logged in as alex is session alex
    )
    session = session_from(dataset, raw)
    return session, access.annotator(session, authorization)


@get("/project", summary="The project config: dataset, view, labels, instructions")
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
    }


@post("/get_session_questions", status_code=200, summary="Hand out the next batch of tasks")
async def get_session_questions(
    state: State, request: Request[Any, Any, Any], data: JSONBody[QuestionsRequest | None] = None
) -> QuestionsResponse:
    feed = _feed(state)
    dataset = _dataset(feed)
    session, _ = _session(dataset, data.session_id if data else None, request)
    tasks, progress = await feed.questions(dataset, session, reload=bool(data and data.reload))
    return QuestionsResponse(
        tasks=tasks,
        total=progress.total,
        progress=progress.fraction,
        answered=progress.answered,
        session_id=f"{dataset}-{session}",
    )


@post("/give_answers", status_code=200, summary="Record answers (append to the ledger, then ack)")
async def give_answers(
    state: State, request: Request[Any, Any, Any], data: JSONBody[AnswersRequest]
) -> AnswersResponse:
    feed = _feed(state)
    dataset = _dataset(feed)
    session, annotator = _session(dataset, data.session_id, request)
    progress: Progress = await feed.answers(dataset, session, data.answers, annotator)
    return AnswersResponse(
        progress=progress.fraction,
        total=progress.total,
        answered=progress.answered,
        received=len(data.answers),
    )


@get("/progress", summary="Queue status per session: queued, out, answered (operators)")
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


@get("/dashboard/data", summary="Dashboard figures: progress, answers per day, agreement, review queue")
async def dashboard_data(
    state: State, request: Request[Any, Any, Any], dataset: FromQuery[str | None] = None
) -> dict[str, Any]:
    feed = _feed(state)
    client = request.client.host if request.client else ""
    state["access"].check_admin(
        request.headers.get("authorization"), client in ("127.0.0.1", "::1", "localhost")
    )
    if dataset is not None and not NAME_PATTERN.match(dataset):
        raise BadRequest(f"invalid dataset name {dataset!r}: use letters, digits, '_' or '-'")
    info = await feed.dataset(dataset or _dataset(feed))
    return await dashboard(
        feed.nc, info.dataset, total_tasks=info.total, snapshot_dir=feed.settings.snapshot_location
    )


@get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", summary="Readiness: NATS and JetStream reachable")
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
    target = (root / path.lstrip("/")).resolve()
    media_type = _ASSET_TYPES.get(target.suffix)
    if media_type is None or root not in target.parents or not target.is_file():
        raise NotFoundException(f"no asset {path}")
    return File(target, media_type=media_type, content_disposition_type="inline")


def _error(status: int, code: str, message: str) -> Response[ErrorBody]:
    return Response(ErrorBody(error=code, message=message, status=status), status_code=status)


def _handle_quorum_error(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, Unauthorized):
        response = _error(exc.status, exc.code, str(exc))
        response.headers["WWW-Authenticate"] = 'Basic realm="Quorum"'
        return response
    if isinstance(exc, FeedError):
        return _error(exc.status, exc.code, str(exc))
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
    return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message)


def _handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
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
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
