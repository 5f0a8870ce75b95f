"""Real-browser helpers for the web app tests: Debian's Chromium driven by Playwright.

A test module takes the `browser` and `page` fixtures as its own with
`browser, page = chromium.browser, chromium.page` (after `from tests import browser as chromium`).

The tests run the app as an annotator would: a real feed server with embedded-style
NATS, a real Chromium, real key presses and mouse drags. Playwright's own browser
downloads are never used; `/usr/bin/chromium` comes from `apt-get install chromium`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ledger.connection import connect
from ledger.events import AnswerRecorded
from ledger.hashing import set_hashes
from ledger.store import Ledger
from recipes.components import Components
from tests.conftest import ROOT, quorum_cli, run

__all__ = [
    "CHROMIUM",
    "SCREENSHOTS",
    "AnnotationPage",
    "KillableChromium",
    "db_out",
    "launch_chromium",
    "ledger_answers",
    "load_tasks",
    "off_loop",
    "until",
    "write_jsonl",
]

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def launch_chromium() -> Iterator[Any]:
    """Yield a Chromium browser; skip (or, under CI, fail) when it is not installed."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, once per test module."""
    yield from launch_chromium()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab in a context of its own (a laptop-sized window); closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


class KillableChromium:
    """A Chromium started here, on a profile directory of its own, driven over CDP.

    Playwright's own launch hides the browser's process; this one can be SIGKILLed like
    a crash or a power cut would end it, and started again on the same profile.
    """

    def __init__(self, browser_type: Any, profile: Path) -> None:
        self.profile = profile
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a killed browser leaves its port behind
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                *CHROMIUM_ARGS,
                # After a SIGKILL the profile says it crashed: open one blank tab, restore nothing.
                "--no-first-run",
                "--disable-session-crashed-bubble",
                "--hide-crash-restore-bubble",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes share a group that `kill` can end
        )
        try:
            lines = until(lambda: port_file.exists() and port_file.read_text().splitlines(), timeout=20)
            # Generous: on a loaded 2-core machine a restarted profile can take a while to attach.
            self.browser = browser_type.connect_over_cdp(f"http://127.0.0.1:{int(lines[0])}", timeout=90_000)
            self.page = self.browser.contexts[0].new_page()
        except BaseException:
            self.kill()  # nobody gets a handle to close it: never leave it running
            raise
        self.page.set_default_timeout(10_000)

    def kill(self) -> None:
        """SIGKILL the browser process, then whatever it left of its own process group."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Disconnect (a no-op once killed), then make sure nothing of it runs on."""
        with contextlib.suppress(Exception):  # the connection died with a killed browser
            self.browser.close()
        self.kill()


def ledger_answers(nats_url: str, dataset: str) -> list[AnswerRecorded]:
    """Every answer event the ledger holds for `dataset`, repeats included, in order."""

    async def read() -> list[AnswerRecorded]:
        nc = await connect(nats_url)
        try:
            return [
                event
                async for entry in Ledger(nc).read(dataset)
                for event in entry.events
                if isinstance(event, AnswerRecorded)
            ]
        finally:
            await nc.close()

    return off_loop(run, read())


def off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `func` in a worker thread.

    Playwright's sync API keeps an asyncio loop running in the test's thread, so fixtures
    that call `asyncio.run` (such as `load`) must run elsewhere while a browser is open.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func, *args, **kwargs).result(timeout=60)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def load_tasks(
    load: Callable[[Components], Any], dataset: str, view_id: str, tasks: list[dict[str, Any]], config: Any
) -> None:
    """Queue ready-made tasks (hashed here) for a custom recipe that shows them in `view_id`."""
    stream = [set_hashes(task) for task in tasks]
    components = Components(
        recipe="custom", dataset=dataset, view_id=view_id, stream=stream, config=config, total=len(stream)
    )
    off_loop(load, components)


def db_out(dataset: str, nats_url: str, *extra: str) -> list[dict[str, Any]]:
    """`quorum db-out DATASET` as a user runs it, parsed."""
    result = quorum_cli("db-out", dataset, *extra, env={"NATS_URL": nats_url})
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


class AnnotationPage:
    """The annotation app in one browser tab, with the moves an annotator makes."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    # -- looking ------------------------------------------------------------------------

    def open(self, session: str) -> AnnotationPage:
        self.page.goto(f"{self.base_url}/?session={session}")
        self.wait_for_task()
        return self

    def state(self) -> dict[str, Any]:
        return dict(self.page.evaluate("window.quorum.inspect()"))

    def task(self) -> str | None:
        value = self.page.get_attribute("#card", "data-task-hash")
        return None if value is None else str(value)

    def text(self) -> str:
        return str(self.page.inner_text("#card-body"))

    def wait_for_task(self, after: str | None = None, timeout: float = 10_000) -> str:
        """Wait until a task is on screen (a different one than `after`); its hash."""
        self.page.wait_for_function(
            "after => { const h = document.getElementById('card').dataset.taskHash;"
            " return h && h !== after; }",
            arg=after,
            timeout=timeout,
        )
        task = self.task()
        assert task is not None
        return task

    def wait_status(self, state: str, timeout: float = 10_000) -> None:
        self.page.wait_for_selector(f'#status[data-state="{state}"]', timeout=timeout)

    def status_text(self) -> str:
        return str(self.page.inner_text("#status"))

    def hint(self) -> str:
        return str(self.page.inner_text("#hint"))

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    # -- acting -------------------------------------------------------------------------

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def answer(self, key: str) -> str | None:
        """Press an answer key; wait until the task on screen changes (None: no task left)."""
        before = self.task()
        self.press(key)
        self.page.wait_for_function(
            "before => document.getElementById('card').dataset.taskHash !== before", arg=before
        )
        return self.task()

    def save(self, timeout: float = 10_000) -> None:
        """Ctrl+S, then wait until every answer is confirmed by the server."""
        self.press("Control+s")
        self.page.wait_for_function("() => window.quorum.inspect().outbox === 0", timeout=timeout)
        self.wait_status("saved", timeout)

    def token(self, word: str, nth: int = 0) -> Any:
        """The locator of the `nth` token whose text is exactly `word`."""
        index = self.page.evaluate(
            "([word, nth]) => [...document.querySelectorAll('.tok')]"
            ".filter(t => t.textContent === word)[nth]?.dataset.i ?? null",
            [word, nth],
        )
        assert index is not None, f"no token {word!r} on screen: {self.text()!r}"
        return self.page.locator(f'.tok[data-i="{index}"]')

    def drag(self, first: str, last: str) -> None:
        """Press on the word `first`, drag to the word `last`, release."""
        start = self.token(first).bounding_box()
        end = self.token(last).bounding_box()
        mouse = self.page.mouse
        mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
        mouse.down()
        mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=6)
        mouse.up()

    def wait_until(self, predicate: str, timeout: float = 10_000, arg: Any = None) -> None:
        self.page.wait_for_function(predicate, arg=arg, timeout=timeout)


def until(check: Any, timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        time.sleep(interval)
