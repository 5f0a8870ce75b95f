"""The dashboard in a real Chromium against real feed workers: admin login, the four plots
drawn as SVG from the projections, a fresh answer after Refresh, and a screenshot; and its
review queue, which reads the first N disagreements only (issue 22)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger.connection import connect
from projections.duck import open_projections
from projections.reports import review_queue
from tests.browser import SCREENSHOTS, launch_chromium, off_loop
from tests.conftest import run
from tests.ledger_writes import DAY_MS, T0, answer, configure, register, write

TOKEN = "open-sesame-6"
SESSIONS = ["alex", "blake", "casey"]


def _ledger(dataset: str) -> list[list[Any]]:
    batches: list[list[Any]] = [[configure(dataset, feed_overlap=True, labels=["SPORTS"])]]
    for day in range(3):
        for task in range(1 + day * 6, 7 + day * 6):
            for n, session in enumerate(SESSIONS):
                if day == 2 and session == "casey":
                    continue
                truth = task % 2 == 0
                flipped = task % (5, 3, 4)[n] == 1  # each annotator errs on other tasks
                decision = "accept" if truth != flipped else "reject"
                at = T0 + day * DAY_MS + task * 60_000 + n * 1000
                example = {"text": f"Match report {task}: the home side won.", "label": "SPORTS"}
                batches.append([answer(dataset, session, task, decision, example=example, at=at)])
    return batches


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.mark.browser
def test_dashboard_draws_the_projections(browser, settings, dataset_name, start_server, nats_url):
    # Playwright's sync API runs an event loop in this thread: asyncio work goes elsewhere.
    off_loop(lambda: run(write(nats_url, _ledger(dataset_name))))
    off_loop(lambda: run(register(nats_url, dataset_name, feed_overlap=True, total=24)))
    server = start_server(settings, dataset_name, workers=1, admin_token=TOKEN)

    refused = httpx.get(f"{server.url}/dashboard/data", timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    data = httpx.get(
        f"{server.url}/dashboard/data", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ).json()
    assert data["sessions"] == SESSIONS and data["total_tasks"] == 24
    assert data["totals"]["answers"] == 6 * 3 + 6 * 3 + 6 * 2
    assert data["agreement"]["metric"] == "Cohen's kappa" and len(data["agreement"]["cells"]) == 3
    assert data["disagreement_count"] == len(data["disagreements"]) > 0
    bad = httpx.get(
        f"{server.url}/dashboard/data?dataset=no.such", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"

    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{server.url}/dashboard")
        page.wait_for_selector('#dash[data-state="login"]')
        page.fill("#dash-token", TOKEN)
        page.click("#dash-login button[type=submit]")
        page.wait_for_selector('#dash[data-state="ready"]')

        assert page.locator('[data-chart="progress"] path[data-series="answers"]').count() == 1
        assert page.locator('[data-chart="progress"] [data-series="total"]').count() == 1
        bars = page.locator('[data-chart="per-day"] rect[data-session]')
        assert bars.count() == 3 + 3 + 2  # three days; casey took the third off
        assert bars.first.get_attribute("data-answers") == "6"
        cells = page.locator('[data-chart="agreement"] rect.heat')
        assert cells.count() == 6  # 3 × 3 without the diagonal
        values = {cells.nth(i).get_attribute("data-value") for i in range(6)}
        assert all(v not in ("", None) for v in values)
        assert "Fleiss" in page.inner_text("#agreement-summary")
        assert page.locator("#review li[data-task-hash]").count() == data["disagreement_count"]
        assert "Match report" in page.inner_text("#review")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        # An answer recorded now shows after Refresh: the projections read the live ledger.
        late = answer(dataset_name, "dana", 1, at=T0 + 3 * DAY_MS)
        off_loop(lambda: run(write(nats_url, [[late]])))
        page.click("#dash-refresh")
        page.wait_for_function("() => document.querySelector('#dash-tiles strong').textContent === '49'")
        assert page.locator('[data-chart="agreement"] rect.heat').count() == 12
        assert errors == []
    finally:
        context.close()


def _span(start: int, end: int, label: str) -> dict[str, Any]:
    return {"start": start, "end": end, "label": label, "token_start": start, "token_end": end}


def _ner(dataset: str, session: str, task: int, decision: str, spans: list[dict[str, Any]]) -> Any:
    example = {"text": f"Report {task}", "spans": spans}
    return answer(dataset, session, task, decision, view_id="ner_manual", example=example)


def test_review_queue_takes_the_first_n_of_the_view_issue_22(nats_url, dataset_name):
    d = dataset_name
    one, two = _span(0, 6, "ORG"), _span(7, 8, "CARDINAL")
    batches: list[list[Any]] = [[configure(d, feed_overlap=True, labels=["ORG", "CARDINAL"])]]
    for task in range(1, 9):
        batches.append([_ner(d, "alex", task, "accept", [one, two])])
    batches.append([_ner(d, "blake", 1, "accept", [two, one])])  # the same spans, in another order
    batches.append([_ner(d, "blake", 2, "accept", [one])])  # a span fewer
    batches.append([_ner(d, "blake", 3, "reject", [one, two])])  # another answer
    batches.append([_ner(d, "blake", 4, "accept", [one, {**two, "label": "ORG"}])])  # another label
    batches.append([_ner(d, "blake", 5, "ignore", [])])  # ignores aside: one session left
    batches.append([_ner(d, "blake", 6, "accept", [one, {**two, "token_end": 9}])])  # tokens aside
    batches.append([_ner(d, "blake", 7, "accept", []), _ner(d, "casey", 7, "accept", [])])
    batches.append([_ner(d, "blake", 8, "accept", [one, two]), _ner(d, "casey", 8, "accept", [two])])
    off_loop(lambda: run(write(nats_url, batches)))  # Playwright may hold this thread's loop

    async def read() -> Any:
        nc = await connect(nats_url)
        try:
            with await open_projections(nc, dataset=d, materialize=True) as projections:
                return (
                    projections.execute(
                        "SELECT task_hash, n_sessions, n_decisions FROM disagreements WHERE dataset = ? "
                        "ORDER BY answer_order",
                        [d],
                    ).fetchall(),
                    [review_queue(projections, d, limit) for limit in (None, 2, 0)],
                )
        finally:
            await nc.close()

    view, ((everything, total), (first, counted), (none, still_counted)) = off_loop(lambda: run(read()))
    assert view == [(2, 2, 2), (3, 2, 2), (4, 2, 2), (7, 3, 2), (8, 3, 2)]
    assert [item.task_hash for item in everything] == [2, 3, 4, 7, 8] and total == 5
    assert first == everything[:2] and counted == 5
    assert none == [] and still_counted == 5
    assert first[0].text == "Report 2" and first[0].n_sessions == 2
    assert [(x["session"], len(x["spans"])) for x in first[0].decisions] == [("alex", 2), ("blake", 1)]
