"""The stack a benchmark runs against, started and stopped from Python.

`prepare` writes a synthetic JSONL source to a temporary directory and queues it
through a real recipe into an embedded nats-server there (JetStream with
`sync_interval: always`, as every server Quorum starts). `start_stack` starts that
server again on a fresh copy of the store, and Granian feed workers on a free loopback
port. `Stack.stop` takes all of it down again and removes the directory. Nothing here
tunes the server for the benchmark: it runs as a user would run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import msgspec

from ledger.errors import QuorumError
from ledger.natsd import EmbeddedNats, start_embedded
from ledger.tasks import LoadSummary
from quorum.serve import FeedProcess, start_feed
from recipes.catalog import get_recipe
from recipes.runner import load_components
from recipes.settings import Settings, load_settings

__all__ = [
    "Prepared",
    "Stack",
    "StackOptions",
    "cpu_seconds",
    "parse_assignments",
    "prepare",
    "start_stack",
    "write_source",
]

DATASET = "bench"
LABELS = "Tech,Politics,Sports"
NER_LABELS = "PERSON,ORG"

_TEXT = (
    "the council said markets rallied after a quiet week while engineers in Berlin "
    "shipped a new model that parses court filings faster than lawyers expected and "
    "critics warned the vote could delay funding for rail projects across the north "
    "as investors weighed earnings from chip makers and a striker scored twice late"
)
_WORDS = tuple(_TEXT.split(" "))


def write_source(path: Path, count: int, *, seed: int = 7) -> Path:
    """Write `count` distinct news-like examples to `path` as JSONL."""
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    with path.open("wb") as out:
        for number in range(count):
            words = rng.choices(_WORDS, k=rng.randint(18, 40))
            # The number keeps every text (and so every task hash) distinct.
            text = " ".join(words).capitalize() + f" (story {number})."
            out.write(encoder.encode({"text": text, "meta": {"id": number}}) + b"\n")
    return path


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """`["k=v", …]` from pass-through flags; values are JSON when they parse, else text."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise QuorumError(f"{what} {item!r} is not KEY=VALUE; e.g. {what} batch_size=20")
        try:
            parsed[key.strip().replace("-", "_")] = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            parsed[key.strip().replace("-", "_")] = raw
    return parsed


@dataclass
class StackOptions:
    """What to start: recipe, task count, workers and pass-through settings.

    `settings` go to `load_settings` (so they reach the workers as `QUORUM_*`
    variables); `recipe_args` go to the recipe function as keyword arguments. Both
    let the benchmark drive options that other parts of Quorum add (overlap modes)
    without this module knowing them.
    """

    workers: int = 2
    tasks: int = 20_000
    recipe: str = "textcat.manual"
    batch_size: int = 10
    settings: dict[str, Any] = field(default_factory=dict)
    recipe_args: dict[str, Any] = field(default_factory=dict)
    # Options that are a setting in one build and a recipe argument in another (the
    # overlap modes): each goes wherever this build accepts it.
    either: dict[str, Any] = field(default_factory=dict)
    port: int = 0

    def resolved(self) -> StackOptions:
        """A copy with `either` moved into `settings` or `recipe_args`."""
        settings, recipe_args = dict(self.settings), dict(self.recipe_args)
        known = {f.name for f in fields(Settings)}
        takes = inspect.signature(get_recipe(self.recipe).func).parameters
        for name, value in self.either.items():
            if name in known:
                settings[name] = value
            elif name in takes:
                recipe_args[name] = value
            else:
                flag = "--" + name.replace("_", "-")
                raise QuorumError(
                    f"{flag}: this build of Quorum has no setting or {self.recipe} argument "
                    f"{name!r} yet (overlap modes come with issue 4); drop the flag or pass "
                    f"it as --setting/--recipe-arg once it exists"
                )
        return replace(self, settings=settings, recipe_args=recipe_args, either={})


@dataclass
class Stack:
    """A running NATS + feed, and what it took to set up."""

    url: str
    dataset: str
    settings: Settings
    nats: EmbeddedNats
    feed: FeedProcess
    workdir: Path
    summary: LoadSummary
    load_seconds: float

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last `lines` lines the feed workers wrote to stderr (their JSON logs)."""
        try:
            text = (self.workdir / "feed.log").read_text(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def log_errors(self) -> int:
        """How many error lines the feed workers logged."""
        try:
            text = (self.workdir / "feed.log").read_text(errors="replace")
        except OSError:
            return 0
        return sum('"level": "error"' in line for line in text.splitlines())

    def pids(self) -> dict[str, list[int]]:
        """Process ids by role: `nats`, `granian` (the supervisor) and `workers`."""
        return {
            "nats": [self.nats.process.pid],
            "granian": [self.feed.process.pid],
            "workers": _children(self.feed.process.pid),
        }

    def stop(self) -> None:
        """Stop the workers, then NATS, then remove the temporary directory."""
        try:
            self.feed.stop()
        finally:
            try:
                self.nats.stop()
            finally:
                shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Let child processes started inside inherit `path` as their stdout and stderr.

    `start_feed` hands Granian this process's stdout and stderr, and the workers' JSON
    logs go to one of them. A benchmark's terminal (or its `--json` on stdout) should
    carry the report, not one log line per failed request, so the workers' output goes
    to a file whose tail the report quotes when something failed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with path.open("ab") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
    try:
        yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(found))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _split_settings(options: StackOptions) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(options.settings) - known)
    if unknown:
        raise QuorumError(
            f"unknown setting(s) {', '.join(unknown)} in --setting; this build knows: "
            f"{', '.join(sorted(known))}"
        )
    return dict(options.settings)


def _components(options: StackOptions, source: Path) -> Any:
    recipe = get_recipe(options.recipe).func
    accepted = inspect.signature(recipe).parameters
    unknown = sorted(k for k in options.recipe_args if k not in accepted)
    if unknown:
        raise QuorumError(
            f"recipe {options.recipe} takes no argument(s) {', '.join(unknown)}; it takes "
            f"{', '.join(p for p in accepted if p not in ('dataset', 'source'))}"
        )
    if options.recipe == "textcat.manual":
        return recipe(DATASET, source, LABELS, **options.recipe_args)
    if options.recipe == "ner.manual":
        return recipe(DATASET, "blank:en", source, NER_LABELS, **options.recipe_args)
    raise QuorumError(f"the benchmark drives textcat.manual or ner.manual, not {options.recipe!r}")


def _settings(options: StackOptions, nats_url: str, data_dir: Path, port: int = 0) -> Settings:
    return load_settings(
        {},
        nats_url=nats_url,
        data_dir=data_dir,
        host="127.0.0.1",
        port=port or options.port or _free_port(),
        workers=options.workers,
        batch_size=options.batch_size,
        dataset=DATASET,
        **_split_settings(options),
    )


@dataclass
class Prepared:
    """A NATS store with the synthetic dataset queued, ready to be copied per run.

    Queueing tens of thousands of tasks with `sync_interval: always` takes about as long
    as a benchmark run; a matrix queues them once and starts every cell on a fresh copy
    of the stopped store, so each cell starts from the same untouched queue.
    """

    options: StackOptions
    workdir: Path
    summary: LoadSummary
    load_seconds: float

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def prepare(options: StackOptions) -> Prepared:
    """Write the source, queue it into a fresh embedded NATS store, stop that server."""
    options = options.resolved()
    workdir = Path(tempfile.mkdtemp(prefix="quorum-bench-data-"))
    try:
        source = write_source(workdir / "source.jsonl", options.tasks)
        components = _components(options, source)
        nats = start_embedded(workdir / "data")
        try:
            settings = _settings(options, nats.url, workdir / "data")
            started = time.perf_counter()
            summary = asyncio.run(load_components(nats.url, components, settings))
            load_seconds = time.perf_counter() - started
        finally:
            nats.stop()
        source.unlink()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Prepared(options=options, workdir=workdir, summary=summary, load_seconds=load_seconds)


def start_stack(prepared: Prepared, workers: int | None = None) -> Stack:
    """Start NATS on a copy of `prepared`'s store and the feed workers; wait until ready."""
    options = prepared.options if workers is None else replace(prepared.options, workers=workers)
    workdir = Path(tempfile.mkdtemp(prefix="quorum-bench-"))
    nats: EmbeddedNats | None = None
    try:
        shutil.copytree(
            prepared.data_dir, workdir / "data", ignore=shutil.ignore_patterns("owner.json", "quorum.lock")
        )
        nats = start_embedded(workdir / "data")
        settings = _settings(options, nats.url, workdir / "data")
        with _output_to(workdir / "feed.log"):
            feed = start_feed(settings, nats.url)
    except BaseException:
        if nats is not None:
            nats.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Stack(
        url=feed.url,
        dataset=DATASET,
        settings=settings,
        nats=nats,
        feed=feed,
        workdir=workdir,
        summary=prepared.summary,
        load_seconds=prepared.load_seconds,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0.0 once it is gone)."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")
