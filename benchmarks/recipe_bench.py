"""Benchmark for the recipe runner: start-up, answer throughput with hooks, `update` lag.

Every server is `quorum <recipe> …` in a subprocess, as a user starts it: an embedded
nats-server (`NATS_URL` unset) on a fresh data dir in a temporary directory, the recipe
runner in the parent, Granian feed workers on a free loopback port. Three steps
(`--steps`, default all):

- **startup**: seconds from launching `quorum textcat.manual bench SOURCE --label A,B`
  to the first `/get_session_questions` that returns a task, for each `--lines` size of
  JSONL source (short distinct texts). The runner pulls the stream lazily, so the sizes
  should start about equally fast, in under 2 s. `--repeats` runs each (min and median).
- **throughput**: answers/s of `bench.plain` (no hooks) and `bench.hooked` (a cheap
  `validate_answer` and a `before_db` that adds a field; both run in the feed workers),
  recipes of a `-F` file written here, served with `--workers`. `--throughput-sessions`
  sessions each loop get_session_questions → give_answers (the whole batch) for
  `--duration` seconds after `--warmup`; the hooks should cost under 10 %.
- **lag**: `bench.learner`, whose `update(answers)` appends the time and each answer's
  `_task_hash` to a file. `--sessions` sessions answer one batch at a time for
  `--duration` seconds; the driver notes when each `/give_answers` returned 200. After the
  learner caught up (or `--drain` seconds), the server is stopped with SIGINT and the two
  are joined: p50/p99/max of update time − ack time, and how many answers reached update.

    python benchmarks/recipe_bench.py
    python benchmarks/recipe_bench.py --lines 10,10000000 --repeats 3 --sessions 200 --json
    python benchmarks/recipe_bench.py --steps throughput --rounds 3 --workers 2
    python benchmarks/recipe_bench.py --lines 10,100000 --repeats 1 --duration 5 --sessions 20

`QUORUM_*` variables in the environment reach every server as they would a user's:
`QUORUM_QUEUE_DEPTH=2000` takes the runner's lazy top-up (every 0.5 s, four batches per
session by default) out of the throughput figures; the report says how many
get_session_questions came back empty because the queue had run dry. A lag below zero is
an update that ran before the driver had read the 200 of its answers.

A server that fails to start is an error with the end of its output. Every process a
server started (nats-server, Granian and its workers) is gone when the benchmark ends,
however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.connection import connect  # noqa: E402
from ledger.events import AnswerRecorded  # noqa: E402
from ledger.natsd import free_port, running_embedded_url  # noqa: E402
from ledger.tailing import follow_events  # noqa: E402

DATASET = "bench"
UPDATE_LOG_ENV = "QUORUM_BENCH_UPDATE_LOG"
STEPS = ("startup", "throughput", "lag")
# What a server prints when its first batch is queued, and when a feed worker is connected.
MARKS = {"queued": " queued", "worker_ready": '"worker_ready"'}

RECIPE_FILE = f'''"""Recipes of benchmarks/recipe_bench.py."""

import os
import time

import quorum
from quorum.compat.prodigy.components.loaders import JSONL

ARGS = {{
    "dataset": ("Dataset to save answers to", "positional", None, str),
    "source": ("JSONL source", "positional", None, str),
}}


def _base(dataset, source):
    return {{"dataset": dataset, "view_id": "text", "stream": JSONL(source)}}


@quorum.recipe("bench.plain", **ARGS)
def plain(dataset, source):
    """No hooks."""
    return _base(dataset, source)


@quorum.recipe("bench.hooked", **ARGS)
def hooked(dataset, source):
    """A cheap validate_answer and a before_db that adds a field."""

    def validate_answer(eg):
        if eg.get("answer") == "reject":
            raise ValueError("bench.hooked refuses reject")
        assert isinstance(eg.get("text"), str) and eg["text"], "an answer needs its text"

    def before_db(examples):
        for eg in examples:
            eg["bench_checked"] = True
        return examples

    return {{**_base(dataset, source), "validate_answer": validate_answer, "before_db": before_db}}


@quorum.recipe("bench.learner", **ARGS)
def learner(dataset, source):
    """update() notes when each answer reached it: `<time> <task hash>` per line."""
    path = os.environ.get("{UPDATE_LOG_ENV}")

    def update(answers):
        now = time.time()
        with open(path, "a") as out:
            out.write("".join(f"{{now!r}} {{eg['_task_hash']}}\\n" for eg in answers))
        return 0.0

    return {{**_base(dataset, source), "update": update}}
'''

_WORDS = ("council", "markets", "budget", "bridge", "storm", "rally", "strike", "vote", "court", "rail")


class BenchError(Exception):
    """The benchmark cannot go on (a server that did not start, a hook that did not run)."""


# -- sources ----------------------------------------------------------------------------


def write_source(path: Path, lines: int, chunk: int = 200_000) -> float:
    """`lines` short distinct JSONL texts, written in big chunks; returns seconds taken."""
    start = time.perf_counter()
    n = len(_WORDS)
    with path.open("w") as out:
        for first in range(0, lines, chunk):
            out.write(
                "".join(
                    f'{{"text":"Story {i}: {_WORDS[i % n]} {_WORDS[(i // n) % n]} news"}}\n'
                    for i in range(first, min(first + chunk, lines))
                )
            )
    return time.perf_counter() - start


# -- processes --------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of `pid`, or None when it is gone."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rest[0], int(rest[1]), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> dict[int, int]:
    """Every process below `pid`, with its start time (so a reused pid is never killed)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), []):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def _alive(pid: int, started: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[2] == started and stat[0] != "Z"


class Server:
    """`quorum <recipe> …` in a subprocess, on a free port and a fresh data dir.

    Its output goes to `<name>.log`, read line by line so that `marks` can say when it
    said its first batch was queued and a feed worker connected (seconds after launch).
    """

    def __init__(self, work: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = work / name
        self.log_path = work / f"{name}.log"
        self.marks: dict[str, float] = {}
        command = [
            sys.executable,
            "-c",
            "from quorum.cli import main; main()",
            *args,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        clean = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "QUORUM_NATS_URL")}
        self.launched = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=work,
            env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("wb") as log:
            for line in self.process.stdout:
                now = time.perf_counter() - self.launched
                text = line.decode(errors="replace")
                for mark, needle in MARKS.items():
                    if mark not in self.marks and needle in text:
                        self.marks[mark] = now
                log.write(line)
                log.flush()

    def tail(self, chars: int = 3000) -> str:
        time.sleep(0.2)  # the last lines of a process that just exited
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def _failed(self, why: str) -> BenchError:
        return BenchError(f"{self.name}: {why}; the end of its output:\n{self.tail()}")

    def first_tasks(self, timeout: float) -> float:
        """Seconds from launch until `/get_session_questions` returns at least one task."""
        deadline = self.launched + timeout
        with httpx.Client(base_url=self.url, timeout=httpx.Timeout(10, connect=0.5)) as client:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise self._failed(f"the server exited with code {self.process.returncode} at start")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    got = client.post("/get_session_questions?session=probe", json={})
                    if got.status_code == 200 and got.json()["tasks"]:
                        return time.perf_counter() - self.launched
                time.sleep(0.01)
        raise self._failed(f"no task was served within {timeout:.0f} s of launch")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT (Ctrl+C) and wait; then kill whatever it started that outlived it."""
        tree = _descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.name}: no exit {timeout:.0f} s after SIGINT; killed", file=sys.stderr)
                self.process.kill()
                self.process.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p, s) for p, s in tree.items()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid, started in tree.items():
            if _alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(5)  # its output, to the last line


class Servers:
    """The servers of this run, each stopped once, all of them in a `finally`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.running: list[Server] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Server:
        server = Server(self.work, name, args, env)
        self.running.append(server)
        return server

    def stop(self, server: Server) -> None:
        # A second Ctrl+C must not leave a server half stopped (its data dir then goes
        # while it still writes there): it is stopped to the end, interrupted or not.
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.stop()
            self.running.remove(server)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def stop_all(self) -> None:
        while self.running:
            self.stop(self.running[-1])


# -- the load ---------------------------------------------------------------------------


@dataclass
class Drive:
    """What N sessions got done."""

    answers_in_window: int = 0
    answers_total: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    empty_batches: int = 0
    first_error: str | None = None


async def drive(
    url: str,
    sessions: int,
    warmup: float,
    duration: float,
    prefix: str,
    on_ack: Callable[[list[dict[str, Any]], float], None] | None = None,
    drain: float = 30.0,
) -> Drive:
    """`sessions` sessions, each get_session_questions → give_answers (the whole batch,
    accepted) until the window closes; answers acknowledged with 200 inside it count."""
    result = Drive()
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        start = time.perf_counter()
        window_start, window_end = start + warmup, start + warmup + duration

        def failed(what: str, detail: str) -> None:
            result.errors[what] += 1
            result.first_error = result.first_error or detail[:500]

        async def session(name: str) -> None:
            while time.perf_counter() < window_end:
                try:
                    got = await client.post(f"/get_session_questions?session={name}", json={})
                    result.requests["get_session_questions"] += 1
                    if got.status_code != 200:
                        failed(f"get_session_questions {got.status_code}", got.text)
                        await asyncio.sleep(0.1)
                        continue
                    tasks = got.json()["tasks"]
                    if not tasks:
                        result.empty_batches += 1
                        await asyncio.sleep(0.05)
                        continue
                    answers = [{**task, "answer": "accept"} for task in tasks]
                    response = await client.post(f"/give_answers?session={name}", json={"answers": answers})
                    acked, done = time.time(), time.perf_counter()
                    result.requests["give_answers"] += 1
                    if response.status_code != 200:
                        failed(f"give_answers {response.status_code}", response.text)
                        continue
                except httpx.HTTPError as exc:
                    failed(type(exc).__name__, repr(exc))
                    await asyncio.sleep(0.1)
                    continue
                if on_ack is not None:
                    on_ack(tasks, acked)
                result.answers_total += len(answers)
                if window_start <= done <= window_end:
                    result.answers_in_window += len(answers)

        jobs = [asyncio.create_task(session(f"{prefix}{i}")) for i in range(sessions)]
        try:
            _, late = await asyncio.wait(jobs, timeout=warmup + duration + drain)
            if late:
                failed("still in flight after the window", f"{len(late)} cancelled {drain:.0f} s after it")
        finally:  # late, or the run interrupted: nothing outlives the client
            for job in jobs:
                job.cancel()
            for outcome in await asyncio.gather(*jobs, return_exceptions=True):
                if isinstance(outcome, Exception):
                    failed(type(outcome).__name__, repr(outcome))
    return result


def _drive_figures(run: Drive, duration: float) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "answers_per_s": round(run.answers_in_window / duration, 1),
        "answers_in_window": run.answers_in_window,
        "answers_total": run.answers_total,
        "requests": dict(run.requests),
        "empty_batches": run.empty_batches,
    }
    if run.errors:
        figures["errors"] = dict(run.errors)
        figures["first_error"] = run.first_error
    return figures


# -- the steps --------------------------------------------------------------------------


def step_startup(servers: Servers, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for lines in args.lines:
        source = work / f"source-{lines}.jsonl"
        seconds = write_source(source, lines)
        runs: list[float] = []
        marks: dict[str, list[float]] = {mark: [] for mark in MARKS}
        for repeat in range(args.repeats):
            server = servers.start(
                f"startup-{lines}-{repeat}",
                ["textcat.manual", DATASET, str(source), "--label", "A,B"],
            )
            try:
                runs.append(server.first_tasks(args.start_timeout))
            finally:
                servers.stop(server)
            for mark, seconds_in in server.marks.items():
                marks[mark].append(seconds_in)
            _progress(f"startup {lines:,} lines, run {repeat + 1}: {runs[-1]:.2f} s")
        result[str(lines)] = {
            "lines": lines,
            "source_mb": round(source.stat().st_size / 1e6, 1),
            "write_seconds": round(seconds, 1),
            "runs_s": [round(s, 3) for s in runs],
            "min_s": round(min(runs), 3),
            "median_s": round(statistics.median(runs), 3),
            # From launch until the server said so, the median: its first batch queued
            # (CLI, NATS and the runner's first top-up) and a feed worker connected.
            **{f"{mark}_median_s": round(statistics.median(v), 3) for mark, v in marks.items() if v},
        }
        source.unlink()
    return result


def _serving(args: argparse.Namespace) -> list[str]:
    return ["-F", str(args.recipe_file), "--workers", str(args.workers), "--batch-size", str(args.batch_size)]


def _check_validate_answer(url: str) -> None:
    """`bench.hooked`'s validate_answer runs in the workers: a reject is refused (422)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 30
        while not (tasks := client.post("/get_session_questions?session=hookcheck", json={}).json()["tasks"]):
            if time.monotonic() > deadline:
                raise BenchError("bench.hooked served no task to check validate_answer with in 30 s")
            time.sleep(0.1)
        answer = {**tasks[0], "answer": "reject"}
        got = client.post("/give_answers?session=hookcheck", json={"answers": [answer]})
        if got.status_code != 422 or got.json().get("error") != "recipe_rejected":
            raise BenchError(
                f"bench.hooked's validate_answer did not refuse a reject: {got.status_code} {got.text[:500]}"
            )


async def _first_stored_answer(data_dir: Path) -> dict[str, Any]:
    url = running_embedded_url(data_dir)
    if url is None:
        raise BenchError(f"no embedded NATS runs for {data_dir}")
    nc = await connect(url)
    try:
        entries = follow_events(nc, dataset=DATASET, kind="answer_recorded", start_seq=1, follow=False)
        async with contextlib.aclosing(entries):
            async for entry in entries:
                for event in entry.events:
                    if isinstance(event, AnswerRecorded):
                        return dict(event.example)
    finally:
        await nc.close()
    raise BenchError("bench.hooked: the ledger holds no answer")


def _check_before_db(server: Server) -> None:
    """`bench.hooked`'s before_db ran: the stored answer has the field it adds."""
    example = asyncio.run(asyncio.wait_for(_first_stored_answer(server.data_dir), 30))
    if example.get("bench_checked") is not True:
        raise BenchError(f"bench.hooked's before_db did not run: the stored answer is {example}")


def step_throughput(servers: Servers, args: argparse.Namespace) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"bench.plain": [], "bench.hooked": []}
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        # Every other round hooked first, so that neither always runs on a warmer machine.
        for recipe in list(rates)[:: -1 if round_ % 2 else 1]:
            server = servers.start(
                f"throughput-{recipe.split('.')[1]}-{round_}",
                [recipe, DATASET, str(args.tasks_source), *_serving(args)],
            )
            try:
                server.first_tasks(args.start_timeout)
                if recipe == "bench.hooked":
                    _check_validate_answer(server.url)
                run = asyncio.run(
                    drive(server.url, args.throughput_sessions, args.warmup, args.duration, "u")
                )
                if recipe == "bench.hooked":
                    _check_before_db(server)
            finally:
                servers.stop(server)
            figures = {"recipe": recipe, "round": round_ + 1, **_drive_figures(run, args.duration)}
            runs.append(figures)
            rates[recipe].append(figures["answers_per_s"])
            _progress(f"throughput {recipe} round {round_ + 1}: {figures['answers_per_s']:,.1f} answers/s")
    plain, hooked = (statistics.median(r) for r in rates.values())
    return {
        "sessions": args.throughput_sessions,
        "workers": args.workers,
        "duration_s": args.duration,
        "plain_answers_per_s": plain,
        "hooked_answers_per_s": hooked,
        "overhead_pct": round((plain - hooked) / plain * 100, 1) if plain else None,
        "runs": runs,
    }


class UpdateLog:
    """The learner's `<time> <task hash>` lines, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.times: dict[str, float] = {}
        self.calls: set[float] = set()

    def read(self) -> None:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
            self.offset += len(data)
            *lines, self.rest = (self.rest + data).split(b"\n")
            for line in lines:
                when, task_hash = line.split()
                self.times.setdefault(str(int(task_hash)), float(when))
                self.calls.add(float(when))


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def step_lag(servers: Servers, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    log = UpdateLog(work / "updates.log")
    env = {UPDATE_LOG_ENV: str(log.path)}
    if args.update_idle is not None:
        env["QUORUM_UPDATE_IDLE"] = str(args.update_idle)
    acks: dict[str, float] = {}

    def on_ack(tasks: list[dict[str, Any]], acked: float) -> None:
        for task in tasks:
            acks[str(int(task["_task_hash"]))] = acked

    server = servers.start("lag", ["bench.learner", DATASET, str(args.tasks_source), *_serving(args)], env)
    try:
        server.first_tasks(args.start_timeout)
        run = asyncio.run(drive(server.url, args.sessions, 0.0, args.duration, "s", on_ack))
        load_ended = time.perf_counter()
        while time.perf_counter() < load_ended + args.drain:
            log.read()
            if acks.keys() <= log.times.keys():
                break
            time.sleep(0.1)
        caught_up = time.perf_counter() - load_ended
    finally:
        servers.stop(server)
    log.read()
    lags = [log.times[h] - acked for h, acked in acks.items() if h in log.times]
    result: dict[str, Any] = {
        "sessions": args.sessions,
        "batch_size": args.batch_size,
        "update_idle_s": args.update_idle,
        "duration_s": args.duration,
        "answers_acked": len(acks),
        "answers_reached_update": len(lags),
        "answers_in_update": len(log.times),
        "update_calls": len(log.calls),
        "catch_up_s": round(caught_up, 2),
        "driver": _drive_figures(run, args.duration),
    }
    if lags:
        result.update(
            p50_ms=round(statistics.median(lags) * 1000, 1),
            p99_ms=round(_percentile(lags, 0.99) * 1000, 1),
            max_ms=round(max(lags) * 1000, 1),
            min_ms=round(min(lags) * 1000, 1),
        )
    return result


# -- the report -------------------------------------------------------------------------


def _progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _trouble(figures: dict[str, Any]) -> str:
    """Errors and empty batches of a load, if any ("" when none)."""
    parts = [f"{what}: {n:,}" for what, n in figures.get("errors", {}).items()]
    if figures["empty_batches"]:
        asked = figures["requests"].get("get_session_questions", 0)
        parts.append(
            f"{figures['empty_batches']:,} of {asked:,} get_session_questions came back empty "
            "(the runner had not topped the queue up)"
        )
    if figures.get("first_error"):
        parts.append(f"first error: {figures['first_error']}")
    return "; ".join(parts)


def report(result: dict[str, Any]) -> None:
    if startup := result.get("startup"):
        print("startup: launch of textcat.manual → first task served (queued, worker ready: when it said so)")
        print(
            f"  {'lines':>12}  {'source':>9}  {'min':>8}  {'median':>8}  {'queued':>8}  {'worker':>8}  runs"
        )
        for size in startup.values():
            print(
                f"  {size['lines']:>12,}  {size['source_mb']:>6.1f} MB  {size['min_s']:>6.2f} s  "
                f"{size['median_s']:>6.2f} s  {size.get('queued_median_s', float('nan')):>6.2f} s  "
                f"{size.get('worker_ready_median_s', float('nan')):>6.2f} s  {len(size['runs_s'])}"
            )
    if throughput := result.get("throughput"):
        print(
            f"throughput: {throughput['sessions']} sessions, {throughput['workers']} workers, "
            f"{throughput['duration_s']:g} s window (median of {len(throughput['runs']) // 2} round(s))"
        )
        print(f"  bench.plain   {throughput['plain_answers_per_s']:>10,.1f} answers/s")
        print(
            f"  bench.hooked  {throughput['hooked_answers_per_s']:>10,.1f} answers/s   "
            f"overhead {throughput['overhead_pct']} %"
        )
        for run in throughput["runs"]:
            if trouble := _trouble(run):
                print(f"  ! {run['recipe']} round {run['round']}: {trouble}")
    if lag := result.get("lag"):
        idle = "default" if lag["update_idle_s"] is None else f"{lag['update_idle_s']:g} s"
        print(
            f"update lag: {lag['sessions']} sessions, batch size {lag['batch_size']}, "
            f"QUORUM_UPDATE_IDLE {idle}, {lag['duration_s']:g} s"
        )
        print(
            f"  answers acked {lag['answers_acked']:,}, reached update {lag['answers_reached_update']:,} "
            f"({lag['update_calls']:,} update calls; all in {lag['catch_up_s']} s after the load)"
        )
        if "p50_ms" in lag:
            print(
                f"  update − ack  p50 {lag['p50_ms']} ms  p99 {lag['p99_ms']} ms  "
                f"max {lag['max_ms']} ms  (min {lag['min_ms']} ms; < 0: update ran before the driver "
                f"read the 200)"
            )
        if trouble := _trouble(lag["driver"]):
            print(f"  ! {trouble}")


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def _steps(text: str) -> list[str]:
    steps = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}"
        )
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=_steps, default=list(STEPS), help="comma-separated: startup,throughput,lag"
    )
    parser.add_argument(
        "--lines", type=_sizes, default=[10, 10_000_000], help="startup: source sizes in lines (10,10000000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="startup: launches per size")
    parser.add_argument(
        "--start-timeout", type=float, default=120.0, help="seconds a server may take to serve"
    )
    parser.add_argument("--tasks", type=int, default=1_000_000, help="throughput, lag: tasks in the source")
    parser.add_argument("--workers", type=int, default=2, help="throughput, lag: Granian feed workers")
    parser.add_argument("--batch-size", type=int, default=10, help="throughput, lag: tasks per batch")
    parser.add_argument("--throughput-sessions", type=int, default=8, help="throughput: concurrent sessions")
    parser.add_argument("--rounds", type=int, default=1, help="throughput: plain/hooked pairs (median)")
    parser.add_argument("--warmup", type=float, default=2.0, help="throughput: seconds before the window")
    parser.add_argument("--duration", type=float, default=20.0, help="throughput, lag: seconds of load")
    parser.add_argument("--sessions", type=int, default=200, help="lag: concurrent sessions")
    parser.add_argument(
        "--update-idle", type=float, default=None, help="lag: QUORUM_UPDATE_IDLE (default: the server's)"
    )
    parser.add_argument(
        "--drain", type=float, default=30.0, help="lag: seconds to wait for update to catch up"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    # Ctrl+C and SIGTERM end the run through the `finally` that stops the servers. An
    # ignored SIGINT (a background job of a script) is made live again: the servers would
    # inherit it and could not be stopped cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="quorum-recipe-bench-") as tmp:
        work = Path(tmp)
        servers = Servers(work)
        try:
            if "startup" in args.steps:
                result["startup"] = step_startup(servers, work, args)
            if "throughput" in args.steps or "lag" in args.steps:
                args.recipe_file = work / "recipe.py"
                args.recipe_file.write_text(RECIPE_FILE)
                args.tasks_source = work / "tasks.jsonl"
                write_source(args.tasks_source, args.tasks)
            if "throughput" in args.steps:
                result["throughput"] = step_throughput(servers, args)
            if "lag" in args.steps:
                result["lag"] = step_lag(servers, work, args)
        except BenchError as exc:
            print(f"✘ {exc}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("✘ interrupted", file=sys.stderr)
            sys.exit(130)
        finally:
            servers.stop_all()
            # Nor cut the removal of the temporary directory short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()
