"""The benchmark's load: N annotator sessions, each a bounded loop over loopback HTTP.

A session asks for questions, optionally thinks, answers the whole batch (a mix of
accept / reject / ignore) and asks again, until the measurement window closes. Only
answers in a `/give_answers` response with status 200 count; every other status is
tallied per endpoint. The run is bounded twice: sessions stop issuing requests when
the window closes, and a hard deadline cancels whatever is still in flight after that.

CPU use of the server's processes, of the driver and of the whole machine is read from
`/proc` at both edges of the window, so a report can say who used the cores.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from loadtest.client import make_client
from loadtest.stack import cpu_seconds

__all__ = ["DriverConfig", "EndpointStats", "config_dict", "run_driver", "run_driver_in_process"]

QUESTIONS = "/get_session_questions"
ANSWERS = "/give_answers"
# How long requests still in flight at the end of the window may take to finish.
_DRAIN_SECONDS = 10.0

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


@dataclass
class DriverConfig:
    """What load to apply, for how long, and which processes to account CPU for."""

    url: str
    sessions: int
    duration: float
    warmup: float = 2.0
    think: float = 0.0
    # Offered answers/s over all sessions (0: as fast as the server answers). Each
    # session then starts a batch every `sessions * batch_size / rate` seconds.
    rate: float = 0.0
    batch_size: int = 10
    client: str = "raw"
    mix: tuple[float, float, float] = (0.7, 0.2, 0.1)
    seed: int = 1
    session_prefix: str = "u"
    timeout: float = 10.0
    watch_pids: dict[str, list[int]] = field(default_factory=dict)
    pin_cpu: int | None = None


@dataclass
class EndpointStats:
    """Requests to one endpoint that completed inside the measurement window."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        total = sum(self.statuses.values())
        return {
            "requests": total,
            "ok": self.statuses.get(200, 0),
            "requests_per_s": round(total / seconds, 1) if seconds else 0.0,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1], 2) if ordered else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


@dataclass
class _Tally:
    start: float
    end: float
    questions: EndpointStats = field(default_factory=EndpointStats)
    answers: EndpointStats = field(default_factory=EndpointStats)
    answers_acked: int = 0
    answers_acked_total: int = 0
    tasks_received: int = 0
    empty_batches: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record(self, stats: EndpointStats, sent: float, done: float, status: int) -> bool:
        """Record a request that completed at `done`; True if it fell inside the window."""
        if not self.start <= done <= self.end:
            return False
        stats.statuses[status] += 1
        if status == 200:
            stats.latencies_ms.append((done - sent) * 1000)
        return True


def _annotate(task: dict[str, Any], rng: random.Random, mix: tuple[float, float, float]) -> dict[str, Any]:
    """The task exactly as received, plus an answer (and a choice for the choice view)."""
    answer = rng.choices(("accept", "reject", "ignore"), weights=mix)[0]
    annotated = dict(task)
    annotated["answer"] = answer
    options = task.get("options")
    if isinstance(options, list) and options:
        annotated["accept"] = [rng.choice(options)["id"]] if answer == "accept" else []
    return annotated


async def _session(name: str, config: DriverConfig, tally: _Tally, rng: random.Random) -> None:
    client = make_client(config.client, config.url, config.timeout)
    loop = asyncio.get_running_loop()
    questions_path = f"{QUESTIONS}?session={name}"
    answers_path = f"{ANSWERS}?session={name}"
    period = config.sessions * config.batch_size / config.rate if config.rate else 0.0
    next_cycle = loop.time() + rng.uniform(0, period)  # spread the sessions' phases
    try:
        while loop.time() < tally.end:
            if period:
                # Paced: a session that fell behind starts at once and does not catch up
                # with a burst, so a saturated server shows as answers/s below --rate.
                await asyncio.sleep(max(0.0, next_cycle - loop.time()))
                next_cycle = max(next_cycle + period, loop.time())
                if loop.time() >= tally.end:
                    break
            sent = loop.time()
            status, body = await client.post(questions_path, b"{}")
            inside = tally.record(tally.questions, sent, loop.time(), status)
            if status != 200:
                _sample(tally, QUESTIONS, status, body)
                await asyncio.sleep(0.05)
                continue
            tasks = _decoder.decode(body).get("tasks") or []
            if not tasks:
                tally.empty_batches += inside
                await asyncio.sleep(0.05)
                continue
            tally.tasks_received += len(tasks) * inside
            if config.think:
                await asyncio.sleep(config.think * rng.uniform(0.5, 1.5))
            if loop.time() >= tally.end:
                break
            answers = [_annotate(task, rng, config.mix) for task in tasks]
            payload = _encoder.encode({"answers": answers, "session_id": name})
            sent = loop.time()
            status, body = await client.post(answers_path, payload)
            inside = tally.record(tally.answers, sent, loop.time(), status)
            if status == 200:
                received = int(_decoder.decode(body).get("received", 0))
                acked = min(received, len(answers))
                tally.answers_acked_total += acked
                tally.answers_acked += acked * inside
            else:
                _sample(tally, ANSWERS, status, body)
                await asyncio.sleep(0.05)
    finally:
        await client.close()


def _sample(tally: _Tally, endpoint: str, status: int, body: bytes) -> None:
    if len(tally.error_samples) < 5:
        tally.error_samples.append(f"{endpoint} {status}: {body[:200].decode(errors='replace')}")


def _machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, all cores, by where they went.

    `machine_process`: user + system time of processes (ours and everyone else's);
    `machine_irq`: interrupts and softirqs (loopback networking, block I/O completions),
    which no process is charged for; `machine_steal`: taken by the hypervisor.
    """
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "machine_process": (user + nice + system) / tick,
        "machine_irq": (irq + softirq) / tick,
        "machine_steal": steal / tick,
        "machine_total": (user + nice + system + idle + iowait + irq + softirq + steal) / tick,
    }


def _cpu_snapshot(config: DriverConfig) -> dict[str, float]:
    snap = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in config.watch_pids.items()}
    snap["driver"] = cpu_seconds(os.getpid())
    snap.update(_machine_cpu())
    return snap


async def _drive(config: DriverConfig) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    tally = _Tally(start=began + config.warmup, end=began + config.warmup + config.duration)
    snapshots: dict[str, dict[str, float]] = {}
    loop.call_at(tally.start, lambda: snapshots.setdefault("start", _cpu_snapshot(config)))
    loop.call_at(tally.end, lambda: snapshots.setdefault("end", _cpu_snapshot(config)))
    sessions = [
        asyncio.ensure_future(
            _session(f"{config.session_prefix}{n}", config, tally, random.Random(config.seed * 100_003 + n))
        )
        for n in range(config.sessions)
    ]
    hard_stop = config.warmup + config.duration + max(_DRAIN_SECONDS, config.timeout)
    done, pending = await asyncio.wait(sessions, timeout=hard_stop)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    failures = [repr(task.exception()) for task in done if task.exception() is not None]
    snapshots.setdefault("start", _cpu_snapshot(config))
    snapshots.setdefault("end", _cpu_snapshot(config))
    seconds = config.duration
    cpu = {role: round(snapshots["end"][role] - snapshots["start"][role], 2) for role in snapshots["start"]}
    ours = sum(v for k, v in cpu.items() if not k.startswith("machine"))
    # Everyone else's processes; kernel threads (e.g. the journal thread that fsyncs for
    # nats-server) count here too.
    cpu["other"] = round(max(cpu["machine_process"] - ours, 0.0), 2)
    cpu["irq"] = cpu.pop("machine_irq")
    cpu["steal"] = cpu.pop("machine_steal")
    server = sum(cpu.get(role, 0.0) for role in ("workers", "nats", "granian"))
    return {
        "sessions": config.sessions,
        "duration_s": seconds,
        "warmup_s": config.warmup,
        "think_s": config.think,
        "offered_rate": config.rate or None,
        "client": config.client,
        "driver_pinned_cpu": config.pin_cpu,
        "answers": tally.answers_acked,
        "answers_per_s": round(tally.answers_acked / seconds, 1),
        "answers_acked_whole_run": tally.answers_acked_total,
        # Less sensitive to busy neighbours than answers/s: what one answer costs the server.
        "server_cpu_ms_per_answer": round(server * 1000 / tally.answers_acked, 3)
        if tally.answers_acked
        else None,
        "tasks_received": tally.tasks_received,
        "empty_batches": tally.empty_batches,
        "requests_per_s": round(
            (sum(tally.questions.statuses.values()) + sum(tally.answers.statuses.values())) / seconds, 1
        ),
        "endpoints": {
            QUESTIONS: tally.questions.summary(seconds),
            ANSWERS: tally.answers.summary(seconds),
        },
        "cpu_seconds": cpu,
        "cores": os.cpu_count(),
        "error_samples": tally.error_samples,
        "session_failures": failures[:5],
    }


def run_driver_in_process(config: DriverConfig) -> dict[str, Any]:
    """Drive the load from this process (sharing its CPU with whatever else runs here)."""
    return asyncio.run(_drive(config))


def _child(config: DriverConfig, results: Any) -> None:
    if config.pin_cpu is not None:
        os.sched_setaffinity(0, {config.pin_cpu})
    results.put(run_driver_in_process(config))


def run_driver(config: DriverConfig) -> dict[str, Any]:
    """Drive the load; in a separate process pinned to `config.pin_cpu` when it is set.

    Pinning keeps the load generator off the other cores, so the server gets them to
    itself (it still shares the pinned core); on a 2-core machine that is a trade, not
    a cure, and the report says which was used.
    """
    if config.pin_cpu is None:
        return run_driver_in_process(config)
    if config.pin_cpu not in os.sched_getaffinity(0):
        raise ValueError(
            f"--pin-driver {config.pin_cpu}: this process may run on CPUs "
            f"{sorted(os.sched_getaffinity(0))} only"
        )
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(config, results), daemon=True)
    process.start()
    try:
        limit = config.warmup + config.duration + max(_DRAIN_SECONDS, config.timeout) + 30
        result: dict[str, Any] = results.get(timeout=limit)
        return result
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


def config_dict(config: DriverConfig) -> dict[str, Any]:
    """The config as plain data, for `--json`."""
    return asdict(config)
