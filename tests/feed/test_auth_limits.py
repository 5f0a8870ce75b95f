"""Password checks (issue 11 §5): PBKDF2 off the event loop, verified headers cached
briefly under a keyed hash, failed logins rate-limited per user (429 + Retry-After).

Before the fix every check ran on the loop: 20 wrong passwords pushed `/health` from
24 to 662 ms (benchmarks/auth_bench.py measures it).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import httpx
import pytest

import feed.access
from feed.access import LoginGuard, TooManyLogins, hash_password
from quorum.cli.users import add_user
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, run

FAST = hash_password("right-password", iterations=1000)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def counted(monkeypatch):
    """Count (and slow down, like 200k rounds would) every real password check."""
    calls = []
    original = feed.access.verify_password

    def slow(password: str, encoded: str) -> bool:
        calls.append(threading.current_thread().name)
        time.sleep(0.2)
        return original(password, encoded)

    monkeypatch.setattr(feed.access, "verify_password", slow)
    return calls


def test_password_checks_run_off_the_event_loop(counted):
    guard = LoginGuard()

    async def scenario() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        checks = [guard.check(f"u{i}", "wrong", FAST, basic(f"u{i}", f"wrong{i}")) for i in range(5)]
        assert await asyncio.gather(*checks) == [False] * 5
        done.set()
        await tick
        return max(gaps)

    longest_gap = run(scenario())
    assert len(counted) == 5 and all(name.startswith("quorum-pbkdf2") for name in counted)
    assert longest_gap < 0.15, f"the loop stalled {longest_gap:.2f}s while 5 x 0.2 s checks ran"


def test_a_verified_header_is_cached_briefly_and_holds_no_password(counted):
    guard = LoginGuard(cache_seconds=0.5)
    header = basic("alex", "right-password")

    async def scenario() -> None:
        assert await guard.check("alex", "right-password", FAST, header)
        assert await guard.check("alex", "right-password", FAST, header)
        # The same header arriving at once shares one check too.
        other = basic("alex", "right-password ")
        assert (
            await asyncio.gather(*(guard.check("alex", "right-password ", FAST, other) for _ in range(5)))
            == [False] * 5
        )

    run(scenario())
    assert len(counted) == 2, counted
    for key, value in guard._verified.items():
        assert b"right-password" not in key and "right-password" not in repr(value)
        assert header.encode() != key
    time.sleep(0.6)
    assert run(guard.check("alex", "right-password", FAST, header))
    assert len(counted) == 3, "an expired entry must be checked again"


def test_failed_logins_are_rate_limited_per_user(counted):
    guard = LoginGuard(max_failures=3, window=1.0)

    async def attempt(user: str, password: str) -> bool:
        return await guard.check(user, password, FAST, basic(user, password))

    assert [run(attempt("alex", f"guess{i}")) for i in range(3)] == [False, False, False]
    with pytest.raises(TooManyLogins) as refused:
        run(attempt("alex", "guess4"))
    assert refused.value.retry_after == 1 and "too many wrong passwords for user 'alex'" in str(refused.value)
    with pytest.raises(TooManyLogins):
        run(attempt("alex", "right-password"))  # locked out means locked out, for a while
    assert run(attempt("bob", "right-password"))  # other users are not affected
    assert len(counted) == 4
    time.sleep(1.1)
    assert run(attempt("alex", "right-password"))


def test_a_burst_of_guesses_cannot_all_get_checked(counted):
    guard = LoginGuard(max_failures=5, window=60)

    async def burst() -> list[object]:
        return await asyncio.gather(
            *(guard.check("alex", f"g{i}", FAST, basic("alex", f"g{i}")) for i in range(20)),
            return_exceptions=True,
        )

    results = run(burst())
    assert results.count(False) == 5 and len(counted) == 5
    assert all(isinstance(r, TooManyLogins) for r in results if r is not False)


@pytest.fixture
def team(settings, dataset_name, load, start_server, tmp_path):
    users = tmp_path / "users.jsonl"
    for name in ("alex", "bob", "carol", "dana"):
        add_user(users, name, f"{name}-password")
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed_process = start_server(settings, dataset_name, workers=1, users_file=users)
    with httpx.Client(base_url=feed_process.url, timeout=30) as client:
        yield client


def _questions(client: httpx.Client, user: str, password: str) -> httpx.Response:
    return client.post(f"/get_session_questions?session={user}", json={}, auth=(user, password))


def test_wrong_passwords_get_429_with_retry_after_in_the_error_shape(team):
    assert _questions(team, "alex", "alex-password").status_code == 200  # verified, now cached
    statuses = [_questions(team, "alex", f"guess-{i}").status_code for i in range(feed.access.MAX_FAILURES)]
    assert statuses == [401] * feed.access.MAX_FAILURES
    refused = _questions(team, "alex", "one-more-guess")
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert set(body) == {"error", "message", "status"} and body["error"] == "too_many_requests"
    assert body["status"] == 429 and "too many wrong passwords for user 'alex'" in body["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= feed.access.FAILURE_WINDOW
    # alex's own browser, already logged in, goes on working; bob is not affected.
    assert _questions(team, "alex", "alex-password").status_code == 200
    assert _questions(team, "bob", "bob-password").status_code == 200


def test_health_stays_fast_while_wrong_passwords_are_checked(team):
    async def scenario() -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=str(team.base_url), timeout=60) as client:
            latencies: list[float] = []
            done = asyncio.Event()

            async def poll() -> None:
                while not done.is_set():
                    start = time.perf_counter()
                    assert (await client.get("/health")).status_code == 200
                    latencies.append(time.perf_counter() - start)
                    await asyncio.sleep(0.01)

            poller = asyncio.create_task(poll())
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            users = ("alex", "bob", "carol", "dana")
            guesses = [
                client.post(
                    f"/get_session_questions?session={users[i % 4]}",
                    json={},
                    auth=(users[i % 4], f"wrong-{i}"),
                )
                for i in range(16)
            ]
            statuses = [r.status_code for r in await asyncio.gather(*guesses)]
            burst = time.perf_counter() - started
            done.set()
            await poller
            assert statuses == [401] * 16
            return max(latencies), burst

    worst, burst = run(scenario())
    # On the loop, /health waited for every check: its worst wait was about the whole burst.
    assert worst < max(0.25, burst / 3), f"/health took {worst:.2f}s during a {burst:.2f}s burst"
