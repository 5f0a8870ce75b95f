"""The feed's work, as plain async functions over a NATS connection.

`Feed` holds only what every request needs and what never changes while the
process lives: the NATS connection, the token secret and the settings. Sessions,
queues and progress all live in NATS; feed workers never keep state between requests.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from feed.errors import BadRequest, Forbidden, InvalidAnswer
from feed.routing import ack_tasks, consumer_info, fetch_tasks
from feed.tokens import TaskToken, sign_token, verify_token
from ledger.datasets import DatasetInfo, get_dataset
from ledger.errors import InvalidName
from ledger.events import ANSWERS, AnswerRecorded, answer_event_id, now_ms
from ledger.hashing import parse_hash
from ledger.names import validate_session_name
from ledger.store import Ledger
from ledger.streams import ensure_streams
from quorum.settings import Settings

__all__ = ["Feed", "Progress", "load_secret", "session_from"]

_decoder = msgspec.json.Decoder()
_SECRET_KEY = "secret.tokens"


@dataclass(frozen=True)
class Progress:
    """How far a dataset is: `answered` of `total` tasks done."""

    total: int
    answered: int

    @property
    def fraction(self) -> float:
        return self.answered / self.total if self.total else 0.0


async def load_secret(kv: KeyValue, configured: str | None) -> bytes:
    """The token secret: `QUORUM_SECRET`, or one shared random key in the config bucket.

    `create` is atomic, so workers starting at once agree on a single key.
    """
    if configured:
        return configured.encode()
    with contextlib.suppress(KeyWrongLastSequenceError):  # another worker made it first
        await kv.create(_SECRET_KEY, os.urandom(32).hex().encode())
    entry = await kv.get(_SECRET_KEY)
    assert entry.value is not None
    return entry.value


def session_from(dataset: str, raw: object) -> str:
    """The bare session name from `?session=` or a Prodigy-style `<dataset>-<session>`."""
    if not isinstance(raw, str) or not raw:
        raise BadRequest("no session given: open the app with ?session=NAME or send session_id")
    name = raw.removeprefix(f"{dataset}-") if raw != f"{dataset}-" else raw
    try:
        return validate_session_name(name)
    except InvalidName as exc:
        raise BadRequest(str(exc)) from None


@dataclass
class Feed:
    """One worker's handle on NATS; every method is safe to call concurrently."""

    nc: Client
    kv: KeyValue
    secret: bytes
    settings: Settings

    @classmethod
    async def start(cls, nc: Client, settings: Settings) -> Feed:
        kv = await ensure_streams(nc.jetstream())
        return cls(nc=nc, kv=kv, secret=await load_secret(kv, settings.secret), settings=settings)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.nc)

    async def dataset(self, name: str) -> DatasetInfo:
        return await get_dataset(self.kv, name)

    async def progress(self, info: DatasetInfo) -> Progress:
        counters = await consumer_info(self.nc, info.dataset)
        remaining = (counters.num_pending or 0) + (counters.num_ack_pending or 0)
        return Progress(total=info.total, answered=max(info.total - remaining, 0))

    async def questions(
        self, dataset: str, session: str, count: int | None = None
    ) -> tuple[list[dict[str, Any]], Progress]:
        """Hand out up to `count` tasks to `session`, each with a signed token."""
        info = await self.dataset(dataset)
        msgs = await fetch_tasks(self.nc, dataset, count or self.settings.batch_size)
        issued = now_ms()
        expires = issued + int(self.settings.token_ttl * 1000)
        tasks = []
        for msg in msgs:
            task = _decoder.decode(msg.data)
            task_hash = int(task["_task_hash"])
            token = TaskToken(msg.reply, dataset, session, task_hash, issued, expires)
            task["_token"] = sign_token(self.secret, token)
            task["_input_hash"] = str(task["_input_hash"])
            task["_task_hash"] = str(task_hash)
            task["_session_id"] = f"{dataset}-{session}"
            tasks.append(task)
        return tasks, await self.progress(info)

    def _event(
        self, info: DatasetInfo, session: str, answer: object, now: int, annotator: str | None
    ) -> tuple[AnswerRecorded, str]:
        dataset = info.dataset
        if not isinstance(answer, dict):
            raise InvalidAnswer(f"each answer must be a JSON object, got {type(answer).__name__}")
        decision = answer.get("answer")
        if decision not in ANSWERS:
            raise InvalidAnswer(f"unknown answer {decision!r}: use one of {', '.join(ANSWERS)}")
        token = verify_token(self.secret, answer.get("_token"), now_ms=now)
        try:
            task_hash = parse_hash(answer.get("_task_hash"))
            input_hash = parse_hash(answer.get("_input_hash"))
        except ValueError as exc:
            raise InvalidAnswer(f"bad _task_hash or _input_hash: {exc}") from None
        if token.dataset != dataset or token.task_hash != task_hash:
            raise Forbidden("task token belongs to another task; answer the task you were given")
        if token.session != session:
            raise Forbidden(f"task token was issued to session {token.session!r}, not {session!r}")
        example = {
            k: v
            for k, v in answer.items()
            if k not in ("_token", "answer", "_session_id", "_timestamp", "_input_hash", "_task_hash")
        }
        example["_input_hash"] = input_hash
        example["_task_hash"] = task_hash
        event = AnswerRecorded(
            event_id=answer_event_id(dataset, session, task_hash, decision, example),
            dataset=dataset,
            session_id=f"{dataset}-{session}",
            session=session,
            annotator=annotator,
            answer=decision,  # type: ignore[arg-type]
            input_hash=input_hash,
            task_hash=task_hash,
            view_id=str(answer.get("_view_id") or info.view_id),
            example=example,
            handed_out_at=token.issued_ms,
            recorded_at=now,
        )
        return event, token.reply

    async def answers(
        self, dataset: str, session: str, answers: object, annotator: str | None = None
    ) -> Progress:
        """Validate every answer, append them as one ledger message, then ack the tasks.

        All or nothing: one bad answer rejects the batch before anything is written.
        """
        if not isinstance(answers, list):
            raise BadRequest('"answers" must be a list of annotated tasks')
        info = await self.dataset(dataset)
        now = now_ms()
        checked = [self._event(info, session, answer, now, annotator) for answer in answers]
        if checked:
            # Two answers to one task in one batch (undo, then answer again): keep the last.
            latest = {event.task_hash: (event, reply) for event, reply in checked}
            await self.ledger.append([event for event, _ in latest.values()])
            await ack_tasks(self.nc, [reply for _, reply in latest.values()])
        return await self.progress(info)
