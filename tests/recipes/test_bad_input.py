"""Issue 11 §5, limits and bad input: a bad source stops a load before anything is queued,
and bad HTTP input gets a 4xx in the one error shape, never a 500.

Load paths check what matters for "all or nothing": the command's message, and that
neither TASKS nor the ledger (EVENTS) holds anything of the dataset afterwards.
"""

from __future__ import annotations

import httpx
import pytest

from ledger.connection import connect
from ledger.errors import LedgerError
from ledger.hashing import set_hashes
from ledger.streams import EVENTS_STREAM, TASKS_STREAM, ensure_streams, events_subject, tasks_subject
from ledger.tasks import count_tasks, load_tasks
from quorum.cli.users import add_user
from recipes.loaders import source_options
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, free_port, quorum_cli, run


async def _stored(nats_url: str, dataset: str) -> tuple[int, int]:
    """(messages in TASKS, messages in EVENTS) for `dataset`."""
    nc = await connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        counts = []
        for stream, subject in (
            (TASKS_STREAM, tasks_subject(dataset)),
            (EVENTS_STREAM, events_subject(dataset, ">")),
        ):
            info = await js.stream_info(stream, subjects_filter=subject)
            counts.append(sum((info.state.subjects or {}).values()))
        return counts[0], counts[1]
    finally:
        await nc.close()


def _recipe(nats_url, tmp_path, *args, env=None):
    """`quorum textcat.manual …` against the test NATS; it must stop before serving."""
    full_env = {"NATS_URL": nats_url, **(env or {})}
    return quorum_cli(
        "textcat.manual",
        *args,
        "--label",
        "Tech",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        env=full_env,
        timeout=90,
    )


def _stderr(result) -> str:
    return " ".join(result.stderr.decode().split())


# 1. Loading is all or nothing.


def test_a_record_over_the_size_limit_stops_the_load_before_anything_is_queued(
    nats_url, dataset_name, tmp_path
):
    source = tmp_path / "big.jsonl"
    with source.open("wb") as handle:  # 9 MB: over the default limit and over NATS' max payload
        handle.write(b'{"text": "one"}\n{"text": "two"}\n{"text": "')
        handle.write(b"x" * (9 * 1024 * 1024))
        handle.write(b'"}\n{"text": "four"}\n')
    result = _recipe(nats_url, tmp_path, dataset_name, str(source))
    assert result.returncode == 1, result.stderr.decode()[-2000:]
    message = _stderr(result)
    assert "line 3 of big.jsonl is 9.0 MB, over the limit of 1.0 MB per task" in message
    assert "--max-task-bytes" in message and "Traceback" not in message
    assert run(_stored(nats_url, dataset_name)) == (0, 0)


def test_max_task_bytes_setting_lowers_the_limit(nats_url, dataset_name, tmp_path):
    source = tmp_path / "news.jsonl"
    source.write_text('{"text": "short"}\n{"text": "' + "a" * 300 + '"}\n')
    result = _recipe(nats_url, tmp_path, dataset_name, str(source), env={"QUORUM_MAX_TASK_BYTES": "100"})
    assert result.returncode == 1
    assert "line 2 of news.jsonl is 3" in _stderr(result) and "over the limit of 100 bytes" in _stderr(result)
    option = _recipe(nats_url, tmp_path, dataset_name, str(source), "--max-task-bytes", "100")
    assert option.returncode == 1 and "over the limit of 100 bytes" in _stderr(option)
    too_big = _recipe(nats_url, tmp_path, dataset_name, str(source), "--max-task-bytes", str(9 * 1024 * 1024))
    assert too_big.returncode == 1 and "over the 8,388,608 bytes a NATS message may carry" in _stderr(too_big)
    assert run(_stored(nats_url, dataset_name)) == (0, 0)


def test_a_task_too_big_for_nats_is_a_clear_error_not_a_traceback(nats_url, dataset_name):
    # A recipe can make a task bigger than its source record (spaCy tokens): the last guard.
    task = set_hashes({"text": "y" * (9 * 1024 * 1024)})

    async def load() -> None:
        nc = await connect(nats_url)
        try:
            await ensure_streams(nc.jetstream())
            await load_tasks(nc, dataset_name, [task])
        finally:
            await nc.close()

    with pytest.raises(LedgerError, match="bytes as queued, over the .* bytes the NATS server accepts"):
        run(load())
    assert run(_stored(nats_url, dataset_name)) == (0, 0)


# 3. Encodings, and the users file.


def test_latin1_source_names_file_line_and_encoding_and_queues_nothing(nats_url, dataset_name, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes("A first note\nCafé society\n".encode("latin-1"))
    result = _recipe(nats_url, tmp_path, dataset_name, str(source))
    assert result.returncode == 1
    message = _stderr(result)
    assert "line 2 of notes.txt is not valid utf-8 (byte 0xe9 at column 4)" in message
    assert "--encoding latin-1" in message and "Traceback" not in message
    unknown = _recipe(nats_url, tmp_path, dataset_name, str(source), "--encoding", "klingon")
    assert unknown.returncode == 1 and "unknown encoding 'klingon'" in _stderr(unknown)
    assert run(_stored(nats_url, dataset_name)) == (0, 0)


def test_encoding_option_loads_latin1_and_a_bom_is_accepted(nats_url, dataset_name, load, tmp_path):
    latin = tmp_path / "notes.txt"
    latin.write_bytes("A first note\nCafé society\n".encode("latin-1"))
    with source_options(encoding="latin-1"):
        load(textcat_manual(dataset_name, latin, "Tech"))
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "Na\xc3\xafve start"}\n')
    load(textcat_manual(dataset_name, bom, "Tech"))
    assert run(_stored(nats_url, dataset_name))[0] == 3

    async def texts() -> list[str]:
        nc = await connect(nats_url)
        try:
            js = nc.jetstream()
            assert await count_tasks(nc, dataset_name) == 3
            sub = await js.subscribe(tasks_subject(dataset_name), ordered_consumer=True)
            found = []
            for _ in range(3):
                msg = await sub.next_msg(timeout=5)
                found.append(msg.data.decode())
            await sub.unsubscribe()
            return found
        finally:
            await nc.close()

    queued = " ".join(run(texts()))
    assert "Café society" in queued and "Naïve start" in queued and "\\ufeff" not in queued


def test_a_bad_users_file_stops_the_recipe_before_anything_is_queued(nats_url, dataset_name, tmp_path):
    source = str(EXAMPLES / "news.jsonl")
    latin = tmp_path / "users.jsonl"
    latin.write_bytes('{"user": "zoë", "hash": "x"}\n'.encode("latin-1"))
    result = _recipe(nats_url, tmp_path, dataset_name, source, "--users-file", str(latin))
    assert result.returncode == 1 and "line 1 of users file users.jsonl is not valid utf-8" in _stderr(result)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"user": "alex", "hash": "pbkdf2_sha256$lots$00$00"}\n')
    result = _recipe(nats_url, tmp_path, dataset_name, source, env={"QUORUM_USERS_FILE": str(broken)})
    assert result.returncode == 1 and "the hash of user 'alex' is not a pbkdf2_sha256 hash" in _stderr(result)
    for path, expected in (
        (tmp_path / "missing.jsonl", "cannot read users file"),
        (tmp_path / "empty", "no users"),
    ):
        if path.name == "empty":
            path.write_text("\n")
        result = _recipe(nats_url, tmp_path, dataset_name, source, "--users-file", str(path))
        assert result.returncode == 1 and expected in _stderr(result), _stderr(result)
    assert run(_stored(nats_url, dataset_name)) == (0, 0)


def test_a_good_users_file_passes_the_check(tmp_path):
    from feed.access import check_users_file

    users = tmp_path / "users.jsonl"
    add_user(users, "alex", "alex-password")
    users.write_bytes(b"\xef\xbb\xbf" + users.read_bytes())  # saved again by a Windows editor
    assert check_users_file(users) == 1


# 2. Bad HTTP input: 4xx in the error shape, never 500.


@pytest.fixture
def served(settings, dataset_name, load, start_server):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech,Politics", exclusive=True))
    feed = start_server(settings, dataset_name, workers=1)
    with httpx.Client(base_url=feed.url, timeout=30) as client:
        yield client


def assert_error(response, status, code, fragment=""):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "status"}, body
    assert body["status"] == status and body["error"] == code, body
    assert fragment in body["message"], body


def test_session_with_a_trailing_newline_is_400(served):
    for route in ("/get_session_questions", "/give_answers"):
        response = served.post(f"{route}?session=alex%0A", json={"answers": []})
        assert_error(response, 400, "bad_request", "invalid session name 'alex\\n'")
    assert_error(
        served.post("/give_answers", json={"answers": [], "session_id": "alex\n"}),
        400,
        "bad_request",
        "invalid",
    )
    assert_error(served.get("/dashboard/data?dataset=news%0A"), 400, "bad_request", "invalid dataset name")


def test_deeply_nested_json_body_is_400(served):
    deep = b"[" * 100_000 + b"]" * 100_000
    headers = {"content-type": "application/json"}
    for route, body in (
        ("/give_answers?session=alex", b'{"answers": ' + deep + b"}"),
        ("/give_answers?session=alex", deep),
        ("/get_session_questions?session=alex", deep),
    ):
        assert_error(
            served.post(route, content=body, headers=headers), 400, "bad_request", "nested too deeply"
        )


def test_nul_byte_in_a_static_path_is_404(served):
    for path in ("/static/%00.js", "/static/app%00.js", "/static/views/%00"):
        assert_error(served.get(path), 404, "not_found")
    assert served.get("/static/app.js").status_code == 200


def test_sessions_named_twice_must_agree_and_reload_must_be_a_boolean(served):
    conflicting = served.post("/get_session_questions?session=alex", json={"session_id": "bob"})
    assert_error(conflicting, 400, "bad_request", "names sessions alex, bob")
    same = served.post("/get_session_questions?session=alex", json={"session_id": f"{_dataset(served)}-alex"})
    assert same.status_code == 200, same.text
    assert_error(
        served.post("/get_session_questions?session=", json={"session_id": "alex"}), 400, "bad_request"
    )
    assert_error(
        served.post("/get_session_questions?session=alex", json={"reload": 0}), 400, "bad_request", "reload"
    )


def test_wrong_method_is_405_with_allow(served):
    response = served.request("TRACE", "/health")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def _dataset(client) -> str:
    return client.get("/project").json()["dataset"]
