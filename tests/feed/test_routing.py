"""Many annotators, one dataset: overlap modes, exact k per task, redelivery, reloads.

20+ simulated sessions hammer two Granian workers at once, abandon batches and reload
pages at random, some join halfway; afterwards the ledger must show exactly the answers
each mode promises. One run restarts every worker mid-way.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import Counter, defaultdict

import httpx
import pytest

from ledger.connection import connect
from ledger.events import AnswerRecorded
from ledger.routes import consumer_name, session_consumer_name, slot_consumer_name
from ledger.store import Ledger
from recipes.textcat import textcat_manual
from tests.conftest import run

TASKS = 60
ACK_WAIT = 2.0


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"text": f"task number {i}"}) + "\n" for i in range(TASKS)))
    return path


async def _post(client, path, body, session):
    """POST with retries across worker restarts (connection refused, 503 while starting)."""
    for _ in range(200):
        try:
            response = await client.post(f"{path}?session={session}", json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if response.status_code == 503:
            await asyncio.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        return response.json()
    raise AssertionError("the feed stayed unreachable")


async def annotator(url, session, done, rng, log, gate, delay=0.0):
    """One annotator: answer, sometimes abandon a batch, sometimes reload the page.

    Early annotators pause at `log["half"]` answers until a late joiner has been handed
    work (`gate`), so late joiners always find tasks left however fast the machine is.
    """
    late = delay > 0
    await asyncio.sleep(delay)
    reload = False
    first = True
    number = sum(map(ord, session))
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        while not done.is_set():
            if not late and log["answered"] >= log["half"]:
                await gate.wait()
            batch = await _post(
                client, "/get_session_questions", {"session_id": session, "reload": reload}, session
            )
            reload = False
            tasks = batch["tasks"]
            if not tasks:
                await asyncio.sleep(0.1)
                continue
            if late:
                gate.set()
            # Every third session walks away from its first batch, every third reloads on it.
            roll = (
                rng.random() if not first else (0.0 if number % 3 == 0 else 0.1 if number % 3 == 1 else 1.0)
            )
            first = False
            if roll < 0.08:
                log["abandoned"] += len(tasks)  # walk away: these come back to others after ack_wait
                continue
            if roll < 0.16:
                reload = True  # the page reloads: local tasks lost, the server gives them back
                log["reloads"] += 1
                continue
            answers = [{**t, "answer": rng.choice(["accept", "reject", "ignore"])} for t in tasks]
            await _post(client, "/give_answers", {"answers": answers, "session_id": session}, session)
            log["answered"] += len(answers)


async def _ledger_answers(nats_url, dataset):
    nc = await connect(nats_url)
    try:
        events = {}
        async for entry in Ledger(nc).read(dataset):
            for event in entry.events:
                if isinstance(event, AnswerRecorded):
                    events[event.event_id] = event
        return list(events.values())
    finally:
        await nc.close()


async def _complete(nats_url, dataset, expected):
    """True once the ledger holds the answers the mode promises."""
    return expected(await _ledger_answers(nats_url, dataset))


def simulate(url, nats_url, dataset, sessions, late, expected, restart=None, timeout=60, half=TASKS // 2):
    async def main():
        done, gate = asyncio.Event(), asyncio.Event()
        if not late:
            gate.set()
        rng = random.Random(7)
        log: Counter[str] = Counter(half=half)
        workers = [
            asyncio.create_task(annotator(url, f"s{i}", done, random.Random(i), log, gate))
            for i in range(sessions)
        ] + [
            asyncio.create_task(
                annotator(url, f"late{i}", done, random.Random(100 + i), log, gate, delay=1.5)
            )
            for i in range(late)
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        restarted = False
        while loop.time() < deadline:
            await asyncio.sleep(0.5)
            if restart and not restarted and loop.time() > deadline - timeout + 2:
                await loop.run_in_executor(None, restart)
                restarted = True
            if await _complete(nats_url, dataset, expected):
                break
        gate.set()
        await asyncio.sleep(ACK_WAIT + 0.5)  # stragglers' redeliveries must not add answers
        done.set()
        await asyncio.gather(*workers)
        assert not restart or restarted
        return rng, log

    _, log = run(main(), timeout=timeout + 30)
    return run(_ledger_answers(nats_url, dataset)), log


def by_task(events):
    sessions = defaultdict(list)
    for event in events:
        sessions[event.task_hash].append(event.session)
    return sessions


def assert_no_session_answered_twice(events):
    pairs = Counter((e.task_hash, e.session) for e in events)
    assert max(pairs.values()) == 1, "a session answered the same task twice"


def _start(load, start_server, settings, dataset, source, **routing):
    load(textcat_manual(dataset, source, "Tech"), ack_wait=ACK_WAIT, **routing)
    return start_server(settings, dataset, workers=2, batch_size=5)


def test_no_overlap_every_task_answered_exactly_once(
    settings, dataset_name, load, start_server, nats_url, source
):
    feed = _start(load, start_server, settings, dataset_name, source)
    events, log = simulate(
        feed.url,
        nats_url,
        dataset_name,
        sessions=20,
        late=2,
        expected=lambda ev: len({e.task_hash for e in ev}) == TASKS,
    )
    assert log["abandoned"] > 0 and log["reloads"] > 0
    counts = Counter(e.task_hash for e in events)
    assert len(counts) == TASKS
    assert set(counts.values()) == {1}, "a task was answered more than once"


def test_full_overlap_every_session_answers_every_task_once(
    settings, dataset_name, load, start_server, nats_url, source
):
    feed = _start(load, start_server, settings, dataset_name, source, feed_overlap=True)
    sessions, late = 10, 3
    events, log = simulate(
        feed.url,
        nats_url,
        dataset_name,
        sessions=sessions,
        late=late,
        expected=lambda ev: len(ev) >= TASKS * (sessions + late),
    )
    assert log["abandoned"] > 0
    assert_no_session_answered_twice(events)
    per_session = Counter(e.session for e in events)
    assert len(per_session) == sessions + late
    assert set(per_session.values()) == {TASKS}, "late joiners and abandoners must see every task"


@pytest.mark.parametrize("restart", [False, True], ids=["steady", "workers-restarted"])
def test_k_overlap_exactly_k_distinct_sessions_per_task(
    settings, dataset_name, load, start_server, nats_url, source, restart
):
    k = 3
    feed = _start(load, start_server, settings, dataset_name, source, annotations_per_task=k)
    port = feed.url.rsplit(":", 1)[1]

    def restart_all_workers():
        os.killpg(feed.process.pid, signal.SIGKILL)
        feed.process.wait()
        start_server(settings.with_overrides(port=int(port)), dataset_name, workers=2, batch_size=5)

    events, log = simulate(
        feed.url,
        nats_url,
        dataset_name,
        sessions=20,
        late=5,
        expected=lambda ev: (
            len(ev) >= TASKS * k
            and all(len(s) >= k for s in by_task(ev).values())
            and len(by_task(ev)) == TASKS
        ),
        restart=restart_all_workers if restart else None,
    )
    assert log["abandoned"] > 0
    assert_no_session_answered_twice(events)
    sessions = by_task(events)
    assert len(sessions) == TASKS
    assert {len(set(s)) for s in sessions.values()} == {k}, "each task must reach exactly k distinct sessions"
    assert any(s.startswith("late") for names in sessions.values() for s in names), "late joiners got nothing"


def test_consumer_names_of_different_datasets_never_clash():
    """Slot 0 of `news` and the shared consumer of `news-k0` once had one name."""
    owner: dict[str, tuple[str, str]] = {}
    for dataset in ("news", "news-k0", "news-0", "4-news", "slot-4-news", "feed-news"):
        for session in ("alex", "k0"):
            names = [consumer_name(dataset), session_consumer_name(dataset, session)]
            names += [slot_consumer_name(dataset, slot) for slot in range(3)]
            for name in names:
                assert owner.setdefault(name, (dataset, name)) == (dataset, name), f"{name} is shared"
