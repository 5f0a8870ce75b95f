"""One recipe runner per dataset on a shared NATS: a second one is refused (naming the
first), or, runner-only, waits and takes over once the first stops."""

from __future__ import annotations

import os
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


def test_a_lock_left_by_a_killed_runner_on_this_host_is_taken_over_at_once(nats_url, settings, dataset_name):
    """kill -9 leaves the lock behind; the next runner on this host sees its holder is gone."""
    import socket
    import subprocess
    import sys

    import msgspec

    from ledger.connection import connect
    from recipes.leader import BUCKET, _bucket
    from tests.conftest import run

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)

    async def leave_a_stale_lock() -> None:
        nc = await connect(nats_url)
        try:
            kv = await _bucket(nc, 15.0)
            holder = {"host": socket.gethostname(), "pid": dead_pid, "recipe": "textcat.manual"}
            await kv.create(dataset_name, msgspec.json.encode(holder))
        finally:
            await nc.close()

    async def holder_pid() -> int:
        nc = await connect(nats_url)
        try:
            entry = await (await nc.jetstream().key_value(BUCKET)).get(dataset_name)
            return int(msgspec.json.decode(entry.value or b"{}")["pid"])
        finally:
            await nc.close()

    run(leave_a_stale_lock())
    runner = _runner(nats_url, settings, dataset_name)
    runner.start()  # no LockHeld, no 15 s wait
    try:
        assert run(holder_pid()) == os.getpid()  # the lock is this runner's now
    finally:
        runner.stop()
