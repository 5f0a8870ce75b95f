"""The recipe runner against a real NATS and real feed workers: lazy streams topped up,
update() in ledger order from a checkpoint, progress, on_load/on_exit, and a stream or
an update that fails reported while serving goes on."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from browser import until

from recipes.components import check_components
from recipes.runner import RunnerThread


def _components(dataset: str, stream: Any, **callbacks: Any):
    return check_components(
        "test.recipe", {"dataset": dataset, "view_id": "text", "stream": stream, **callbacks}
    )


def _ask(url: str, session: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/get_session_questions?session={session}", json={}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _answer(url: str, session: str, tasks: list[dict[str, Any]], answer: str = "accept") -> None:
    answers = [{**task, "answer": answer} for task in tasks]
    response = httpx.post(f"{url}/give_answers?session={session}", json={"answers": answers}, timeout=10)
    assert response.status_code == 200, response.text


def test_an_infinite_stream_is_served_and_topped_up_as_annotators_go(
    nats_url, settings, dataset_name, start_server
):
    pulled = itertools.count()

    def endless() -> Iterator[dict[str, Any]]:
        for n in pulled:
            yield {"text": f"headline number {n}"}

    runner = RunnerThread(
        nats_url, _components(dataset_name, endless()), settings.with_overrides(queue_depth=15)
    )
    summary = runner.start()
    try:
        assert summary.queued == 15 and not runner.runner.exhausted
        feed = start_server(settings, dataset_name, workers=1)
        seen: set[str] = set()
        for _ in range(5):  # 50 answers: more than was ever queued at once
            tasks = _ask(feed.url, "alex")["tasks"]
            assert len(tasks) == 10
            seen.update(task["text"] for task in tasks)
            _answer(feed.url, "alex", tasks)
            until(lambda: runner.runner.status.queued >= len(seen) + 10, timeout=10, interval=0.1)
        assert len(seen) == 50  # never the same question twice
        assert runner.runner.status.queued < 50 + 15 + 10 * 4 + 1  # shallow: a few batches ahead
    finally:
        runner.stop()


def test_a_failing_stream_is_reported_and_what_was_queued_is_still_served(
    nats_url, settings, dataset_name, start_server
):
    def breaks() -> Iterator[dict[str, Any]]:
        for n in range(12):
            yield {"text": f"fine {n}"}
        raise RuntimeError("the database went away")

    runner = RunnerThread(
        nats_url, _components(dataset_name, breaks()), settings.with_overrides(queue_depth=5)
    )
    runner.start()
    try:
        feed = start_server(settings, dataset_name, workers=1)
        received: list[str] = []
        for _ in range(10):  # answer until the runner has read past the 12th task
            if runner.runner.status.stream == "failed":
                break
            tasks = _ask(feed.url, "alex")["tasks"]
            _answer(feed.url, "alex", tasks[:2])  # the rest stays out with alex
            received += [task["text"] for task in tasks]
            time.sleep(0.6)
        assert runner.runner.status.stream == "failed"
        # The feed caches the runner's report for a couple of seconds.
        until(
            lambda: "stream failed" in httpx.get(f"{feed.url}/health", timeout=5).json().get("recipe", ""),
            timeout=10,
            interval=0.2,
        )
        health = httpx.get(f"{feed.url}/health", timeout=5).json()
        assert health["status"] == "ok"
        assert "RuntimeError: the database went away" in health["recipe"]
        progress = httpx.get(f"{feed.url}/progress", timeout=5).json()
        assert progress["stream"] == "failed" and "the database went away" in progress["warning"]
        left = [task["text"] for task in _ask(feed.url, "sam")["tasks"]]
        assert left  # what was queued is still served, every task read before the failure
        assert sorted(received + left) == sorted(f"fine {n}" for n in range(12))
    finally:
        runner.stop()


def test_update_gets_every_answer_in_ledger_order_once_and_resumes_after_a_restart(
    nats_url, settings, dataset_name, start_server
):
    batches: list[list[str]] = []
    stream = [{"text": f"text {n}"} for n in range(40)]

    def update(answers: list[dict[str, Any]]) -> float:
        batches.append([f"{eg['_session_id']}:{eg['text']}:{eg['answer']}" for eg in answers])
        return 0.5

    tuned = settings.with_overrides(batch_size=5, update_idle=0.5)
    runner = RunnerThread(nats_url, _components(dataset_name, stream, update=update), tuned)
    runner.start()
    feed = start_server(tuned, dataset_name, workers=1)
    try:
        alex = _ask(feed.url, "alex")["tasks"]
        _answer(feed.url, "alex", alex)  # 5 answers: one full batch
        sam = _ask(feed.url, "sam")["tasks"][:3]
        _answer(feed.url, "sam", sam, "reject")  # 3: a partial batch, after the idle time
        until(lambda: sum(len(b) for b in batches) == 8, timeout=15, interval=0.1)
        assert [len(b) for b in batches] == [5, 3]
        assert batches[0] == [f"{dataset_name}-alex:{t['text']}:accept" for t in alex]
        assert runner.runner.status.updates == 2 and runner.runner.status.loss == 0.5
    finally:
        runner.stop()

    # A new runner (a restart) goes on after the last applied batch: nothing twice.
    again: list[list[str]] = []
    restarted = RunnerThread(
        nats_url,
        _components(
            dataset_name, stream, update=lambda answers: again.append([eg["text"] for eg in answers])
        ),
        tuned,
    )
    restarted.start()
    try:
        more = _ask(feed.url, "alex")["tasks"][:2]
        _answer(feed.url, "alex", more, "ignore")
        until(lambda: again, timeout=15, interval=0.1)
        time.sleep(1.0)  # a wrongly replayed backlog would show up by now
        assert again == [[t["text"] for t in more]]
    finally:
        restarted.stop()


def test_an_update_that_keeps_failing_is_disabled_and_answers_are_still_saved(
    nats_url, settings, dataset_name, start_server
):
    calls: list[int] = []

    def update(answers: list[dict[str, Any]]) -> None:
        calls.append(len(answers))
        raise ValueError("model exploded")

    tuned = settings.with_overrides(batch_size=2, update_idle=0.3)
    runner = RunnerThread(
        nats_url, _components(dataset_name, [{"text": f"t{n}"} for n in range(10)], update=update), tuned
    )
    runner.start()
    try:
        feed = start_server(tuned, dataset_name, workers=1)
        tasks = _ask(feed.url, "alex")["tasks"][:4]
        _answer(feed.url, "alex", tasks)
        until(lambda: runner.runner.status.update_error, timeout=15, interval=0.1)
        assert calls == [2, 2, 2]  # tried three times, then disabled
        assert "ValueError: model exploded" in runner.runner.status.update_error
        until(
            lambda: "update disabled" in httpx.get(f"{feed.url}/health", timeout=5).json().get("recipe", ""),
            timeout=10,
            interval=0.2,
        )
        response = httpx.post(
            f"{feed.url}/give_answers?session=alex",
            json={"answers": [{**t, "answer": "reject"} for t in _ask(feed.url, "alex")["tasks"][:1]]},
            timeout=10,
        )
        assert response.status_code == 200  # answers are saved either way
    finally:
        runner.stop()


def test_progress_on_load_and_on_exit_see_the_dataset(nats_url, settings, dataset_name, start_server):
    events: list[tuple[str, Any]] = []

    def progress(ctrl: Any, loss: Any) -> float:
        return 0.25 if loss is None else 0.75

    components = _components(
        dataset_name,
        [{"text": f"t{n}"} for n in range(10)],
        update=lambda answers: 1.0,
        progress=progress,
        on_load=lambda ctrl: events.append(("load", ctrl.total_annotated)),
        on_exit=lambda ctrl: events.append(("exit", (ctrl.total_annotated, ctrl.session_ids))),
    )
    tuned = settings.with_overrides(batch_size=3, update_idle=0.3)
    runner = RunnerThread(nats_url, components, tuned)
    runner.start()
    try:
        feed = start_server(tuned, dataset_name, workers=1)
        tasks = _ask(feed.url, "alex")["tasks"][:3]
        _answer(feed.url, "alex", tasks)
        until(lambda: runner.runner.status.progress == 0.75, timeout=15, interval=0.1)
        until(lambda: _ask(feed.url, "sam")["progress"] == 0.75, timeout=10, interval=0.3)  # the recipe's
        assert httpx.get(f"{feed.url}/progress", timeout=5).json()["progress"] == 0.75  # quorum progress too
    finally:
        runner.stop()
    assert events == [("load", 0), ("exit", (3, [f"{dataset_name}-alex"]))]


def test_a_burst_of_requests_gets_full_batches_while_the_stream_has_tasks(
    nats_url, settings, dataset_name, start_server
):
    """A worker that finds the queue short wakes the runner and waits for its top-up
    instead of answering an empty batch (which a web app would read as "no more tasks")."""
    stream = [{"text": f"burst {n}"} for n in range(100)]
    runner = RunnerThread(nats_url, _components(dataset_name, stream), settings.with_overrides(queue_depth=5))
    runner.start()
    try:
        feed = start_server(settings, dataset_name, workers=1)
        until(lambda: _ask(feed.url, "probe")["tasks"], timeout=5)  # the runner has reported
        with ThreadPoolExecutor(8) as pool:  # eight annotators at once, on a queue of five
            sizes = list(pool.map(lambda n: len(_ask(feed.url, f"s{n}")["tasks"]), range(8)))
        assert all(size > 0 for size in sizes), sizes
    finally:
        runner.stop()


def test_db_false_gives_answers_to_update_and_saves_nothing(
    nats_url, settings, dataset_name, start_server, tmp_path
):
    from conftest import quorum_cli

    seen: list[str] = []
    tuned = settings.with_overrides(batch_size=3, update_idle=0.3)
    components = _components(
        dataset_name,
        [{"text": f"t{n}"} for n in range(10)],
        update=lambda answers: seen.extend(f"{eg['text']}:{eg['answer']}" for eg in answers),
        db=False,
    )
    runner = RunnerThread(nats_url, components, tuned)
    runner.start()
    try:
        feed = start_server(tuned, dataset_name, workers=1)
        tasks = _ask(feed.url, "alex")["tasks"][:3]
        _answer(feed.url, "alex", tasks, "reject")
        until(lambda: len(seen) == 3, timeout=15, interval=0.1)
        assert seen == [f"{t['text']}:reject" for t in tasks]
        assert _ask(feed.url, "alex")["tasks"]  # the answered tasks are done, the rest served
    finally:
        runner.stop()
    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url}, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == b""  # nothing saved
