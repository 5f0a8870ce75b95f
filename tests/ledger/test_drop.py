"""`quorum drop`: the tombstone in the ledger, the dataset's queue and config gone, others untouched."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo

from feed.routing import claim_first_time
from ledger.connection import connect
from ledger.datasets import list_datasets
from ledger.drop import drop_event_id, owns_consumer
from ledger.routes import ensure_session_consumer, route_for
from ledger.streams import HOLDS_STREAM, SEEN_STREAM, TASKS_STREAM, ensure_streams, holds_subject
from projections.duck import load_projections
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES, quorum_cli, run
from tests.ledger.test_ledger_tail import ledger_cli
from tests.ledger_writes import answer, drop, write

NEWS = EXAMPLES / "news.jsonl"


def dump(nats_url: str, dataset: str) -> list[dict]:
    result = ledger_cli("dump", "--dataset", dataset, nats_url=nats_url)
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.splitlines()]


async def _pending(nats_url: str, stream: str, subject: str) -> int:
    """Messages `stream` holds on `subject`."""
    nc = await connect(nats_url)
    js = nc.jetstream()
    try:
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=10.0, mem_storage=True)
        psub = await js.pull_subscribe(subject, stream=stream, config=config)
        info = await psub.consumer_info()
        await js.delete_consumer(stream, info.name)
        return int(info.num_pending or 0)
    finally:
        await nc.close()


def pending(nats_url: str, stream: str, subject: str) -> int:
    return run(_pending(nats_url, stream, subject))


async def _consumers(nats_url: str) -> set[str]:
    nc = await connect(nats_url)
    try:
        return {info.name for info in await nc.jetstream().consumers_info(TASKS_STREAM)}
    finally:
        await nc.close()


async def _routing_state(nats_url: str, dataset: str) -> None:
    """A session's consumer, a k-overlap claim and a holds record, as a feed would leave them."""
    nc = await connect(nats_url)
    try:
        route = route_for(
            dataset, feed_overlap=True, annotations_per_task=None, ack_wait=60, max_ack_pending=100
        )
        await ensure_session_consumer(nc, route, "alex")
        await claim_first_time(nc, dataset, "alex", 42)
        await nc.jetstream().publish(holds_subject(dataset, "alex"), b"{}", stream=HOLDS_STREAM)
    finally:
        await nc.close()


def dropped_flags(nats_url: str) -> dict[str, bool]:
    with run(load_projections(nats_url)) as projections:
        return dict(projections.execute("SELECT dataset, dropped FROM datasets").fetchall())


async def _configured(nats_url: str) -> list[str]:
    nc = await connect(nats_url)
    try:
        return await list_datasets(await ensure_streams(nc.jetstream()))
    finally:
        await nc.close()


def db_out(dataset: str, nats_url: str) -> subprocess.CompletedProcess[bytes]:
    return quorum_cli("db-out", dataset, env={"NATS_URL": nats_url})


def test_drop_removes_the_dataset_and_leaves_a_prefixed_neighbour_alone(nats_url, dataset_name, load):
    other = f"{dataset_name}-2"  # `feed-<ds>` is a prefix of its consumer names
    load(textcat_manual(dataset_name, NEWS, "Tech"), annotations_per_task=2)
    load(textcat_manual(other, NEWS, "Tech"))
    run(write(nats_url, [[answer(dataset_name, "alex", t) for t in (1, 2, 3)], [answer(other, "alex", 1)]]))
    run(_routing_state(nats_url, dataset_name))
    run(_routing_state(nats_url, other))
    other_before = db_out(other, nats_url)
    assert len(db_out(dataset_name, nats_url).stdout.splitlines()) == 3
    consumers_before = run(_consumers(nats_url))
    mine = {
        f"slot-{len(dataset_name)}-{dataset_name}-0",
        f"slot-{len(dataset_name)}-{dataset_name}-1",
        f"sess-{len(dataset_name)}-{dataset_name}-alex",
    }
    assert mine <= consumers_before

    result = quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url})

    assert result.returncode == 0, result.stderr.decode()
    message = result.stderr.decode()
    seq = int(re.search(r"tombstone at ledger seq ([\d,]+)", message).group(1).replace(",", ""))
    assert f"✔ dropped {dataset_name}: tombstone at ledger seq" in message
    assert "300 queued tasks purged, 3 feed consumers removed" in message
    assert "history stays in the ledger until `ledger compact`" in message
    # The ledger: the tombstone is the dataset's last event; its answers are still there.
    events = dump(nats_url, dataset_name)
    assert events[-1]["kind"] == "dataset_dropped" and events[-1]["seq"] == seq
    assert events[-1]["event_id"] == drop_event_id(dataset_name, events[-1]["recorded_at"])
    assert sum(e["kind"] == "answer_recorded" for e in events) == 3
    # The projections: dropped, so db-out and stats know it no more.
    gone = db_out(dataset_name, nats_url)
    assert gone.returncode == 1 and f"unknown dataset {dataset_name!r}" in gone.stderr.decode()
    assert dropped_flags(nats_url)[dataset_name] is True
    stats = quorum_cli("stats", env={"NATS_URL": nats_url}).stdout.decode()
    assert not re.search(rf"\b{dataset_name}\s", stats) and other in stats
    assert dataset_name not in run(_configured(nats_url))
    # Routing state: nothing of the dataset is left in TASKS, SEEN or HOLDS, or among the consumers.
    assert pending(nats_url, TASKS_STREAM, f"quorum.tasks.{dataset_name}.>") == 0
    assert pending(nats_url, SEEN_STREAM, f"quorum.seen.{dataset_name}.>") == 0
    assert pending(nats_url, HOLDS_STREAM, f"quorum.holds.{dataset_name}.>") == 0
    assert run(_consumers(nats_url)) == consumers_before - mine
    # The neighbour: untouched, byte for byte.
    assert pending(nats_url, TASKS_STREAM, f"quorum.tasks.{other}.>") == 300
    assert pending(nats_url, SEEN_STREAM, f"quorum.seen.{other}.>") == 1
    assert pending(nats_url, HOLDS_STREAM, f"quorum.holds.{other}.>") == 1
    assert {f"feed-{other}", f"sess-{len(other)}-{other}-alex"} <= run(_consumers(nats_url))
    assert dropped_flags(nats_url)[other] is False
    after = db_out(other, nats_url)
    assert (
        after.returncode == 0 and after.stdout == other_before.stdout and len(after.stdout.splitlines()) == 1
    )


def test_dropping_again_says_it_was_already_dropped_and_appends_nothing(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    assert quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url}).returncode == 0
    tombstone = dump(nats_url, dataset_name)[-1]

    again = quorum_cli("drop", dataset_name, env={"NATS_URL": nats_url})  # no prompt: nothing to lose

    assert again.returncode == 0, again.stderr.decode()
    assert f"dataset {dataset_name} was already dropped (tombstone at ledger seq {tombstone['seq']:,})" in (
        again.stderr.decode()
    )
    assert "nothing left to clean up" in again.stderr.decode()
    assert dump(nats_url, dataset_name)[-1] == tombstone


def test_a_drop_interrupted_before_its_cleanup_is_finished_by_running_it_again(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    run(write(nats_url, [[drop(dataset_name)]]))  # the tombstone made it; the cleanup did not

    result = quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url})

    assert result.returncode == 0, result.stderr.decode()
    assert "300 queued tasks purged" in result.stderr.decode()
    assert pending(nats_url, TASKS_STREAM, f"quorum.tasks.{dataset_name}.>") == 0
    assert db_out(dataset_name, nats_url).returncode == 1
    assert [e["kind"] for e in dump(nats_url, dataset_name)][-2:] == ["dataset_dropped", "dataset_dropped"]


def test_reloading_after_a_drop_starts_afresh(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    run(write(nats_url, [[answer(dataset_name, "alex", 1), answer(dataset_name, "bob", 2)]]))
    assert quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url}).returncode == 0

    load(textcat_manual(dataset_name, NEWS, "Tech"))

    fresh = db_out(dataset_name, nats_url)
    assert fresh.returncode == 0 and fresh.stdout == b""
    assert dataset_name in run(_configured(nats_url))
    run(write(nats_url, [[answer(dataset_name, "cat", 3)]]))
    assert [
        json.loads(line)["_session_id"] for line in db_out(dataset_name, nats_url).stdout.splitlines()
    ] == [f"{dataset_name}-cat"]


def test_reloading_right_after_a_drop_queues_the_tasks_again(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    assert quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url}).returncode == 0
    summary = load(textcat_manual(dataset_name, NEWS, "Tech"))
    assert summary.queued == 300
    assert pending(nats_url, TASKS_STREAM, f"quorum.tasks.{dataset_name}.>") == 300


def test_dropping_an_unknown_dataset_is_an_error_and_appends_nothing(nats_url, dataset_name):
    result = quorum_cli("drop", dataset_name, "--yes", env={"NATS_URL": nats_url})
    assert result.returncode == 1
    assert f"unknown dataset {dataset_name!r}: nothing to drop" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert dump(nats_url, dataset_name) == []


def test_an_invalid_name_is_a_clear_error(nats_url):
    result = quorum_cli("drop", "bad.name", "--yes", env={"NATS_URL": nats_url})
    assert result.returncode == 1
    assert "invalid dataset name 'bad.name'" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize("reply", [b"n\n", b""])
def test_without_yes_declining_drops_nothing(nats_url, dataset_name, load, reply):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    before = dump(nats_url, dataset_name)

    result = quorum_cli("drop", dataset_name, env={"NATS_URL": nats_url}, input=reply)

    assert result.returncode == 1
    assert f"Drop dataset {dataset_name!r} and its 300 queued tasks?" in result.stdout.decode()
    assert "nothing dropped" in result.stderr.decode()
    assert dump(nats_url, dataset_name) == before
    assert pending(nats_url, TASKS_STREAM, f"quorum.tasks.{dataset_name}.>") == 300
    assert db_out(dataset_name, nats_url).returncode == 0


def test_without_yes_confirming_drops(nats_url, dataset_name, load):
    load(textcat_manual(dataset_name, NEWS, "Tech"))
    result = quorum_cli("drop", dataset_name, env={"NATS_URL": nats_url}, input=b"y\n")
    assert result.returncode == 0, result.stderr.decode()
    assert dump(nats_url, dataset_name)[-1]["kind"] == "dataset_dropped"


def test_consumers_are_matched_by_name_and_task_subject():
    def info(name: str, dataset: str) -> ConsumerInfo:
        config = ConsumerConfig(durable_name=name, filter_subject=f"quorum.tasks.{dataset}.>")
        return ConsumerInfo(name=name, stream_name=TASKS_STREAM, config=config, created=None)

    assert owns_consumer("news", info("feed-news", "news"))
    assert owns_consumer("news", info("slot-4-news-3", "news"))
    assert owns_consumer("news", info("sess-4-news-alex", "news"))
    assert not owns_consumer("news", info("feed-news-2", "news-2"))
    assert not owns_consumer("news", info("sess-6-news-2-alex", "news-2"))
    assert not owns_consumer("news", info("slot-6-news-k-0", "news-k"))
    assert owns_consumer("news-k0", info("feed-news-k0", "news-k0"))
    assert not owns_consumer("news", info("other", "news"))  # not a feed consumer (ephemeral, say)


def test_help_has_an_example():
    result = quorum_cli("drop", "--help")
    assert result.returncode == 0
    assert "Example: quorum drop news --yes" in result.stdout.decode()
