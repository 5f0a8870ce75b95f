"""Running a recipe: load its stream into NATS, then serve the feed with Granian.

The order matters for "bad input loses nothing": the source is validated in full
(by the recipe) before a single task is queued, and the HTTP port is checked before
any work starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ledger.connection import connect
from ledger.datasets import DatasetInfo, get_dataset
from ledger.errors import QuorumError
from ledger.natsd import EmbeddedNats, free_port, start_embedded
from ledger.ownership import (
    acquire,
    bind_error,
    check_no_leftovers,
    describe_processes,
    leftovers,
    port_holders,
)
from ledger.processes import dies_with_this_process
from ledger.routes import ensure_consumers, route_of
from ledger.snapshot_follower import keep_snapshots
from ledger.streams import ensure_streams
from recipes.components import Components
from recipes.runner import RunnerThread
from recipes.settings import Settings

__all__ = ["check_port", "run_feed", "serve_components"]

console = Console(stderr=True)


def bind_address(host: str) -> str:
    """Granian binds IP addresses only; resolve a host name such as `localhost`."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
    except socket.gaierror:
        raise QuorumError(f"cannot resolve host {host!r}; pass --host with an IP address or name") from None


def check_port(host: str, port: int, data_dir: Path | None = None) -> None:
    """Raise a clear error if the feed's port is taken, naming who holds it.

    A holder that works for `data_dir` (this Quorum's data) is a leftover of an owner
    that died: the error says what to kill, since another port would only hide it.
    """
    reason = bind_error(bind_address(host), port)
    if reason is None:
        return
    holders = port_holders(port)
    if data_dir is not None and any(h.data_dir == data_dir.resolve() for h in holders):
        left = leftovers(data_dir)  # the Granian master too, which would respawn a worker
        raise QuorumError(
            f"port {port} on {host} is held by {describe_processes(holders)}, left running by an "
            f"earlier Quorum on this data dir whose owner is gone ({describe_processes(left)}): "
            f"stop them with `kill {' '.join(str(p.pid) for p in left)}`, then start again"
        )
    who = f" by {describe_processes(holders)}" if holders else ""
    other = next((h.data_dir for h in holders if h.data_dir is not None), None)
    of = f" of another Quorum (data dir {other})" if other else ""
    raise QuorumError(
        f"port {port} on {host} is in use{who}{of} ({reason}); stop the other server or "
        f"pass --port {port + 1}"
    )


async def _check_dataset(url: str, dataset: str) -> DatasetInfo:
    nc = await connect(url)
    try:
        kv = await ensure_streams(nc.jetstream())
        info = await get_dataset(kv, dataset)
        await ensure_consumers(nc, route_of(info))
        return info
    finally:
        await nc.close()


@dataclass
class FeedProcess:
    """The Granian process serving the feed."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout: float = 8.0) -> None:
        """Graceful stop (SIGINT lets workers finish requests); kill the group if stuck."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """Stop at once (workers that never served: nothing to finish)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the workers answer /ready; stop them if they don't (or on Ctrl+C)."""
        process, url = self.process, self.url
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise QuorumError(f"the feed workers exited at start (code {process.returncode})")
                try:
                    with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                        if response.status == 200:
                            return
                except OSError:
                    pass
                time.sleep(0.1)
            raise QuorumError(f"the feed workers did not become ready within {timeout:.0f}s")
        except BaseException:
            # Ctrl+C or a failed start: never leave workers behind.
            self.stop(timeout=2)
            raise


def spawn_feed(settings: Settings, nats_url: str, extra_env: dict[str, str] | None = None) -> FeedProcess:
    """Start Granian with `settings.workers` workers; `FeedProcess.wait_ready` waits for them.

    Granian ends when this process ends, however it ends, and each worker ends when
    Granian does. The data dir travels as an absolute path, so a worker names the data
    it serves (see `ledger.ownership.leftovers`).
    """
    env = {
        **os.environ,
        **settings.to_env(),
        "QUORUM_NATS_URL": nats_url,
        "QUORUM_DATA_DIR": str(settings.data_dir.resolve()),
        **(extra_env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "quorum.feed_worker:create_app",
        "--host",
        bind_address(settings.host),
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--no-ws",
        "--workers-kill-timeout",
        "5",
        "--respawn-failed-workers",
        "--log-level",
        "warning",
    ]
    # SIGKILL: after its parent died a feed must be gone at once, so that a restarted
    # Quorum finds its port free and no leftovers; no answer is lost (invariant 1).
    process = subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=dies_with_this_process(signal.SIGKILL)
    )
    url = f"http://{settings.host}:{settings.port}"
    feed = FeedProcess(process, url)
    return feed


def start_feed(
    settings: Settings, nats_url: str, *, timeout: float = 60.0, extra_env: dict[str, str] | None = None
) -> FeedProcess:
    """Start Granian with `settings.workers` workers and wait until it answers /ready."""
    feed = spawn_feed(settings, nats_url, extra_env)
    feed.wait_ready(timeout)
    return feed


def run_feed(
    settings: Settings,
    nats_url: str,
    banner: str,
    nats: EmbeddedNats | None = None,
    extra_env: dict[str, str] | None = None,
    spawned: FeedProcess | None = None,
) -> None:
    """Serve until Ctrl+C or SIGTERM, then stop the workers cleanly (`spawned`: workers
    started already, while the recipe runner filled the queue).

    With `nats` (the embedded server this process owns), restart it when it dies; a
    `QuorumError` ends serving when it keeps dying. With `settings.feed` false there are
    no workers: the process runs the recipe runner only, until told to stop.
    """
    stop = False

    def _terminate(*_: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _terminate)
    feed: FeedProcess | None = None
    grace = 8.0
    try:
        if settings.feed:
            feed = spawned or spawn_feed(settings, nats_url, extra_env)
            feed.wait_ready()
            if nats is not None:
                nats.lock.update(feed_pid=feed.process.pid)
            console.print(banner.format(url=feed.url))
        else:
            console.print(f"Running the recipe runner only (no feed), NATS at {nats_url}")
        while not stop and (feed is None or feed.process.poll() is None):
            try:
                restarted = nats.keep_alive() if nats is not None else None
            except QuorumError:
                grace = 2.0  # NATS is gone: the workers have nothing left to finish
                raise
            if restarted:
                console.print(f"[yellow]⚠ {restarted}[/]")
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if feed is not None:
            console.print("Stopping Quorum…")
            feed.stop(grace)


def serve_components(
    components: Components | None,
    settings: Settings,
    dataset: str,
    on_loaded: Callable[[str], None] | None = None,
    worker_env: dict[str, str] | None = None,
) -> None:
    """Own the data dir and start its NATS (or use `NATS_URL`), start the recipe runner
    for `components` if given (`on_loaded` hears what its first top-up queued), and serve
    `dataset`. The runner stops after the feed; the recipe's `on_exit` runs on a clean stop."""
    runner: RunnerThread | None = None
    spawned: FeedProcess | None = None
    nats: EmbeddedNats | None = None
    with contextlib.ExitStack() as stack:
        if settings.nats_url:
            check_port(settings.host, settings.port)
            url = settings.nats_url
        else:
            lock = stack.enter_context(acquire(settings.data_dir))
            check_no_leftovers(lock.data_dir)
            check_port(settings.host, settings.port, lock.data_dir)
            lock.update(feed_url=f"http://{settings.host}:{settings.port}")
            nats_port = settings.nats_port or free_port()
            if components is not None and settings.feed:
                # The workers start (Python imports, mostly) while nats-server starts and the
                # runner fills the queue; they connect once NATS is up.
                spawned = spawn_feed(
                    settings.with_overrides(dataset=dataset), f"nats://127.0.0.1:{nats_port}", worker_env
                )
                stack.callback(spawned.kill)  # if anything fails before serving
            nats = start_embedded(lock.data_dir, nats_port, lock=lock, workers_first=spawned is not None)
            stack.callback(nats.stop)
            url = nats.url
        if not bind_address(settings.host).startswith("127.") and not settings.users_file:
            console.print(
                f"[yellow]⚠ Listening on {settings.host} without credentials: anyone who can reach this "
                f"port can annotate. Set QUORUM_USERS_FILE (see 'quorum users add') or bind to localhost.[/]"
            )
        settings = settings.with_overrides(dataset=dataset)
        if components is not None:
            if settings.feed and spawned is None:  # NATS_URL: workers start while the runner fills
                spawned = spawn_feed(settings, url, worker_env)
                stack.callback(spawned.kill)  # if the runner fails to start; serving stops it gently
            runner = RunnerThread(url, components, settings)
            summary = runner.start()
            stack.callback(runner.stop, clean=False)  # if serving fails: no on_exit
            if on_loaded:
                queued = runner.runner.status.queued
                done = f"{summary}" if summary.read else f"{queued:,} tasks already queued"
                more = "" if runner.runner.exhausted else "; the rest is queued as annotators need it"
                on_loaded(done + more)
        else:
            asyncio.run(_check_dataset(url, dataset))
        # The data dir's owner keeps its snapshots current (with NATS_URL, whoever runs that
        # NATS runs one `ledger snapshot --follow`); stopped before NATS, dies with us.
        stack.enter_context(
            keep_snapshots(
                url,
                settings.snapshot_location,
                settings.data_dir,
                enabled=settings.snapshots and nats is not None,
            )
        )
        where = (
            "embedded NATS, data in " + str(settings.data_dir) if not settings.nats_url else f"NATS at {url}"
        )
        run_feed(
            settings,
            url,
            f"✨ Starting Quorum at {{url}}  ({where})\n   Open {{url}}/?session=NAME",
            nats,
            worker_env,
            spawned,
        )
        if runner is not None:
            runner.stop(clean=True)
