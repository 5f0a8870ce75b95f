"""Locust scenario: annotators working through a Quorum dataset, as the web app does.

Each simulated user is one session (`?session=u<N>`). It asks for a batch of questions,
thinks a little over each task, answers it (mostly accept, some reject and ignore; a
label for the choice view) and flushes its answers in batches, like the web app's
outbox. A `/give_answers` counts as a success only with status 200 and every answer
received; anything else is a failure in locust's table.

Run against a server that is already up, e.g. the benchmark's stack:

    python -m loadtest.bench --serve --port 8080          # terminal 1
    locust -f loadtest/locustfile.py --host http://localhost:8080
    locust -f loadtest/locustfile.py --host http://localhost:8080 --headless -u 50 -r 10 -t 30s

Tunables (environment): QUORUM_LOCUST_BATCH answers per flush (default 10),
QUORUM_LOCUST_THINK_MIN / _MAX seconds per task (default 0.2 / 1.0).
Answers/s is the `/give_answers` request rate times the batch size.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from typing import Any

from locust import FastHttpUser, between, task

__all__ = ["Annotator"]

ANSWER_BATCH = int(os.environ.get("QUORUM_LOCUST_BATCH", "10"))
THINK_MIN = float(os.environ.get("QUORUM_LOCUST_THINK_MIN", "0.2"))
THINK_MAX = float(os.environ.get("QUORUM_LOCUST_THINK_MAX", "1.0"))
_numbers = itertools.count()


def annotate(example: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The task exactly as handed out, plus `answer` (and `accept` for the choice view)."""
    answer = rng.choices(("accept", "reject", "ignore"), weights=(0.7, 0.2, 0.1))[0]
    annotated = {**example, "answer": answer}
    options = example.get("options")
    if isinstance(options, list) and options:
        annotated["accept"] = [rng.choice(options)["id"]] if answer == "accept" else []
    return annotated


class Annotator(FastHttpUser):
    """One annotator session: one locust task is one answered question."""

    wait_time = between(THINK_MIN, THINK_MAX)

    def on_start(self) -> None:
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        self.session = f"u{worker * 100_000 + next(_numbers)}"
        self.rng = random.Random(self.session)
        self.queue: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []

    def on_stop(self) -> None:
        self.flush()

    def fetch(self) -> None:
        with self.client.post(
            f"/get_session_questions?session={self.session}",
            json={},
            name="/get_session_questions",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            self.queue = list(response.json().get("tasks") or [])
            response.success()

    def flush(self) -> None:
        if not self.outbox:
            return
        answers, self.outbox = self.outbox, []
        with self.client.post(
            f"/give_answers?session={self.session}",
            data=json.dumps({"answers": answers, "session_id": self.session}),
            headers={"content-type": "application/json"},
            name="/give_answers",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
            elif response.json().get("received") != len(answers):
                response.failure(f"sent {len(answers)} answers, server received {response.json()}")
            else:
                response.success()

    @task
    def answer_one(self) -> None:
        if not self.queue:
            self.flush()  # the web app flushes before it asks for more
            self.fetch()
            if not self.queue:
                return  # nothing to do right now; think, then ask again
        self.outbox.append(annotate(self.queue.pop(0), self.rng))
        if len(self.outbox) >= ANSWER_BATCH or not self.queue:
            self.flush()
