"""The Python database API (Prodigy's names): datasets and their answers over the ledger.

`connect()` gives a `Database` whose methods read the projections (the same rows `quorum
db-out` prints) and write to the ledger like any other writer: `add_dataset` appends a
`DatasetConfigured` event and stores the dataset's configuration, `add_examples` appends
`AnswerRecorded` events, `drop_dataset` appends a tombstone. It keeps no state of its own:
every call reads NATS afresh, so what it returns is what db-out would print at that moment.

The API is synchronous. Its coroutines run on an event loop in a private thread, so a
caller inside a running event loop (a recipe, a notebook) can use it too. When no process
owns the data dir and no `NATS_URL` is set, that thread owns the data dir and runs the
embedded nats-server until `close()`: the server dies with the thread that started it.

Imported answers are recorded as the answers of one session (`IMPORT_SESSION`, or the
`session` passed), with `IMPORTED_BY` as their annotator and no hand-out time; db-out, the
projections and `ledger replay` treat them like any answer. docs/db-api.md is the guide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client

from ledger.connection import connect as connect_nats
from ledger.datasets import DatasetInfo, get_dataset, list_datasets, save_dataset
from ledger.drop import DropReport
from ledger.drop import drop_dataset as drop_ledger_dataset
from ledger.errors import QuorumError, UnknownDataset
from ledger.events import ANSWERS, AnswerRecorded, DatasetConfigured, answer_event_id, config_event_id, now_ms
from ledger.hashing import DEFAULT_INPUT_KEYS, parse_hash, set_hashes
from ledger.names import validate_dataset_name, validate_session_name
from ledger.natsd import nats_server, running_embedded_url
from ledger.projectable import NotProjectable, example_fields
from ledger.store import Ledger
from ledger.streams import MAX_MESSAGE_BYTES, ensure_streams
from ledger.tasks import count_tasks
from projections.duck import Projections, load_projections
from projections.export import export_jsonl

# Settings are imported here and only here: where they live may change.
from recipes.settings import Settings, load_settings, routing_of

__all__ = [
    "DB_RECIPE",
    "DEFAULT_VIEW_ID",
    "IMPORTED_BY",
    "IMPORT_SESSION",
    "BadExample",
    "Database",
    "DatabaseError",
    "connect",
]

T = TypeVar("T")

DB_RECIPE = "quorum.db"
"""The recipe name of a dataset made by `add_dataset` (what `quorum stats` shows)."""
DEFAULT_VIEW_ID = "text"
"""The view of a dataset made by `add_dataset`, unless it passes another."""
IMPORT_SESSION = "imported"
"""The session imported answers belong to, unless `add_examples` is given another."""
IMPORTED_BY = "quorum.db"
"""The `annotator` of imported answers: no user name has a `.`, so none is mistaken for it."""

# What a client sends that is not part of the example (as the feed's answer intake).
_NOT_EXAMPLE = frozenset(
    {"_token", "answer", "_session_id", "_annotator_id", "_timestamp", "_decision_id"}
    | {"_input_hash", "_task_hash"}
)
# Room for the batch's envelope around its events in one ledger message.
_ENVELOPE = 1024
_UNENCODABLE = (TypeError, ValueError, OverflowError, msgspec.MsgspecError)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class DatabaseError(QuorumError):
    """The database API was used in a way it can't serve (closed, bad arguments)."""


class BadExample(DatabaseError, ValueError):
    """An example `add_examples` can't record; `index` is its place in the call."""

    def __init__(self, index: int, problem: str) -> None:
        self.index = index
        super().__init__(f"example {index}: {problem}; nothing was added")


def _unknown(dataset: str) -> UnknownDataset:
    return UnknownDataset(
        f"unknown dataset {dataset!r}: create it with db.add_dataset({dataset!r}) or run a recipe "
        f"for it; db.datasets lists the datasets"
    )


class _LoopThread:
    """A private thread running an event loop; `open_url` runs in it first, and whatever
    it entered on the exit stack (the embedded server, the data dir lock) is left there
    when the loop stops."""

    def __init__(self, open_url: Callable[[contextlib.ExitStack], str]) -> None:
        self._loop = asyncio.new_event_loop()
        self._open_url = open_url
        self._started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="quorum-db", daemon=True)
        self._thread.start()
        self.url = self._started.result()

    def _main(self) -> None:
        with contextlib.ExitStack() as stack:
            stack.callback(self._loop.close)
            try:
                url = self._open_url(stack)
            except BaseException as exc:
                self._started.set_exception(exc)
                return
            self._started.set_result(url)
            asyncio.set_event_loop(self._loop)
            self._loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


class Database:
    """Quorum's datasets, with the methods of Prodigy's `Database`.

    Open it with `connect()` (or `Database(...)`, which takes the same arguments) and
    close it when done, or use it as a context manager. Errors are `QuorumError`s whose
    message names the bad example or dataset.
    """

    def __init__(self, data_dir: str | Path | None = None, nats_url: str | None = None) -> None:
        given = Path(data_dir) if data_dir is not None else None
        self.settings: Settings = load_settings(data_dir=given)
        self.data_dir: Path = self.settings.data_dir
        self._nats_url = nats_url
        self._runner: _LoopThread | None = _LoopThread(self._open)
        self.url: str = self._runner.url
        """The NATS server this database reads and writes."""

    def _open(self, stack: contextlib.ExitStack) -> str:
        """The NATS URL: given, the data dir owner's, NATS_URL, else an embedded server."""
        if self._nats_url:
            return self._nats_url
        owned = running_embedded_url(self.data_dir.resolve())
        if owned:
            return owned
        settings = self.settings
        return stack.enter_context(nats_server(self.data_dir, settings.nats_url, settings.nats_port))

    # -- plumbing ------------------------------------------------------------------

    def _open_runner(self) -> _LoopThread:
        if self._runner is None:
            raise DatabaseError("the database is closed; open another with connect()")
        return self._runner

    def _run(self, work: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        """Run `work` with a fresh NATS connection on the private loop; wait for it."""
        runner, url = self._open_runner(), self.url

        async def session() -> T:
            nc = await connect_nats(url, name="quorum-db")
            try:
                return await work(nc)
            finally:
                await nc.close()

        return runner.call(session())

    def _projection(self, dataset: str, read: Callable[[Projections], T]) -> T:
        """`read` over the dataset's projections: snapshots plus the live tail, as db-out."""
        validate_dataset_name(dataset)
        runner = self._open_runner()

        async def load() -> Projections:
            try:
                return await load_projections(
                    self.url,
                    dataset=dataset,
                    materialize=True,
                    snapshot_dir=self.settings.snapshot_location,
                )
            except UnknownDataset:
                raise _unknown(dataset) from None

        with runner.call(load()) as projections:
            return read(projections)

    # -- datasets ------------------------------------------------------------------

    @property
    def datasets(self) -> list[str]:
        """The names of the datasets (configured, not dropped), sorted."""

        async def names(nc: Client) -> list[str]:
            return await list_datasets(await ensure_streams(nc.jetstream()))

        return self._run(names)

    def __len__(self) -> int:
        return len(self.datasets)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.datasets

    def add_dataset(
        self, name: str, meta: dict[str, Any] | None = None, *, view_id: str = DEFAULT_VIEW_ID
    ) -> bool:
        """Create dataset `name` if it is missing; True if it was created.

        As a recipe run with no stream: a `DatasetConfigured` event (recipe `quorum.db`,
        `meta` kept in its config) and the dataset's configuration, with the routing of
        this process's settings. An existing dataset is left as it is.
        """
        validate_dataset_name(name)
        if meta is not None and not isinstance(meta, dict):
            raise DatabaseError(f"meta of dataset {name!r} must be a dict, got {type(meta).__name__}")
        if not isinstance(view_id, str) or not view_id:
            raise DatabaseError(f"view_id of dataset {name!r} must be a non-empty string")
        routing = routing_of(self.settings)
        config: dict[str, Any] = {"routing": routing}
        if meta:
            config["meta"] = meta
        try:
            _encode(config)
        except _UNENCODABLE as exc:
            raise DatabaseError(f"meta of dataset {name!r} can't be stored as JSON: {exc}") from None

        async def create(nc: Client) -> bool:
            kv = await ensure_streams(nc.jetstream())
            with contextlib.suppress(UnknownDataset):
                await get_dataset(kv, name)
                return False
            recorded_at = now_ms()
            event = DatasetConfigured(
                event_id=config_event_id(name, DB_RECIPE, view_id, config),
                dataset=name,
                recipe=DB_RECIPE,
                view_id=view_id,
                config=config,
                recorded_at=recorded_at,
            )
            await Ledger(nc).append([event])
            info = DatasetInfo(
                dataset=name,
                recipe=DB_RECIPE,
                view_id=view_id,
                config={"meta": meta} if meta else {},
                total=await count_tasks(nc, name),
                **routing,
            )
            await save_dataset(kv, info)
            return True

        return self._run(create)

    def drop_dataset(self, name: str) -> DropReport:
        """Drop dataset `name` as `quorum drop` does: a tombstone, then its queue and config go."""
        validate_dataset_name(name)

        async def drop(nc: Client) -> DropReport:
            return await drop_ledger_dataset(nc, name)

        return self._run(drop)

    # -- answers -------------------------------------------------------------------

    def get_dataset_examples(self, name: str) -> list[dict[str, Any]]:
        """The dataset's current answers, exactly as `quorum db-out` prints them."""

        def export(projections: Projections) -> list[dict[str, Any]]:
            out = io.BytesIO()
            export_jsonl(projections, name, out)
            return [_decode(line) for line in out.getvalue().splitlines()]

        return self._projection(name, export)

    get_dataset = get_dataset_examples

    def _hashes(self, column: str, names: Sequence[str]) -> set[int]:
        """The distinct values of a hash column of `dataset_examples` in the datasets `names`."""
        found: set[int] = set()
        for name in names:

            def read(projections: Projections, dataset: str = name) -> list[tuple[int]]:
                sql = f"SELECT DISTINCT {column} FROM dataset_examples WHERE dataset = ?"
                rows: list[tuple[int]] = projections.execute(sql, [dataset]).fetchall()
                return rows

            found.update(row[0] for row in self._projection(name, read))
        return found

    def get_input_hashes(self, *names: str) -> set[int]:
        """The `_input_hash` of every current answer in the datasets `names`."""
        return self._hashes("_input_hash", names)

    def get_task_hashes(self, *names: str) -> set[int]:
        """The `_task_hash` of every current answer in the datasets `names`."""
        return self._hashes("_task_hash", names)

    def add_examples(
        self,
        examples: Iterable[dict[str, Any]],
        datasets: Sequence[str] | str = (),
        *,
        session: str = IMPORT_SESSION,
    ) -> int:
        """Record `examples` as answers in each of `datasets` (names, or one name) under
        `session`; return how many answers were recorded.

        Each example needs an input key (`text`, `image`, `html` or `input`); its
        `answer` defaults to `accept` and its hashes are computed when missing. All of
        them are checked before anything is written: one bad example raises `BadExample`
        naming its index, and nothing is added.
        """
        names = [datasets] if isinstance(datasets, str) else list(datasets or ())
        if not names:
            raise DatabaseError("add_examples needs a dataset: add_examples(examples, datasets=['news'])")
        for name in names:
            validate_dataset_name(name)
        validate_session_name(session)
        if isinstance(examples, dict | str | bytes):
            raise DatabaseError(
                f"add_examples takes a list of examples, got a {type(examples).__name__}: "
                f"wrap a single example in a list"
            )
        checked = [_checked(index, example) for index, example in enumerate(examples)]

        async def record(nc: Client) -> int:
            kv = await ensure_streams(nc.jetstream())
            views: dict[str, str] = {}
            for name in names:
                try:
                    views[name] = (await get_dataset(kv, name)).view_id
                except UnknownDataset:
                    raise _unknown(name) from None
            limit = min(MAX_MESSAGE_BYTES, nc.max_payload) - _ENVELOPE
            now = now_ms()
            batches = [
                _batches([_event(name, session, views[name], a, e, now) for a, e in checked], limit)
                for name in names
            ]
            ledger = Ledger(nc)
            for dataset_batches in batches:
                for batch in dataset_batches:
                    await ledger.append(batch)
            return len(checked) * len(names)

        return self._run(record) if checked else 0

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Stop the embedded server and release the data dir if this database took them."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._runner is None else self.url
        return f"<quorum Database {state} (data dir {self.data_dir})>"


def _checked(index: int, example: object) -> tuple[str, dict[str, Any]]:
    """The answer and the example to record for `example`, or `BadExample`."""
    if not isinstance(example, dict):
        raise BadExample(index, f"must be a dict, got {type(example).__name__}")
    if not any(key in example for key in DEFAULT_INPUT_KEYS):
        raise BadExample(index, f"has no input key: give it one of {', '.join(DEFAULT_INPUT_KEYS)}")
    answer = example.get("answer", "accept")
    if answer not in ANSWERS:
        raise BadExample(index, f"unknown answer {answer!r}: use one of {', '.join(ANSWERS)}")
    view = example.get("_view_id")
    if view is not None and (not isinstance(view, str) or not view):
        raise BadExample(index, f"_view_id must be a non-empty string, got {view!r}")
    task = dict(example)
    for key in ("_input_hash", "_task_hash"):
        if key in task:
            try:
                task[key] = parse_hash(task[key])
            except ValueError as exc:
                raise BadExample(index, f"bad {key}: {exc}") from None
    try:
        set_hashes(task)
    except _UNENCODABLE as exc:  # an input value JSON can't hold
        raise BadExample(index, f"can't be hashed: {exc}") from None
    recorded = {k: v for k, v in task.items() if k not in _NOT_EXAMPLE}
    recorded["_input_hash"] = task["_input_hash"]
    recorded["_task_hash"] = task["_task_hash"]
    try:
        example_fields(recorded)
    except NotProjectable as exc:
        raise BadExample(index, f"no reader could project it ({exc})") from None
    except _UNENCODABLE as exc:
        raise BadExample(index, f"can't be stored as JSON: {exc}") from None
    return str(answer), recorded


def _event(
    dataset: str, session: str, view_id: str, answer: str, example: dict[str, Any], now: int
) -> AnswerRecorded:
    """An imported answer: the event the feed would append, but for its provenance."""
    task_hash = int(example["_task_hash"])
    return AnswerRecorded(
        event_id=answer_event_id(dataset, session, task_hash, answer, example),
        dataset=dataset,
        session_id=f"{dataset}-{session}",
        session=session,
        annotator=IMPORTED_BY,
        answer=answer,  # type: ignore[arg-type]
        input_hash=int(example["_input_hash"]),
        task_hash=task_hash,
        view_id=str(example.get("_view_id") or view_id),
        example=example,
        recorded_at=now,
    )


def _batches(events: list[AnswerRecorded], limit: int) -> list[list[AnswerRecorded]]:
    """`events` in ledger messages of at most `limit` bytes each, in order."""
    batches: list[list[AnswerRecorded]] = []
    size = limit
    for index, event in enumerate(events):
        length = len(_encode(event)) + 1
        if length > limit:
            raise BadExample(
                index, f"is {length:,} bytes as a ledger event, over the {limit:,} one message may carry"
            )
        if size + length > limit:
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += length
    return batches


def connect(data_dir: str | Path | None = None, nats_url: str | None = None) -> Database:
    """Open Quorum's database.

    NATS is `nats_url` if given; else the server of the process that owns the data dir
    (`data_dir`, default `QUORUM_DATA_DIR` or `.quorum`); else `NATS_URL` /
    `QUORUM_NATS_URL`; else an embedded nats-server on the data dir, which this database
    owns until `close()`.
    """
    return Database(data_dir, nats_url)
