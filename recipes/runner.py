"""The recipe runner: it owns a recipe's stream and its `update` learner.

One runner per served dataset, in the process that owns the serving (the `quorum`
parent), never in a feed worker:

- **the stream** is pulled lazily: the runner keeps the work queue (`TASKS`) topped up
  to a shallow depth (`QUORUM_QUEUE_DEPTH`; automatic: four batches per session holding
  tasks), so an infinite stream, a generator reading a database or a sorter asking the
  latest model all work, and serving starts at once whatever the source size. A stream
  that raises is logged with its traceback and reported (`/health`, `quorum progress`:
  "stream failed: …"); what was queued is still served. A restarted runner reads the
  stream again from its start: tasks already queued (or answered) are in `TASKS` and
  are skipped, so nothing is asked twice.
- **`update(answers)`** gets every answer of the dataset in ledger order, in batches of
  `batch_size` (a partial batch after `QUORUM_UPDATE_IDLE` seconds without answers), each
  once per model state: the position after the last batch whose update returned is kept
  in NATS, and a restarted runner goes on from there. A batch interrupted by a crash is
  given again. An update that raises is retried twice, then disabled, with a message;
  answers are saved either way.
- **`progress(ctrl, loss)`**, **`on_load(ctrl)`** and **`on_exit(ctrl)`** run here too.

`load_components` is the eager form: configure the dataset and queue the whole stream
now (tests, benchmarks, `ledger` tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js.kv import KeyValue

from ledger.connection import connect
from ledger.datasets import DatasetInfo, get_dataset, save_dataset
from ledger.errors import QuorumError, UnknownDataset
from ledger.events import AnswerRecorded, DatasetConfigured, config_event_id, decode_batch, now_ms
from ledger.hashing import set_hashes
from ledger.names import validate_dataset_name
from ledger.routes import (
    consumer_info,
    ensure_consumers,
    route_of,
    session_consumers,
    sessions_holding_tasks,
)
from ledger.store import Ledger
from ledger.streams import ensure_streams
from ledger.tailing import follow_events
from ledger.tasks import LoadSummary, count_tasks, load_tasks
from projections.datasets import answers, to_prodigy
from recipes.components import Components, check_components, peek_checked
from recipes.leader import LeaderLock
from recipes.settings import Settings, routing_of
from recipes.status import RunnerStatus, hungry_subject, unsaved_subject, write_runner_status

__all__ = ["Controller", "Runner", "RunnerThread", "load_components"]


def _check_same_routing(existing: DatasetInfo, wanted: dict[str, Any]) -> None:
    before = (existing.feed_overlap, existing.annotations_per_task or 1)
    after = (wanted["feed_overlap"], wanted["annotations_per_task"] or 1)
    if before != after:
        raise QuorumError(
            f"dataset {existing.dataset!r} routes with feed_overlap={before[0]}, "
            f"annotations_per_task={before[1]}; it can't change to feed_overlap={after[0]}, "
            f"annotations_per_task={after[1]}. Use a new dataset name, or drop this one first"
        )


async def _excluded_hashes(nc: Client, settings: Settings, more: list[str]) -> set[int]:
    """Task (or input) hashes already answered in the datasets named by --exclude, and
    by the recipe's `exclude`."""
    names = [n.strip() for n in (settings.exclude or "").split(",") if n.strip()]
    names += [n for n in more if n not in names]
    kv = await ensure_streams(nc.jetstream())
    hashes: set[int] = set()
    for name in names:
        validate_dataset_name(name)
        await get_dataset(kv, name)
        async for event in answers(nc, name):
            hashes.add(event.task_hash if settings.exclude_by == "task" else event.input_hash)
    return hashes


_LEARNER_KEY = "learner.{dataset}"
_POLL = 0.5
"""Seconds between two looks at the queue's depth."""
_PULL = 1000
"""Most tasks pulled from the stream in one go."""

log = logging.getLogger("quorum.runner")

Answer = tuple[int, int, dict[str, Any]]
"""An answer for `update`: its ledger sequence and place in the message, and the example."""


class StreamFailed(Exception):
    """The recipe's stream raised `error` (as opposed to NATS or the ledger failing)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Controller:
    """What `on_load`, `on_exit` and `progress` get as `ctrl`: the dataset, the database
    and live figures (computed when read, from the projections)."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.dataset = runner.components.dataset
        self.config = runner.components.config
        self._db: Any = None

    def _counts(self) -> Counter[str]:
        runner = self._runner
        assert runner.loop is not None and runner.nc is not None
        from projections.reports import answer_counts  # here: DuckDB and Arrow load only when needed

        coro = answer_counts(runner.nc, self.dataset, runner.settings.snapshot_location)
        return asyncio.run_coroutine_threadsafe(coro, runner.loop).result(timeout=120)

    @property
    def session_ids(self) -> list[str]:
        """Sessions that answered, as `<dataset>-<session>` (Prodigy's names)."""
        return sorted(f"{self.dataset}-{session}" for session in self._counts())

    @property
    def total_annotated(self) -> int:
        """Current answers in the dataset (every session's latest decisions)."""
        return sum(self._counts().values())

    @property
    def db(self) -> Any:
        """The Python DB API (`quorum.db`) over this server's ledger."""
        if self._db is None:
            from recipes.db import Database

            self._db = Database(nats_url=self._runner.url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class Runner:
    """A recipe's runner on one event loop; see the module docstring."""

    def __init__(
        self, url: str, components: Components, settings: Settings, *, reconnect: bool = False
    ) -> None:
        self.url, self.components, self.settings = url, components, settings
        self.reconnect = reconnect
        """Ride out a NATS restart (a serving runner) rather than fail fast (a one-off load)."""
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.info: DatasetInfo | None = None
        self.status = RunnerStatus(dataset=components.dataset)
        self.ctrl = Controller(self)
        self.exhausted = False
        self.skipped = 0
        self._tasks: Iterator[dict[str, Any]] = iter(())
        self.lock: LeaderLock | None = None
        self._demand = 0
        """Tasks feed workers found missing since the last top-up (their hungry messages)."""

    # -- set-up -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check and record the dataset's configuration; the stream is untouched."""
        self.loop = asyncio.get_running_loop()
        if self.reconnect:  # an unreachable NATS fails fast first; then reconnect for good
            await (await connect(self.url)).close()
        self.nc = await connect(self.url, reconnect=self.reconnect)
        self.kv = await ensure_streams(self.nc.jetstream())
        components, settings = self.components, self.settings
        # One runner per dataset wherever it runs; a runner-only process (a cluster's
        # runner Deployment) waits for a predecessor's lock instead of failing.
        self.lock = await LeaderLock.acquire(
            self.nc, components.dataset, components.recipe, wait=not settings.feed
        )
        routing = routing_of(settings)
        with contextlib.suppress(UnknownDataset):
            _check_same_routing(await get_dataset(self.kv, components.dataset), routing)
        excluded = await _excluded_hashes(self.nc, settings, components.exclude)
        key = "_task_hash" if settings.exclude_by == "task" else "_input_hash"

        def kept(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for task in stream:
                set_hashes(task)  # a recipe's own hashes are kept
                if excluded and int(task[key]) in excluded:
                    self.skipped += 1
                    continue
                yield task

        self._tasks = kept(components.stream)
        config = {**components.config, "routing": routing}
        if not components.db:
            config["db"] = False  # the feed workers hand answers to update, not to the ledger
        await Ledger(self.nc).append(
            [
                DatasetConfigured(
                    event_id=config_event_id(
                        components.dataset, components.recipe, components.view_id, config
                    ),
                    dataset=components.dataset,
                    recipe=components.recipe,
                    view_id=components.view_id,
                    config=config,
                    recorded_at=now_ms(),
                )
            ]
        )
        self.status.queued = await count_tasks(self.nc, components.dataset)
        self.info = DatasetInfo(
            dataset=components.dataset,
            recipe=components.recipe,
            view_id=components.view_id,
            config={k: v for k, v in config.items() if k != "routing"},
            total=components.total or self.status.queued,
            queued=self.status.queued,
            **routing,
        )
        await save_dataset(self.kv, self.info)
        await ensure_consumers(self.nc, route_of(self.info))

    async def close(self) -> None:
        self.ctrl.close()
        if self.lock is not None:
            await self.lock.release()
        if self.nc is not None:
            await self.nc.close()

    # -- the stream ---------------------------------------------------------------------

    async def _pull(self, n: int) -> tuple[list[dict[str, Any]], Exception | None]:
        """Up to `n` tasks from the stream, read in a thread (a recipe may block), and
        the error it raised after them, if it did: the tasks before an error still count."""

        def take() -> tuple[list[dict[str, Any]], Exception | None]:
            chunk: list[dict[str, Any]] = []
            try:
                chunk.extend(itertools.islice(self._tasks, n))
            except Exception as exc:
                return chunk, exc
            return chunk, None

        chunk, error = await asyncio.to_thread(take)
        if len(chunk) < n:
            self.exhausted = True
        return chunk, StreamFailed(error) if error is not None else None

    async def depth(self) -> int:
        """Tasks queued that the hungriest consumer has not handed out yet."""
        assert self.nc is not None and self.info is not None
        route = route_of(self.info)
        names = await session_consumers(self.nc, route) if route.mode == "full" else route.consumers_for("")
        infos = await asyncio.gather(*(consumer_info(self.nc, route.dataset, name) for name in names))
        pending = [int(c.num_pending or 0) for c in infos if c is not None]
        if len(pending) < len(names) or not pending:
            pending.append(self.status.queued)  # a session to come sees every task
        return min(pending)

    async def target(self) -> int:
        """How many tasks to keep queued ahead of the annotators."""
        if self.settings.queue_depth:
            return self.settings.queue_depth
        assert self.nc is not None
        sessions = await sessions_holding_tasks(self.nc, self.components.dataset)
        return 4 * self.settings.batch_size * max(1, len(sessions))

    async def fill(
        self, *, everything: bool = False, on_progress: Callable[[int], None] | None = None
    ) -> LoadSummary:
        """Top the queue up to `target()` (or queue the whole stream), then record it."""
        assert self.nc is not None
        summary = LoadSummary()
        try:
            while not self.exhausted:
                if everything:
                    want = _PULL
                else:
                    want = min(max(await self.target() - await self.depth(), self._demand), _PULL)
                    self._demand = 0
                if want <= 0:
                    break
                chunk, error = await self._pull(want)
                part = await load_tasks(self.nc, self.components.dataset, chunk, on_progress=on_progress)
                summary.read += part.read
                summary.queued += part.queued
                summary.duplicates += part.duplicates
                self.status.queued += part.queued
                if error is not None:
                    raise error
        finally:
            summary.excluded, self.skipped = self.skipped, 0
            summary.read += summary.excluded
            self.status.read += summary.read
            await self._record()
        return summary

    async def _record(self) -> None:
        assert self.kv is not None and self.info is not None
        if self.status.stream == "starting":
            self.status.stream = "streaming"
        if self.exhausted and self.status.stream == "streaming":
            self.status.stream = "done"
        total = self.status.queued if self.exhausted or not self.components.total else self.components.total
        if (total, self.status.queued) != (self.info.total, self.info.queued):
            self.info.total, self.info.queued = total, self.status.queued
            await save_dataset(self.kv, self.info)
        await write_runner_status(self.kv, self.status)

    async def _keep_filled(self, stop: asyncio.Event) -> None:
        """Top up every `_POLL` seconds, and at once when a feed worker found the queue short."""
        assert self.nc is not None
        wake = asyncio.Event()

        async def hungry(msg: Any) -> None:
            # A worker came up short by this many tasks: the next top-up queues them too.
            with contextlib.suppress(ValueError):
                self._demand += max(int(msg.data or b"0"), 0)
            wake.set()

        subscription = await self.nc.subscribe(hungry_subject(self.components.dataset), cb=hungry)
        try:
            await self._fill_until(stop, wake)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _fill_until(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        while not stop.is_set() and not self.exhausted:
            wake.clear()
            try:
                await self.fill()
            except StreamFailed as failure:  # the recipe's stream raised: report it, keep serving
                exc = failure.error
                self.status.stream = "failed"
                self.status.reason = f"{type(exc).__name__}: {exc}"
                log.error("the stream of recipe %r failed", self.components.recipe, exc_info=exc)
                await self._record()
                return
            except Exception as exc:  # NATS restarting, a slow answer: the next beat tries again
                log.warning(
                    "could not top up the queue of %s: %s", self.components.dataset, exc or type(exc).__name__
                )
            await _first_of(stop, wake, timeout=_POLL)

    # -- the learner --------------------------------------------------------------------

    async def _checkpoint(self) -> tuple[int, int]:
        assert self.kv is not None
        try:
            entry = await self.kv.get(_LEARNER_KEY.format(dataset=self.components.dataset))
            seq, pos = msgspec.json.decode(entry.value or b"[0, -1]", type=tuple[int, int])
            return seq, pos
        except Exception:  # no checkpoint: from the first answer
            return 0, -1

    async def _save_checkpoint(self, seq: int, pos: int) -> None:
        assert self.kv is not None
        await self.kv.put(
            _LEARNER_KEY.format(dataset=self.components.dataset), msgspec.json.encode([seq, pos])
        )

    async def _apply(self, batch: list[Answer], *, checkpoint: bool = True) -> None:
        """Give one batch to `update` (three tries), then move the checkpoint past it."""
        update = self.components.update
        if update is None or self.status.update_error:
            return
        examples = [eg for _, _, eg in batch]
        for attempt in range(3):
            try:
                loss = await asyncio.to_thread(update, examples)
                break
            except Exception as exc:
                log.error(
                    "update of recipe %r failed (try %d of 3)",
                    self.components.recipe,
                    attempt + 1,
                    exc_info=exc,
                )
                if attempt == 2:
                    self.status.update_error = f"{type(exc).__name__}: {exc}"
                    await self._record()
                    return
        seq, pos, _ = batch[-1]
        if checkpoint:
            await self._save_checkpoint(seq, pos)
        self.status.updates += 1
        self.status.loss = float(loss) if isinstance(loss, int | float) else None
        log.info(
            "update %d of recipe %r: %d answers, loss %s",
            self.status.updates,
            self.components.recipe,
            len(batch),
            loss,
        )
        await self._report_progress(loss)

    async def _report_progress(self, loss: Any = None) -> None:
        progress = self.components.progress
        if progress is not None:
            try:
                value = await asyncio.to_thread(progress, self.ctrl, loss)
                self.status.progress = None if value is None else min(max(float(value), 0.0), 1.0)
            except Exception as exc:
                log.error("progress of recipe %r failed", self.components.recipe, exc_info=exc)
        await self._record()

    async def _feed_update(
        self,
        stop: asyncio.Event,
        arrivals: asyncio.Queue[list[Answer]],
        *,
        checkpoint: bool,
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        """Hand what `arrivals` brings to `update` in batches of `batch_size`, and a
        partial batch after `QUORUM_UPDATE_IDLE` seconds without answers."""
        batch: list[Answer] = []
        while not stop.is_set():
            try:
                batch += await asyncio.wait_for(arrivals.get(), self.settings.update_idle)
            except TimeoutError:
                if batch:
                    await self._apply(batch, checkpoint=checkpoint)
                    batch = []
                on_idle()
                continue
            if len(batch) >= self.settings.batch_size:
                await self._apply(batch, checkpoint=checkpoint)
                batch = []

    async def _learn_unsaved(self, stop: asyncio.Event) -> None:
        """`db: False`: the workers publish the answers to the runner instead of the ledger;
        `update` gets them in batches as they come. Nothing is saved, so nothing replays."""
        assert self.nc is not None
        arrivals: asyncio.Queue[list[Answer]] = asyncio.Queue()

        async def receive(msg: Any) -> None:
            events = decode_batch(msg.data)
            await arrivals.put([(0, 0, to_prodigy(e)) for e in events if isinstance(e, AnswerRecorded)])

        subscription = await self.nc.subscribe(unsaved_subject(self.components.dataset), cb=receive)
        try:
            await self._feed_update(stop, arrivals, checkpoint=False)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _learn(self, stop: asyncio.Event) -> None:
        """Feed `update` every answer of the dataset in ledger order; see the docstring."""
        nc = self.nc
        assert nc is not None
        done = await self._checkpoint()
        arrivals: asyncio.Queue[list[Answer]] = asyncio.Queue(maxsize=64)

        async def read() -> None:
            start = max(done[0], 1)
            async for entry in follow_events(
                nc, dataset=self.components.dataset, kind="answer_recorded", start_seq=start
            ):
                await arrivals.put(
                    [
                        (entry.seq, pos, to_prodigy(event))
                        for pos, event in enumerate(entry.events)
                        if (entry.seq, pos) > done and isinstance(event, AnswerRecorded)
                    ]
                )

        reader = asyncio.create_task(read())

        def reader_failed() -> None:
            if reader.done():
                reader.result()  # a reader that failed says why

        try:
            await self._feed_update(stop, arrivals, checkpoint=True, on_idle=reader_failed)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    # -- the whole run --------------------------------------------------------------------

    async def call(self, callback: Callable[[Any], Any] | None) -> None:
        """Run `on_load` / `on_exit` in a thread (it may read `ctrl`, which asks this loop)."""
        if callback is not None:
            await asyncio.to_thread(callback, self.ctrl)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the queue filled and the learner fed until `stop`, or until another runner
        took the leader lock over (this one paused too long): then this one stops."""
        assert self.lock is not None
        jobs = [asyncio.create_task(self._keep_filled(stop)), asyncio.create_task(self.lock.keep())]
        if self.components.update is not None:
            learn = self._learn if self.components.db else self._learn_unsaved
            jobs.append(asyncio.create_task(learn(stop)))
        elif self.components.progress is not None:
            await self._report_progress()
        await _first_of(stop, self.lock.lost)
        if self.lock.lost.is_set():
            log.error("another runner took over dataset %r; this one stopped", self.components.dataset)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


class RunnerThread:
    """A `Runner` on its own event loop in a thread of the serving process.

    `start` opens it, runs `on_load` and fills the queue once (errors raise here, before
    anything is served); `stop` ends it and runs `on_exit` (a clean stop only).
    """

    def __init__(self, url: str, components: Components, settings: Settings) -> None:
        self.runner = Runner(url, peek_checked(components), settings, reconnect=True)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="quorum-runner", daemon=True)

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, on_progress: Callable[[int], None] | None = None) -> LoadSummary:
        self._thread.start()

        async def begin() -> LoadSummary:
            await self.runner.open()
            await self.runner.call(self.runner.components.on_load)
            try:
                return await self.runner.fill(on_progress=on_progress)
            except StreamFailed as failure:  # before serving: the recipe's own error, as it is
                raise failure.error from None

        try:
            summary: LoadSummary = self._call(begin())
        except BaseException:
            self._end()
            raise
        self._stop = self._call(_event())
        self._running = asyncio.run_coroutine_threadsafe(self.runner.run(self._stop), self._loop)
        return summary

    def stop(self, *, clean: bool = True) -> None:
        """Stop topping up and learning; with `clean`, run the recipe's `on_exit`. Once."""
        if self._stopped:
            return
        self._stopped = True
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            with contextlib.suppress(Exception):
                self._running.result(timeout=10)
            if clean:
                try:
                    self._call(self.runner.call(self.runner.components.on_exit), timeout=120)
                except Exception as exc:
                    log.error("on_exit of recipe %r failed", self.runner.components.recipe, exc_info=exc)
        self._end()

    def _end(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self.runner.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


async def _first_of(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return once any of `events` is set (or after `timeout` seconds)."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def _event() -> asyncio.Event:
    return asyncio.Event()


async def load_components(
    url: str,
    components: Components | dict[str, Any],
    settings: Settings,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> LoadSummary:
    """Configure the dataset and queue the whole stream now (the eager runner).

    `components` is checked first (a recipe's dict is checked as `recipe`); its first
    task too, so a stream that is wrong from the start queues nothing. `on_progress(n,
    total)` hears of every `n` tasks queued.
    """
    if not isinstance(components, Components):
        components = check_components("recipe", components)
    runner = Runner(url, peek_checked(components), settings)
    try:
        await runner.open()
        report = (lambda n: on_progress(n, components.total)) if on_progress else None
        try:
            return await runner.fill(everything=True, on_progress=report)
        except StreamFailed as failure:  # the recipe's own error (a bad source line…), as it is
            raise failure.error from None
    finally:
        await runner.close()
