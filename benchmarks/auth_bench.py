"""Benchmark: does checking passwords stall the feed? `/health` latency under a login burst.

Starts a real feed (embedded nats-server, Granian, one worker by default) with a users
file, then measures `/health` while nobody logs in, and again while bursts of
wrong-password requests hit `/get_session_questions` (PBKDF2-SHA256, 200k rounds each):

    python benchmarks/auth_bench.py
    python benchmarks/auth_bench.py --burst 20 --rounds 5 --users 4 --json

A password check that runs on the event loop blocks every request the worker holds for
its ~0.1-0.2 s; issue 11 §5 measured /health going from 24 to 662 ms under 20 wrong
passwords. Figures are in docs/api.md ("Limits and errors").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.natsd import free_port, start_embedded  # noqa: E402
from quorum.cli.users import add_user  # noqa: E402
from quorum.serve import start_feed  # noqa: E402
from recipes.runner import load_components  # noqa: E402
from recipes.settings import load_settings  # noqa: E402
from recipes.textcat import textcat_manual  # noqa: E402


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p99_ms": round(_percentile(samples, 0.99) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
    }


async def _poll_health(client: httpx.AsyncClient, stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        response = await client.get("/health")
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.005)


async def _measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    users = [f"user{i}" for i in range(args.users)]
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as health,
        httpx.AsyncClient(
            base_url=url, timeout=60, limits=httpx.Limits(max_connections=args.burst)
        ) as attacker,
    ):
        idle: list[float] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(_poll_health(health, stop, idle))
        await asyncio.sleep(args.idle_seconds)
        stop.set()
        await poller

        statuses: Counter[int] = Counter()
        loaded: list[float] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(_poll_health(health, stop, loaded))
        started = time.perf_counter()

        async def wrong(n: int) -> None:
            user = users[n % len(users)]
            response = await attacker.post(
                f"/get_session_questions?session={user}", json={}, auth=(user, f"wrong-{n}")
            )
            statuses[response.status_code] += 1

        for round_ in range(args.rounds):
            await asyncio.gather(*(wrong(round_ * args.burst + n) for n in range(args.burst)))
        burst_seconds = time.perf_counter() - started
        stop.set()
        await poller
    return {
        "burst": args.burst,
        "rounds": args.rounds,
        "users": args.users,
        "workers": args.workers,
        "health_idle": _figures(idle),
        "health_under_burst": _figures(loaded),
        "burst_seconds": round(burst_seconds, 2),
        "wrong_password_statuses": dict(sorted(statuses.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=20, help="wrong-password requests sent at once")
    parser.add_argument("--rounds", type=int, default=5, help="bursts, one after the other")
    parser.add_argument("--users", type=int, default=4, help="users the wrong passwords are spread over")
    parser.add_argument("--workers", type=int, default=1, help="Granian worker processes")
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="how long to measure idle /health")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="quorum-auth-bench-") as tmp:
        root = Path(tmp)
        users_file = root / "users.jsonl"
        for i in range(args.users):
            add_user(users_file, f"user{i}", f"password-{i}")
        nats = start_embedded(root / "nats")
        try:
            settings = load_settings(
                {},
                nats_url=nats.url,
                data_dir=root / "data",
                host="127.0.0.1",
                port=free_port(),
                dataset="bench",
                workers=args.workers,
                users_file=users_file,
                log_level="error",
            )
            components = textcat_manual("bench", ROOT / "examples" / "news.jsonl", "Tech")
            asyncio.run(load_components(nats.url, components, settings))
            feed = start_feed(settings, nats.url)
            try:
                result = asyncio.run(_measure(feed.url, args))
            finally:
                feed.stop()
        finally:
            nats.stop()

    if args.json:
        print(json.dumps(result))
        return
    idle, loaded = result["health_idle"], result["health_under_burst"]
    print(
        f"{args.rounds} bursts of {args.burst} wrong passwords over {args.users} users, "
        f"{args.workers} worker(s): {result['burst_seconds']} s, statuses "
        f"{result['wrong_password_statuses']}"
    )
    print(f"/health idle:        p50 {idle['p50_ms']} ms, p99 {idle['p99_ms']} ms  (n={idle['n']})")
    print(
        f"/health under burst: p50 {loaded['p50_ms']} ms, p99 {loaded['p99_ms']} ms, "
        f"max {loaded['max_ms']} ms  (n={loaded['n']})"
    )


if __name__ == "__main__":
    main()
