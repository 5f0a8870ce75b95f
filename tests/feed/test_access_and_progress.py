"""Per-annotator access, exclusion, reloads and side-effect-free queue status."""

from __future__ import annotations

import json

import httpx
import pytest

from feed.access import hash_password, verify_password
from quorum.cli.users import add_user
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, quorum_cli


def test_password_hashes_verify_and_differ():
    encoded = hash_password("correct horse")
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert hash_password("correct horse") != encoded  # salted


@pytest.fixture
def team(settings, dataset_name, load, start_server, tmp_path):
    users = tmp_path / "users.jsonl"
    add_user(users, "alex", "alex-password")
    add_user(users, "bob", "bob-password")
    assert "alex-password" not in users.read_text()
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(
        settings, dataset_name, users_file=users, allowed_sessions="alex,bob", admin_token="s3cret-admin"
    )
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        yield client


def test_users_annotate_only_as_themselves(team):
    alex = ("alex", "alex-password")
    batch = team.post("/get_session_questions?session=alex", json={}, auth=alex)
    assert batch.status_code == 200
    task = batch.json()["tasks"][0]
    # No credentials, wrong password: 401 with a challenge.
    anonymous = team.post("/get_session_questions?session=alex", json={})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
    assert team.post("/get_session_questions?session=alex", json={}, auth=("alex", "nope")).status_code == 401
    # alex's credentials cannot read or answer as bob.
    as_bob = team.post("/get_session_questions?session=bob", json={}, auth=alex)
    assert (
        as_bob.status_code == 403 and "may not annotate or read as session 'bob'" in as_bob.json()["message"]
    )
    # bob cannot use alex's task token, even with his own valid credentials.
    stolen = team.post(
        "/give_answers?session=bob",
        json={"answers": [{**task, "answer": "accept"}]},
        auth=("bob", "bob-password"),
    )
    assert stolen.status_code == 403 and "issued to session 'alex'" in stolen.json()["message"]
    ok = team.post("/give_answers?session=alex", json={"answers": [{**task, "answer": "accept"}]}, auth=alex)
    assert ok.status_code == 200


def test_basic_auth_user_is_the_session_for_api_clients(team):
    response = team.post("/get_session_questions", json={}, auth=("bob", "bob-password"))
    assert response.status_code == 200 and response.json()["session_id"].endswith("-bob")


def test_unknown_session_with_allow_list_is_403(team):
    response = team.post("/get_session_questions?session=carol", json={}, auth=("carol", "whatever"))
    assert response.status_code == 403
    assert "not allowed to annotate here" in response.json()["message"]


def test_progress_needs_the_admin_token_and_hands_out_nothing(team):
    assert team.get("/progress").status_code == 401
    headers = {"Authorization": "Bearer s3cret-admin"}
    before = team.get("/progress", headers=headers).json()
    assert before["queued"] == 300 and before["out"] == 0 and before["mode"] == "none"
    again = team.get("/progress", headers=headers).json()
    assert again == before  # reading hands out nothing
    team.post("/get_session_questions?session=alex", json={}, auth=("alex", "alex-password"))
    after = team.get("/progress", headers=headers).json()
    assert after["queued"] == 290 and after["out"] == 10
    assert after["sessions"] == [{"session": "alex", "out": 10, "answered": 0, "queued": None}]


def test_reload_gives_back_held_tasks_and_nothing_twice(settings, dataset_name, load, start_server):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(settings, dataset_name)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        first = client.post("/get_session_questions?session=alex", json={}).json()["tasks"]
        client.post("/give_answers?session=alex", json={"answers": [{**first[0], "answer": "accept"}]})
        # Page reload: the nine unanswered tasks come back, with their tokens, answered one does not.
        again = client.post("/get_session_questions?session=alex", json={"reload": True}).json()["tasks"]
        assert [t["_task_hash"] for t in again[:9]] == [t["_task_hash"] for t in first[1:]]
        assert first[0]["_task_hash"] not in {t["_task_hash"] for t in again}
        # A plain prefetch never repeats held tasks.
        more = client.post("/get_session_questions?session=alex", json={}).json()["tasks"]
        assert not {t["_task_hash"] for t in more} & {t["_task_hash"] for t in first}
        answered = client.post(
            "/give_answers?session=alex", json={"answers": [{**t, "answer": "reject"} for t in again]}
        )
        assert answered.status_code == 200


def test_exclude_skips_tasks_answered_in_another_dataset(
    settings, dataset_name, load, start_server, nats_url
):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    feed = start_server(settings, dataset_name)
    with httpx.Client(base_url=feed.url, timeout=10) as client:
        tasks = client.post("/get_session_questions?session=alex", json={}).json()["tasks"]
        client.post(
            "/give_answers?session=alex", json={"answers": [{**t, "answer": "accept"} for t in tasks]}
        )
    second = f"{dataset_name}b"
    summary = load(textcat_manual(second, EXAMPLES / "news.jsonl", "Tech"), exclude=dataset_name)
    assert summary.excluded == 10 and summary.queued == 290
    third = f"{dataset_name}c"
    by_input = load(
        textcat_manual(third, EXAMPLES / "news.jsonl", "Politics"), exclude=dataset_name, exclude_by="input"
    )
    assert by_input.excluded == 10  # another label: other task hashes, same inputs


def test_both_overlap_settings_at_once_is_a_clear_error(tmp_path):
    result = quorum_cli(
        "textcat.manual",
        "d",
        str(EXAMPLES / "news.jsonl"),
        "--label",
        "A",
        "--feed-overlap",
        "--annotations-per-task",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "feed_overlap and annotations_per_task can't both be set" in result.stderr.decode()
    env = quorum_cli(
        "textcat.manual",
        "d",
        str(EXAMPLES / "news.jsonl"),
        "--label",
        "A",
        cwd=tmp_path,
        env={"QUORUM_FEED_OVERLAP": "true", "QUORUM_ANNOTATIONS_PER_TASK": "2"},
    )
    assert env.returncode == 1 and "can't both be set" in env.stderr.decode()


def test_routing_of_a_dataset_cannot_silently_change(tmp_path, nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"))
    result = quorum_cli(
        "textcat.manual",
        dataset_name,
        str(EXAMPLES / "news.jsonl"),
        "--label",
        "Tech",
        "--feed-overlap",
        env={"NATS_URL": nats_url},
    )
    assert result.returncode == 1 and "can't change to feed_overlap=True" in result.stderr.decode()


def test_quorum_progress_command(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech"), annotations_per_task=2)
    result = quorum_cli("progress", dataset_name, "--json", env={"NATS_URL": nats_url})
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["mode"] == "k" and status["annotations_per_task"] == 2 and status["queued"] == 600
    table = quorum_cli("progress", dataset_name, env={"NATS_URL": nats_url})
    assert "2 per task" in table.stdout.decode()


def test_users_add_command(tmp_path):
    users = tmp_path / "team.jsonl"
    result = quorum_cli("users", "add", "alex", "--users-file", str(users), "--password", "long-enough-pw")
    assert result.returncode == 0, result.stderr
    [record] = [json.loads(line) for line in users.read_text().splitlines()]
    assert record["user"] == "alex" and verify_password("long-enough-pw", record["hash"])
    bad = quorum_cli("users", "add", "al.ex", "--users-file", str(users), "--password", "long-enough-pw")
    assert bad.returncode != 0 and "invalid session name" in (bad.stderr + bad.stdout).decode()
