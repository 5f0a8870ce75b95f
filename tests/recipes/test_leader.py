"""One recipe runner per dataset on a shared NATS: a second one is refused (naming the
first), or, runner-only, waits and takes over once the first stops."""

from __future__ import annotations

import threading

import pytest
from browser import until

from recipes.components import check_components
from recipes.leader import LockHeld
from recipes.runner import RunnerThread


def _runner(nats_url, settings, dataset, **overrides):
    components = check_components(
        "test.recipe",
        {"dataset": dataset, "view_id": "text", "stream": [{"text": f"t{n}"} for n in range(30)]},
    )
    return RunnerThread(nats_url, components, settings.with_overrides(**overrides))


def test_a_second_runner_for_a_dataset_is_refused_naming_the_first(nats_url, settings, dataset_name):
    first = _runner(nats_url, settings, dataset_name)
    first.start()
    try:
        second = _runner(nats_url, settings, dataset_name)
        with pytest.raises(
            LockHeld, match=rf"a recipe runner for dataset '{dataset_name}' is already running"
        ):
            second.start()
    finally:
        first.stop()
    third = _runner(nats_url, settings, dataset_name)  # released on stop: free at once
    third.start()
    third.stop()


def test_a_runner_only_process_waits_for_the_lock_and_takes_over(nats_url, settings, dataset_name):
    first = _runner(nats_url, settings, dataset_name)
    first.start()
    waiting = _runner(nats_url, settings, dataset_name, feed=False)
    started = threading.Event()
    thread = threading.Thread(target=lambda: (waiting.start(), started.set()), daemon=True)
    thread.start()
    try:
        assert not started.wait(2.0)  # still waiting for the first one
        first.stop()
        until(started.is_set, timeout=15, interval=0.1)
    finally:
        first.stop()
        thread.join(timeout=20)
        waiting.stop()
