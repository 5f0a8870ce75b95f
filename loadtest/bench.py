"""`python -m loadtest.bench`: start the whole stack, drive N sessions, print the figures.

Example:
    python -m loadtest.bench --sessions 50 --workers 2 --duration 20
    python -m loadtest.bench --matrix --duration 10 --json > matrix.json
    python -m loadtest.bench --serve --port 8080      # a stack for locust to drive

Every run starts its own embedded nats-server (JetStream `sync_interval: always`),
queues a synthetic source through a real recipe, starts Granian feed workers, drives
them over loopback for a fixed window and stops everything. Only answers acknowledged
with status 200 are counted. The load generator runs on the same machine as the server:
the report shows how much CPU each side used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger.errors import QuorumError
from loadtest.driver import DriverConfig, run_driver
from loadtest.profile import start_profilers
from loadtest.stack import Prepared, Stack, StackOptions, parse_assignments, prepare, start_stack

__all__ = ["bench_once", "main", "matrix", "parse_args"]

MATRIX_SESSIONS = (50, 200)
MATRIX_WORKERS = (1, 2)
# Tasks per second of run time that --tasks auto provisions; the report warns when a
# run still ran dry (then pass a bigger --tasks).
_AUTO_TASKS_PER_SECOND = 3500


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Benchmark Quorum's feed: start NATS + Granian workers, drive N annotator "
        "sessions over loopback for a fixed time, print answers/s and p50/p99 latency.",
        epilog="Example: python -m loadtest.bench --sessions 50 --workers 2 --duration 20",
    )
    parser.add_argument("--sessions", type=int, default=50, help="concurrent annotator sessions (default 50)")
    parser.add_argument("--workers", type=int, default=2, help="Granian feed workers (default 2)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds a session thinks per batch before answering (default 0: "
        "as fast as the server allows)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="ANSWERS_PER_S",
        help="offered load: pace the sessions to this many answers/s in total "
        "(default 0: closed loop, as fast as the server answers)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=10, help="tasks per get_session_questions (default 10)"
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=None,
        help=f"tasks to queue (default: {_AUTO_TASKS_PER_SECOND}/s of run time + what the sessions hold)",
    )
    parser.add_argument(
        "--recipe",
        default="textcat.manual",
        choices=("textcat.manual", "ner.manual"),
        help="recipe that queues the synthetic source (default textcat.manual: choice "
        "view, 3 labels; ner.manual tokenises with blank:en)",
    )
    overlap = parser.add_mutually_exclusive_group()
    overlap.add_argument(
        "--feed-overlap",
        dest="feed_overlap",
        action="store_true",
        default=None,
        help="every session sees every task (passed through to Quorum)",
    )
    overlap.add_argument(
        "--no-feed-overlap",
        dest="feed_overlap",
        action="store_false",
        help="each task answered once (passed through to Quorum)",
    )
    parser.add_argument(
        "--annotations-per-task",
        type=int,
        default=None,
        metavar="K",
        help="each task answered by K sessions (passed through to Quorum)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any Quorum setting, e.g. --setting ack_wait=30 (repeatable)",
    )
    parser.add_argument(
        "--recipe-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument for the recipe function (repeatable)",
    )
    parser.add_argument(
        "--client",
        default="raw",
        choices=("raw", "httpx"),
        help="HTTP client of the driver: raw (lean keep-alive HTTP/1.1, default) or httpx",
    )
    parser.add_argument(
        "--pin-driver",
        type=int,
        default=None,
        metavar="CPU",
        help="run the driver in its own process pinned to this CPU (os.sched_setaffinity)",
    )
    parser.add_argument(
        "--matrix", action="store_true", help="run sessions {50,200} x workers {1,2} and print one table"
    )
    parser.add_argument(
        "--serve", action="store_true", help="only start the stack (for locust) and wait for Ctrl+C"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="feed port (default: a free one; 8080 with --serve)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record each feed worker with py-spy during the window (collapsed "
        "stacks in DIR; summarise with python -m loadtest.profile DIR/*.txt)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    for name in ("sessions", "workers", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.duration <= 0 or args.warmup < 0 or args.think < 0 or args.rate < 0:
        parser.error("--duration must be positive; --warmup, --think and --rate must not be negative")
    return args


def auto_tasks(args: argparse.Namespace, sessions: int) -> int:
    """Enough tasks that the queue does not run dry at `_AUTO_TASKS_PER_SECOND` answers/s.

    Without overlap every answer uses up a task; with `annotations_per_task=k` every k
    answers do; with full overlap every session walks the whole queue on its own, so it
    needs only what the busiest session answers (three times the average, for skew).
    """
    seconds = args.warmup + args.duration
    answers = seconds * (min(_AUTO_TASKS_PER_SECOND, args.rate) if args.rate else _AUTO_TASKS_PER_SECOND)
    held = sessions * args.batch_size
    if args.feed_overlap:
        needed = 3 * answers / sessions + 2 * args.batch_size
    elif args.annotations_per_task:
        needed = answers / args.annotations_per_task + held
    else:
        needed = answers + held
    return max(1000, int(needed))


def _stack_options(args: argparse.Namespace, sessions: int, workers: int) -> StackOptions:
    either: dict[str, Any] = {}
    if args.feed_overlap is not None:
        either["feed_overlap"] = args.feed_overlap
    if args.annotations_per_task is not None:
        either["annotations_per_task"] = args.annotations_per_task
    tasks = args.tasks if args.tasks is not None else auto_tasks(args, sessions)
    return StackOptions(
        workers=workers,
        tasks=tasks,
        recipe=args.recipe,
        batch_size=args.batch_size,
        settings=parse_assignments(args.setting, "--setting"),
        recipe_args=parse_assignments(args.recipe_arg, "--recipe-arg"),
        either=either,
        port=args.port,
    )


def bench_once(
    args: argparse.Namespace, sessions: int, workers: int, prepared: Prepared | None = None
) -> dict[str, Any]:
    """Start a fresh stack (on a copy of `prepared`'s queue), drive it, stop it."""
    own = prepared is None
    if prepared is None:
        prepared = prepare(_stack_options(args, sessions, workers))
    try:
        stack = start_stack(prepared, workers=workers)
        try:
            config = DriverConfig(
                url=stack.url,
                sessions=sessions,
                duration=args.duration,
                warmup=args.warmup,
                think=args.think,
                rate=args.rate,
                batch_size=prepared.options.batch_size,
                client=args.client,
                watch_pids=stack.pids(),
                pin_cpu=args.pin_driver,
            )
            profilers = (
                start_profilers(
                    args.profile,
                    stack.pids()["workers"],
                    args.warmup,
                    args.duration,
                    tag=f"s{sessions}-w{workers}",
                )
                if args.profile
                else None
            )
            result = run_driver(config)
            if profilers is not None:
                result["profiles"] = profilers.finish()
            result["server_log_errors"] = stack.log_errors()
            result["server_log_tail"] = stack.log_tail(5) if result["server_log_errors"] else []
        finally:
            stack.stop()
    finally:
        if own:
            prepared.remove()
    options = prepared.options
    result.update(
        workers=workers,
        recipe=options.recipe,
        batch_size=options.batch_size,
        tasks_queued=prepared.summary.queued,
        load_seconds=round(prepared.load_seconds, 1),
        sync_interval="always",
        settings={k: str(v) for k, v in options.settings.items()},
        recipe_args={k: str(v) for k, v in options.recipe_args.items()},
        overlap={
            k: v
            for k, v in (
                ("feed_overlap", args.feed_overlap),
                ("annotations_per_task", args.annotations_per_task),
            )
            if v is not None
        },
        loadavg_at_end=[round(x, 2) for x in os.getloadavg()],
    )
    return result


def matrix(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every combination of MATRIX_SESSIONS x MATRIX_WORKERS, each on a fresh copy of one queue."""
    print("… queueing the synthetic tasks once for every cell", file=sys.stderr, flush=True)
    prepared = prepare(_stack_options(args, max(MATRIX_SESSIONS), max(MATRIX_WORKERS)))
    results = []
    try:
        for sessions in MATRIX_SESSIONS:
            for workers in MATRIX_WORKERS:
                print(f"… {sessions} sessions, {workers} worker(s)", file=sys.stderr, flush=True)
                results.append(bench_once(args, sessions, workers, prepared))
    finally:
        prepared.remove()
    return results


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ceiling(result: dict[str, Any]) -> str:
    """Answers/s the cores could carry at this CPU cost per answer, server and driver.

    Only for closed-loop runs: an answer costs more CPU at low load (fewer requests per
    event-loop wake-up, fewer messages per socket write), so a paced run's cost would
    understate the ceiling.
    """
    per_answer = result["server_cpu_ms_per_answer"]
    if not per_answer or result.get("offered_rate") or result["think_s"]:
        return ""
    driver_per_answer = result["cpu_seconds"].get("driver", 0.0) * 1000 / max(result["answers"], 1)
    ceiling = result["cores"] * 1000 / (per_answer + driver_per_answer)
    return f"; were CPU the only limit, {result['cores']} cores would carry ~{ceiling:,.0f} answers/s"


def _load_shape(result: dict[str, Any]) -> str:
    shape = f"think {result['think_s']:g} s"
    if result.get("offered_rate"):
        return shape + f", offered {result['offered_rate']:,.0f} answers/s"
    return shape + ", closed loop"


def _non_200(endpoint: dict[str, Any]) -> int:
    return int(endpoint["requests"]) - int(endpoint["ok"])


def _caveats(result: dict[str, Any]) -> list[str]:
    notes = []
    cpu = result["cpu_seconds"]
    available = result["cores"] * result["duration_s"]
    driver_share = cpu.get("driver", 0.0) / available if available else 0.0
    where = (
        f"its own process pinned to CPU {result['driver_pinned_cpu']}"
        if result["driver_pinned_cpu"] is not None
        else "this process"
    )
    notes.append(
        f"the load generator ({where}) shares the machine's {result['cores']} cores with the server: "
        f"it used {driver_share:.0%} of them; other processes used {cpu.get('other', 0.0) / available:.0%}"
        if available
        else "the load generator shares the machine's cores with the server"
    )
    rate = result.get("offered_rate")
    if rate and result["answers_per_s"] < 0.95 * rate:
        notes.append(
            f"the server kept up with {result['answers_per_s'] / rate:.0%} of the offered "
            f"{rate:,.0f} answers/s: it is saturated at this load"
        )
    if result["empty_batches"]:
        notes.append(
            f"{result['empty_batches']} get_session_questions calls came back empty: the "
            "queue ran dry or hit max_ack_pending, so answers/s understates; pass --tasks"
        )
    bad = [f"{path}: {_non_200(ep)} non-200" for path, ep in result["endpoints"].items() if _non_200(ep)]
    if bad:
        notes.append("errors: " + "; ".join(bad) + " (" + " | ".join(result["error_samples"][:2]) + ")")
    if result["server_log_errors"]:
        tail = result["server_log_tail"][-1][:300] if result["server_log_tail"] else ""
        notes.append(f"the feed workers logged {result['server_log_errors']} errors; last: {tail}")
    if result["session_failures"]:
        notes.append("sessions failed: " + "; ".join(result["session_failures"]))
    return notes


def render(result: dict[str, Any]) -> str:
    """One run as text for a terminal."""
    overlap = ", ".join(f"{k}={v}" for k, v in result["overlap"].items()) or "default routing"
    cpu = result["cpu_seconds"]
    lines = [
        f"Quorum feed benchmark: {result['recipe']}, {result['sessions']} sessions, "
        f"{result['workers']} worker(s), batch {result['batch_size']}, {overlap}",
        f"  {result['duration_s']:g} s measured after {result['warmup_s']:g} s warm-up, "
        f"{_load_shape(result)}, client {result['client']}; embedded NATS with sync_interval: always; "
        f"{result['tasks_queued']:,} tasks queued in {result['load_seconds']} s",
        "",
        f"  answers/s   {result['answers_per_s']:>10,.1f}   ({result['answers']:,} answers acknowledged "
        "with 200 inside the window)",
        f"  requests/s  {result['requests_per_s']:>10,.1f}",
        f"  server CPU  {_ms(result['server_cpu_ms_per_answer'], 3):>10} ms per answer "
        f"(workers + nats-server){_ceiling(result)}",
        "",
        f"  {'endpoint':<24}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'non-200':>9}",
    ]
    for path, ep in result["endpoints"].items():
        lines.append(
            f"  {path:<24}{ep['requests']:>9,}{ep['requests_per_s']:>9,.1f}{_ms(ep['p50_ms']):>9}"
            f"{_ms(ep['p90_ms']):>9}{_ms(ep['p99_ms']):>9}{_ms(ep['max_ms']):>9}{_non_200(ep):>9}"
        )
    lines += [
        "",
        f"  CPU core-seconds in the window ({result['cores']} cores x {result['duration_s']:g} s = "
        f"{result['cores'] * result['duration_s']:g} available): "
        + ", ".join(
            f"{k} {cpu[k]:.1f}"
            for k in ("workers", "nats", "granian", "driver", "other", "irq", "steal")
            if k in cpu
        ),
        "",
    ]
    lines += [f"  note: {note}" for note in _caveats(result)]
    for profile in result.get("profiles", []):
        lines.append(f"  profile: {profile}")
    return "\n".join(lines)


def render_matrix(results: list[dict[str, Any]]) -> str:
    """The matrix as one table."""
    header = (
        f"{'sessions':>8}{'workers':>8}{'answers/s':>11}{'req/s':>9}"
        f"{'q p50':>8}{'q p99':>8}{'a p50':>8}{'a p99':>8}{'errors':>8}{'empty':>7}"
        f"{'ms/ans':>8}{'srv cpu':>9}{'drv cpu':>9}{'other':>7}{'irq':>6}"
    )
    lines = [
        "Quorum feed benchmark matrix (latencies in ms; q = /get_session_questions, a = /give_answers;",
        "cpu = share of all cores in the window, other = everyone else's processes, irq = interrupts",
        "and softirqs such as loopback networking; ms/ans = server CPU per acknowledged answer;",
        "NATS sync_interval: always)",
        header,
    ]
    for r in results:
        q, a = r["endpoints"]["/get_session_questions"], r["endpoints"]["/give_answers"]
        cpu = r["cpu_seconds"]
        available = r["cores"] * r["duration_s"]
        server = cpu.get("workers", 0) + cpu.get("nats", 0) + cpu.get("granian", 0)
        lines.append(
            f"{r['sessions']:>8}{r['workers']:>8}{r['answers_per_s']:>11,.1f}{r['requests_per_s']:>9,.1f}"
            f"{_ms(q['p50_ms']):>8}{_ms(q['p99_ms']):>8}{_ms(a['p50_ms']):>8}{_ms(a['p99_ms']):>8}"
            f"{_non_200(q) + _non_200(a):>8}{r['empty_batches']:>7}"
            f"{_ms(r['server_cpu_ms_per_answer'], 3):>8}"
            f"{server / available:>9.0%}{cpu.get('driver', 0) / available:>9.0%}"
            f"{cpu.get('other', 0) / available:>7.0%}{cpu.get('irq', 0) / available:>6.0%}"
        )
    first = results[0]
    lines += [
        "",
        f"{first['recipe']}, batch {first['batch_size']}, {first['duration_s']:g} s per cell, "
        f"{_load_shape(first)}, client {first['client']}; the driver shares the cores "
        "with the server (drv cpu).",
    ]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> None:
    """Start the stack and keep it up until Ctrl+C or SIGTERM (for locust)."""
    if not args.port:
        args.port = 8080
    prepared = prepare(_stack_options(args, args.sessions, args.workers))
    try:
        stack: Stack = start_stack(prepared)
    finally:
        prepared.remove()
    stop = False

    def _terminate(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _terminate)
    print(
        f"Quorum benchmark stack at {stack.url} ({stack.summary}); Ctrl+C stops it.\n"
        f"  locust -f loadtest/locustfile.py --host {stack.url}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop and stack.feed.process.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.serve:
            serve(args)
            return 0
        if args.matrix:
            results = matrix(args)
            print(json.dumps(results, indent=2) if args.json else render_matrix(results))
            return 0
        result = bench_once(args, args.sessions, args.workers)
    except QuorumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
