"""validate_answer and before_db run in the feed workers of a real `quorum … -F` server:
a refused answer is a 422 with the recipe's message, what before_db returns is stored, and
a before_db returning the wrong thing stores nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, quorum_cli, start_recipe, wait_ready

RECIPE = """
import os

import prodigy


@prodigy.recipe("checked.text", dataset=("Dataset", "positional", None, str))
def checked(dataset):
    stream = [{"text": f"headline {n}"} for n in range(20)]

    def validate_answer(eg):
        assert eg["answer"] != "ignore", f"{eg['text']} is required: accept or reject it"

    def before_db(examples):
        if os.environ.get("BROKEN_BEFORE_DB"):
            return examples[:-1]
        for eg in examples:
            eg["checked_by"] = "before_db"
        return examples

    return {
        "dataset": dataset,
        "view_id": "text",
        "stream": stream,
        "validate_answer": validate_answer,
        "before_db": before_db,
        "get_session_id": lambda: "night-shift",
    }
"""


@pytest.fixture
def serve(tmp_path: Path, nats_url: str) -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start(dataset: str, **env: str) -> str:
        recipe = tmp_path / "recipe.py"
        recipe.write_text(textwrap.dedent(RECIPE), encoding="utf-8")
        port = free_port()
        args = ["checked.text", dataset, "-F", str(recipe), "--port", str(port), "--host", "127.0.0.1"]
        process = start_recipe([*args, "--workers", "1"], tmp_path, {"NATS_URL": nats_url, **env})
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        return url

    yield start
    for process in started:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _tasks(url: str, session: str) -> list[dict]:
    return httpx.post(f"{url}/get_session_questions?session={session}", json={}, timeout=10).json()["tasks"]


def _give(url: str, session: str, answers: list[dict]) -> httpx.Response:
    return httpx.post(f"{url}/give_answers?session={session}", json={"answers": answers}, timeout=10)


def test_validate_answer_refuses_with_the_recipes_message_and_before_db_shapes_what_is_stored(
    serve, nats_url, dataset_name, tmp_path
):
    url = serve(dataset_name)
    # A page opened without ?session= uses the session the recipe names.
    assert httpx.get(f"{url}/project", timeout=5).json()["default_session"] == "night-shift"
    first, second = _tasks(url, "alex")[:2]

    refused = _give(url, "alex", [{**first, "answer": "ignore"}])
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "recipe_rejected"
    assert body["message"] == f"{first['text']} is required: accept or reject it"
    assert body["task_hash"] == first["_task_hash"]

    fixed = _give(url, "alex", [{**first, "answer": "reject"}, {**second, "answer": "accept"}])
    assert fixed.status_code == 200, fixed.text

    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url}, cwd=tmp_path)
    rows = {row["text"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert rows[first["text"]]["answer"] == "reject" and rows[second["text"]]["answer"] == "accept"
    assert {row["checked_by"] for row in rows.values()} == {"before_db"}
    assert str(rows[second["text"]]["_task_hash"]) == second["_task_hash"]  # identity untouched


def test_a_before_db_returning_fewer_examples_stores_nothing(serve, nats_url, dataset_name, tmp_path):
    url = serve(dataset_name, BROKEN_BEFORE_DB="1")
    tasks = _tasks(url, "alex")[:2]
    failed = _give(url, "alex", [{**task, "answer": "accept"} for task in tasks])
    assert failed.status_code == 500
    assert failed.json()["error"] == "recipe_failed"
    assert "recipe 'checked.text': before_db returned 1 examples for 2 answers" in failed.json()["message"]
    out = quorum_cli("db-out", dataset_name, env={"NATS_URL": nats_url}, cwd=tmp_path)
    assert out.stdout.strip() == b""
