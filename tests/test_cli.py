"""The `quorum` command as a user runs it: recipes, db-out, stats, and their errors."""

from __future__ import annotations

import json
import signal
import socket

import httpx
import pytest

from ledger.connection import connect
from ledger.tasks import count_tasks
from tests.conftest import EXAMPLES, free_port, quorum_cli, run, start_recipe, wait_ready


def test_recipe_db_out_and_stats_with_embedded_nats(tmp_path):
    """The README flow: run a recipe, annotate over HTTP, db-out while running and after."""
    port = free_port()
    server = start_recipe(
        [
            "textcat.manual",
            "topics",
            str(EXAMPLES / "news.jsonl"),
            "--label",
            "Tech,Politics",
            "--exclusive",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
    )
    try:
        url = f"http://localhost:{port}"
        wait_ready(url, server)
        tasks = httpx.post(f"{url}/get_session_questions?session=alex", json={}).json()["tasks"][:2]
        answers = [{**tasks[0], "answer": "accept", "accept": ["Tech"]}, {**tasks[1], "answer": "reject"}]
        assert httpx.post(f"{url}/give_answers?session=alex", json={"answers": answers}).status_code == 200
        running = quorum_cli("db-out", "topics", cwd=tmp_path)
        assert running.returncode == 0, running.stderr.decode()
        rows = [json.loads(line) for line in running.stdout.splitlines()]
        assert [r["answer"] for r in rows] == ["accept", "reject"]
        assert rows[0]["accept"] == ["Tech"] and rows[0]["_view_id"] == "choice"
        assert isinstance(rows[0]["_input_hash"], int) and isinstance(rows[0]["_task_hash"], int)
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert "Starting Quorum at http://localhost" in err.decode()
    # The runner queues a few batches ahead (4 of 10 for one session), the rest lazily.
    assert "40 read, 40 queued, 0 duplicates" in " ".join(err.decode().split())
    assert server.returncode == 0
    # After the server stopped, db-out starts the embedded NATS on the same data dir.
    stopped = quorum_cli("db-out", "topics", cwd=tmp_path)
    assert stopped.stdout == running.stdout
    stats = quorum_cli("stats", cwd=tmp_path)
    assert stats.returncode == 0
    assert "topics" in stats.stdout.decode() and "alex (2)" in stats.stdout.decode()
    only_accept = quorum_cli("db-out", "topics", "--answer", "accept", cwd=tmp_path)
    assert len(only_accept.stdout.splitlines()) == 1


def test_reloading_the_same_source_queues_nothing_new(tmp_path, nats_url, dataset_name):
    port = free_port()
    for expected in ("40 read, 40 queued, 0 duplicates", "40 tasks already queued"):
        server = start_recipe(
            [
                "ner.manual",
                dataset_name,
                "blank:en",
                str(EXAMPLES / "news.jsonl"),
                "--label",
                "PERSON",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env={"NATS_URL": nats_url},
        )
        try:
            wait_ready(f"http://localhost:{port}", server)
        finally:
            server.send_signal(signal.SIGINT)
            _, err = server.communicate(timeout=30)
        assert expected in " ".join(err.decode().split())
    assert _queued(nats_url, dataset_name) == 40


def _queued(nats_url, dataset):
    async def count():
        nc = await connect(nats_url)
        try:
            return await count_tasks(nc, dataset)
        finally:
            await nc.close()

    return run(count())


def test_malformed_line_names_file_and_line_and_queues_nothing(tmp_path, nats_url, dataset_name):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n' * 5 + '{"text": oops}\n')
    result = quorum_cli(
        "ner.manual",
        dataset_name,
        "blank:en",
        str(source),
        "--label",
        "A",
        "--port",
        str(free_port()),
        env={"NATS_URL": nats_url},
    )
    assert result.returncode == 1
    assert "line 6 of bad.jsonl is not valid JSON" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert _queued(nats_url, dataset_name) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ner.manul", "d", "blank:en", "x.jsonl"], "Did you mean ner.manual"),
        (
            ["ner.manual", "d", "en_core_nope", "SRC", "--label", "A"],
            "can't find spaCy pipeline 'en_core_nope'",
        ),
        (["ner.manual", "d", "blank:en", "SRC", "--label", "A,,B"], "bad label list"),
        (["textcat.manual", "d", "EMPTY", "--label", "A"], "no examples in empty.jsonl"),
        (["textcat.manual", "d", "NOTEXT", "--label", "A"], 'line 1 of notext.jsonl has no "text"'),
        (["textcat.manual", "bad.name", "SRC", "--label", "A"], "invalid dataset name 'bad.name'"),
    ],
)
def test_bad_input_gets_a_message_with_the_fix(tmp_path, args, message):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notext.jsonl").write_text('{"title": "x"}\n')
    paths = {
        "SRC": str(EXAMPLES / "news.jsonl"),
        "EMPTY": str(tmp_path / "empty.jsonl"),
        "NOTEXT": str(tmp_path / "notext.jsonl"),
    }
    result = quorum_cli(*[paths.get(a, a) for a in args], "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr.decode(), result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert not (tmp_path / ".quorum" / "nats").exists() or args[0] == "ner.manul"


def test_port_in_use_is_a_clear_error(tmp_path, nats_url, dataset_name):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = quorum_cli(
            "textcat.manual",
            dataset_name,
            str(EXAMPLES / "news.jsonl"),
            "--label",
            "A",
            "--port",
            str(port),
            env={"NATS_URL": nats_url},
        )
    assert result.returncode == 1
    assert f"port {port} on localhost is in use" in result.stderr.decode()
    assert _queued(nats_url, dataset_name) == 0


def test_unreachable_nats_url_is_a_clear_error(tmp_path):
    dead = f"nats://127.0.0.1:{free_port()}"
    for args in (
        ["db-out", "news"],
        ["stats"],
        ["textcat.manual", "d", str(EXAMPLES / "news.jsonl"), "--label", "A", "--port", str(free_port())],
    ):
        result = quorum_cli(*args, env={"NATS_URL": dead}, cwd=tmp_path)
        assert result.returncode == 1
        assert f"cannot reach NATS at {dead}" in result.stderr.decode()
        assert "Traceback" not in result.stderr.decode()


def test_unusable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = quorum_cli("stats", "--data-dir", str(blocker / "sub"), cwd=tmp_path)
    assert result.returncode == 1
    assert "is not usable" in result.stderr.decode()


def test_db_out_unknown_dataset(tmp_path, nats_url):
    result = quorum_cli("db-out", "nosuchdataset", env={"NATS_URL": nats_url})
    assert result.returncode == 1
    assert "unknown dataset 'nosuchdataset'" in result.stderr.decode()


@pytest.mark.parametrize(
    "command", ["ner.manual", "textcat.manual", "serve", "db-out", "stats", "progress", "users add"]
)
def test_every_command_has_help_with_an_example(command):
    result = quorum_cli(*command.split(), "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout.decode()
