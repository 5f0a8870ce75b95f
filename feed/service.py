"""The feed's work, as plain async functions over a NATS connection.

`Feed` holds only what every request needs and what never changes while the
process lives: the NATS connection, the token secret and the settings. Sessions,
queues and progress all live in NATS; feed workers never keep state between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from feed.errors import BadRequest, FeedError, Forbidden, InvalidAnswer, NotReady, SurplusAnswer
from feed.holds import HeldTask, Holds, read_holds, update_holds
from feed.hooks import RecipeHooks
from feed.routing import (
    ConsumerMissing,
    ack_tasks,
    claim_answer,
    claim_first_time,
    fetch_tasks,
    release,
    release_claims,
)
from feed.tokens import TaskToken, sign_token, verify_token
from feed.validate import NeedsServedTask, check_answer, content_digest
from ledger.datasets import DatasetInfo, get_dataset
from ledger.errors import InvalidName
from ledger.events import ANSWERS, AnswerRecorded, answer_event_id, encode_batch, is_keyed, now_ms
from ledger.hashing import hash_hex, parse_hash
from ledger.names import validate_session_name
from ledger.routes import Route, consumer_info, ensure_session_consumer, route_of
from ledger.store import Ledger
from ledger.streams import TASKS_STREAM, ensure_streams, tasks_subject
from recipes.settings import Settings
from recipes.status import RunnerStatus, hungry_subject, read_runner_status, unsaved_subject

__all__ = ["Feed", "Progress", "decision_key", "load_secret", "session_from"]

_decoder = msgspec.json.Decoder()
_SECRET_KEY = "secret.tokens"
# Bookkeeping keys of an answer that are not part of the annotated example.
_NOT_EXAMPLE = frozenset(
    {"_token", "answer", "_session_id", "_timestamp", "_decision_id", "_input_hash", "_task_hash"}
)
_DECISION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_CONFIG_TTL = 2.0
_HUNGRY_TRIES, _HUNGRY_WAIT = 12, 0.25
"""An empty batch while the stream goes on waits up to 3 s for the runner's top-up."""
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """How far a dataset is: `answered` of `total` tasks done."""

    total: int
    answered: int
    recipe: float | None = None
    """The recipe's own `progress` value (from its runner), which wins when there is one."""

    @property
    def fraction(self) -> float:
        if self.recipe is not None:
            return self.recipe
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


def decision_key(raw: object) -> str | None:
    """The client's decision key (`_decision_id`), checked; None when the answer has none."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _DECISION_ID.fullmatch(raw):
        raise InvalidAnswer(
            f"_decision_id must be 8 to 64 letters, digits, '_' or '-' (a new random id per "
            f"decision, the same one when a decision is sent again), got {str(raw)[:80]!r}"
        )
    return raw


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
    hooks: RecipeHooks = field(default_factory=RecipeHooks)
    """The served recipe's `validate_answer` and `before_db`, if it has them."""
    _configs: dict[str, tuple[float, DatasetInfo]] = field(default_factory=dict)
    _runners: dict[str, tuple[float, RunnerStatus | None]] = field(default_factory=dict)

    @classmethod
    async def start(cls, nc: Client, settings: Settings) -> Feed:
        kv = await ensure_streams(nc.jetstream())
        hooks = await asyncio.to_thread(RecipeHooks.from_env)
        return cls(
            nc=nc, kv=kv, secret=await load_secret(kv, settings.secret), settings=settings, hooks=hooks
        )

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.nc)

    async def dataset(self, name: str) -> DatasetInfo:
        """The dataset's configuration, re-read from NATS at most every couple of seconds.

        A cache of what NATS holds, never the source of truth: routing can't change for
        a dataset, and a new `total` after a reload shows within `_CONFIG_TTL`.
        """
        return await _cached(self._configs, name, lambda: get_dataset(self.kv, name))

    async def runner(self, name: str) -> RunnerStatus | None:
        """The dataset's runner report (its recipe's `progress`…), cached like `dataset`."""
        return await _cached(self._runners, name, lambda: read_runner_status(self.kv, name))

    def route(self, info: DatasetInfo) -> Route:
        return route_of(info)

    async def progress(self, info: DatasetInfo, session: str) -> Progress:
        """Answered share of the work: the dataset's, or with full overlap the session's.

        Reads consumer counters only; it hands out nothing.
        """
        names = self.route(info).consumers_for(session)
        infos = await asyncio.gather(*(consumer_info(self.nc, info.dataset, name) for name in names))
        # The runner may have queued only part of the source so far: what is done is
        # what was queued less what is still pending or out.
        queued = info.total if info.queued is None else info.queued
        remaining = sum((c.num_pending or 0) + (c.num_ack_pending or 0) if c else queued for c in infos)
        done = queued * len(names) - remaining
        runner = await self.runner(info.dataset)
        recipe = runner.progress if runner is not None else None
        target = info.config.get("total_examples_target")  # Prodigy's: progress toward a goal
        total = target if isinstance(target, int) and target > 0 else info.total * len(names)
        return Progress(total=total, answered=max(done, 0), recipe=recipe)

    async def questions(
        self, dataset: str, session: str, count: int | None = None, *, reload: bool = False
    ) -> tuple[list[dict[str, Any]], Progress]:
        """Hand out up to `count` tasks to `session`, each with a signed token.

        With `reload`, the tasks the session still holds (a reloaded page lost them) come
        first, with their original tokens.
        """
        info = await self.dataset(dataset)
        route = self.route(info)
        count = count or self.settings.batch_size
        now = now_ms()
        held, held_seq = await read_holds(self.nc, dataset, session)
        tasks = await self._held_tasks(dataset, session, held, now, count) if reload else []
        msgs = await self._draw(route, session, count - len(tasks), held) if len(tasks) < count else []
        if len(tasks) + len(msgs) < count and await self._streaming(dataset):
            msgs += await self._wait_for_tasks(route, session, count - len(tasks) - len(msgs), held, not msgs)
        expires = now + int(self.settings.token_ttl * 1000)
        fresh: dict[str, HeldTask] = {}
        for msg in msgs:
            task = _decoder.decode(msg.data)
            task_hash = int(task["_task_hash"])
            digest = content_digest(info.view_id, task)
            token = sign_token(
                self.secret, TaskToken(msg.reply, dataset, session, task_hash, now, expires, digest)
            )
            fresh[str(task_hash)] = HeldTask(token, now + int(route.ack_wait * 1000), expires)
            tasks.append(_present(task, token, dataset, session))
        if fresh:
            known = (msgspec.structs.replace(held, tasks=dict(held.tasks)), held_seq)
            await update_holds(self.nc, dataset, session, lambda h: _with(h, fresh), now, known)
        return tasks, await self.progress(info, session)

    async def _streaming(self, dataset: str) -> bool:
        """Whether the dataset's runner is still reading its recipe's stream."""
        status = await self.runner(dataset)
        return status is not None and status.stream in ("starting", "streaming")

    async def _wait_for_tasks(
        self, route: Route, session: str, count: int, held: Holds, empty: bool
    ) -> list[Msg]:
        """The queue ran short while the runner still has a stream: ask it to top up now,
        and, rather than answer an empty batch, wait a moment for its tasks."""
        await self.nc.publish(hungry_subject(route.dataset), str(count).encode())
        if not empty:
            return []
        for _ in range(_HUNGRY_TRIES):
            await asyncio.sleep(_HUNGRY_WAIT)
            msgs = await self._draw(route, session, count, held)
            if msgs:
                return msgs
        return []

    async def _draw(self, route: Route, session: str, count: int, held: Holds) -> list[Msg]:
        """Take up to `count` tasks for `session` from its consumers, in order."""
        chosen: list[Msg] = []
        for consumer in route.consumers_for(session):
            scanned = 0
            # Bounded: under k-overlap a session may meet tasks it already has.
            while len(chosen) < count and scanned < 4 * count:
                try:
                    msgs = await fetch_tasks(self.nc, consumer, count - len(chosen))
                except ConsumerMissing:
                    if route.mode != "full":
                        raise NotReady(
                            f"the task queue of {route.dataset!r} is missing; start its recipe again"
                        ) from None
                    await ensure_session_consumer(self.nc, route, session)
                    continue
                if not msgs:
                    break
                scanned += len(msgs)
                chosen.extend(await self._keep(route, session, msgs, held))
        return chosen

    async def _keep(self, route: Route, session: str, msgs: list[Msg], held: Holds) -> list[Msg]:
        """The delivered tasks this session may have; the others are skipped or released."""
        if route.mode == "none":
            return msgs
        hashes = [int(_decoder.decode(msg.data)["_task_hash"]) for msg in msgs]
        # Full overlap: a task the session holds is its own redelivery; give it back.
        firsts = await asyncio.gather(
            *(
                _true()
                if route.mode == "full" and str(h) in held.tasks
                else claim_first_time(self.nc, route.dataset, session, h)
                for h in hashes
            )
        )
        kept = []
        for msg, first in zip(msgs, firsts, strict=True):
            if first:
                kept.append(msg)
            elif route.mode == "k":
                await release(self.nc, msg, delay=1.0)  # the session has it: another's turn
            else:
                # Full overlap: handed to this session by an earlier consumer of its own
                # (deleted when idle) and answered since; skip it for good.
                await self.nc.publish(msg.reply, b"+ACK")
        return kept

    async def _held_tasks(
        self, dataset: str, session: str, held: Holds, now: int, count: int
    ) -> list[dict[str, Any]]:
        """The session's unanswered tasks whose delivery is still its own."""
        # A token that expired can't be answered: such a task is left to redelivery.
        live = [
            (h, t) for h, t in held.tasks.items() if t.redeliver_at_ms > now and t.token_expires_ms > now
        ][:count]
        js = self.nc.jetstream()
        bodies = await asyncio.gather(
            *(
                js.get_last_msg(TASKS_STREAM, tasks_subject(dataset, hash_hex(int(h))), direct=True)
                for h, _ in live
            )
        )
        return [
            _present(_decoder.decode(body.data or b"{}"), held_task.token, dataset, session)
            for (_, held_task), body in zip(live, bodies, strict=True)
        ]

    async def _as_served(self, info: DatasetInfo, answer: dict[str, Any], token: TaskToken) -> dict[str, Any]:
        """The answer checked against its task as served (`feed/validate.py`).

        The token's digest vouches for the served content; the task is read back from
        TASKS only when it can't (a changed key to name, an old token, a preset label).
        """
        labels = info.config.get("labels")
        labels = labels if isinstance(labels, list) else None
        style = info.config.get("choice_style")
        try:
            return check_answer(info.view_id, labels, answer, digest=token.digest, choice_style=style)
        except NeedsServedTask as unvouched:
            js = self.nc.jetstream()
            subject = tasks_subject(info.dataset, hash_hex(token.task_hash))
            try:
                served = await js.get_last_msg(TASKS_STREAM, subject, direct=True)
            except NotFoundError:
                raise unvouched from None  # its message says what to do without the task
            task = _decoder.decode(served.data or b"{}")
            return check_answer(info.view_id, labels, answer, served=task, choice_style=style)

    async def _event(
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
        answer = await self._as_served(info, answer, token)
        example = {k: v for k, v in answer.items() if k not in _NOT_EXAMPLE}
        example["_input_hash"] = input_hash
        example["_task_hash"] = task_hash
        self.hooks.validate({**example, "answer": decision, "_session_id": f"{dataset}-{session}"})
        event = AnswerRecorded(
            event_id=answer_event_id(
                dataset, session, task_hash, decision, example, decision_key(answer.get("_decision_id"))
            ),
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
        """Validate every answer, claim its slot, append them as one ledger message, ack.

        All or nothing: one bad or surplus answer refuses the batch before anything is
        written, and the error names its task.
        """
        if not isinstance(answers, list):
            raise BadRequest('"answers" must be a list of annotated tasks')
        info = await self.dataset(dataset)
        now = now_ms()
        checked = []
        for answer in answers:
            try:
                checked.append(await self._event(info, session, answer, now, annotator))
            except FeedError as exc:
                raise exc.for_task(answer.get("_task_hash") if isinstance(answer, dict) else None) from None
        if checked:
            # Two answers to one task in one batch (undo, then answer again): keep the last.
            latest = list({event.task_hash: (event, reply) for event, reply in checked}.values())
            await self._record(info, session, self._before_db(latest), now)
        return await self.progress(info, session)

    def _before_db(self, answered: list[tuple[AnswerRecorded, str]]) -> list[tuple[AnswerRecorded, str]]:
        """The recipe's `before_db` on the batch: what it returns is stored (the event keeps
        the id of the decision as given, so a retry still changes nothing)."""
        if self.hooks.before_db is None:
            return answered
        examples = [
            {**event.example, "answer": event.answer, "_session_id": event.session_id}
            for event, _ in answered
        ]
        stored = self.hooks.store(examples)
        return [
            (
                msgspec.structs.replace(
                    event, example={k: v for k, v in eg.items() if k not in _NOT_EXAMPLE}
                ),
                reply,
            )
            for (event, reply), eg in zip(answered, stored, strict=True)
        ]

    async def _record(
        self, info: DatasetInfo, session: str, answered: list[tuple[AnswerRecorded, str]], now: int
    ) -> None:
        route = self.route(info)
        claims = await asyncio.gather(
            *(claim_answer(self.nc, route, session, event.task_hash) for event, _ in answered)
        )
        surplus = [
            (event, reply)
            for (event, reply), claim in zip(answered, claims, strict=True)
            if not claim.granted
        ]
        if surplus:
            await release_claims(self.nc, claims)
            # The task has all the answers routing allows: this delivery is done.
            await self._settle(info.dataset, session, surplus, now)
            first = surplus[0][0].task_hash
            raise SurplusAnswer(
                f"task {first} already has the answers of {route.k} other session"
                f"{'s' if route.k != 1 else ''}, as many as its routing allows; this answer "
                f"was not recorded (nor the rest of its batch: send them again without it)"
            ).for_task(first)
        events = [event for event, _ in answered]
        try:
            if info.config.get("db") is False:  # the recipe saves nothing: its update gets them
                await self.nc.publish(unsaved_subject(info.dataset), encode_batch(events))
            else:
                await self.ledger.append(events, dedupe=all(is_keyed(e.event_id) for e in events))
        except BaseException:
            await release_claims(self.nc, claims)
            raise
        await self._settle(info.dataset, session, answered, now)

    async def _settle(
        self, dataset: str, session: str, answered: list[tuple[AnswerRecorded, str]], now: int
    ) -> None:
        """Ack the tasks' deliveries and drop them from the session's holds."""
        done = {str(event.task_hash) for event, _ in answered}
        await asyncio.gather(
            ack_tasks(self.nc, [reply for _, reply in answered]),
            update_holds(self.nc, dataset, session, lambda h: _without(h, done), now),
        )


async def _cached(cache: dict[str, tuple[float, T]], key: str, read: Callable[[], Awaitable[T]]) -> T:
    """`read()`'s value, kept in `cache` for `_CONFIG_TTL` seconds."""
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = await read()
    cache[key] = (now + _CONFIG_TTL, value)
    return value


def _stored_example(event: AnswerRecorded, returned: dict[str, Any]) -> dict[str, Any]:
    """What `before_db` returned, as an event's example: the task's hashes stay its own."""
    example = {k: v for k, v in returned.items() if k not in _NOT_EXAMPLE}
    example["_input_hash"], example["_task_hash"] = event.input_hash, event.task_hash
    return example


def _present(task: dict[str, Any], token: str, dataset: str, session: str) -> dict[str, Any]:
    """A task as the HTTP API shows it: hashes as strings, with token and session id."""
    task["_token"] = token
    task["_input_hash"] = str(task["_input_hash"])
    task["_task_hash"] = str(task["_task_hash"])
    task["_session_id"] = f"{dataset}-{session}"
    return task


async def _true() -> bool:
    return True


def _with(holds: Holds, fresh: dict[str, HeldTask]) -> Holds:
    holds.tasks.update(fresh)
    return holds


def _without(holds: Holds, done: set[str]) -> Holds:
    holds.tasks = {k: v for k, v in holds.tasks.items() if k not in done}
    return holds
