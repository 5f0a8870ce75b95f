"""The Python database API (`recipes.db`, `quorum.db`, `prodigy.components.db`) against a
real nats-server and the real projections: what it writes is in the ledger, in its own
reads and in `quorum db-out`; bad input names the example and writes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from ledger.connection import connect as connect_nats
from ledger.errors import InvalidName, QuorumError, UnknownDataset
from ledger.events import AnswerRecorded, DatasetConfigured
from ledger.hashing import set_hashes
from ledger.natsd import EmbeddedNats
from ledger.ownership import current_owner
from ledger.store import Ledger
from recipes.db import DB_RECIPE, IMPORTED_BY, BadExample, Database, connect
from tests.conftest import ROOT, quorum_cli, run


@pytest.fixture
def db(nats_url: str) -> Any:
    with connect(nats_url=nats_url) as database:
        yield database


@pytest.fixture
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NATS_URL", "QUORUM_NATS_URL", "QUORUM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def ledger_events(url: str, dataset: str) -> list[Any]:
    async def read() -> list[Any]:
        nc = await connect_nats(url)
        try:
            return [event async for entry in Ledger(nc).read(dataset) for event in entry.events]
        finally:
            await nc.close()

    return run(read(), timeout=30)


def db_out(nats_url: str, dataset: str) -> list[dict[str, Any]]:
    result = quorum_cli("db-out", dataset, env={"NATS_URL": nats_url})
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_added_examples_are_answers_in_ledger_reads_and_db_out(
    db: Database, nats_url: str, dataset_name: str
) -> None:
    assert db.add_dataset(dataset_name, {"description": "imported news"}) is True
    assert db.add_dataset(dataset_name) is False  # there already: left as it is
    assert dataset_name in db and dataset_name in db.datasets and len(db) == len(db.datasets)
    examples: list[dict[str, Any]] = [
        {"text": "Apple buys a startup", "label": "TECH"},
        {"text": "Rain all week", "label": "TECH", "answer": "reject", "meta": {"source": "wire"}},
    ]
    assert db.add_examples(examples, datasets=[dataset_name]) == 2
    assert examples[0] == {"text": "Apple buys a startup", "label": "TECH"}  # not changed in place

    rows = db.get_dataset_examples(dataset_name)
    assert [(r["text"], r["answer"]) for r in rows] == [
        ("Apple buys a startup", "accept"),
        ("Rain all week", "reject"),
    ]
    expected = set_hashes(dict(examples[1]))
    assert rows[1]["_input_hash"] == expected["_input_hash"]
    assert rows[1]["_task_hash"] == expected["_task_hash"]
    assert rows[1]["meta"] == {"source": "wire"}
    assert {r["_session_id"] for r in rows} == {f"{dataset_name}-imported"}
    assert {r["_view_id"] for r in rows} == {"text"}
    assert db.get_dataset(dataset_name) == rows
    assert db_out(nats_url, dataset_name) == rows

    events = ledger_events(nats_url, dataset_name)
    config = next(e for e in events if isinstance(e, DatasetConfigured))
    assert config.recipe == DB_RECIPE and config.config["meta"] == {"description": "imported news"}
    answers = [e for e in events if isinstance(e, AnswerRecorded)]
    assert [(a.session, a.annotator, a.handed_out_at) for a in answers] == [
        ("imported", IMPORTED_BY, None)
    ] * 2


def test_db_out_rows_import_back_as_they_were(db: Database, nats_url: str, dataset_name: str) -> None:
    db.add_dataset(dataset_name)
    spans = [{"start": 0, "end": 5, "label": "ORG"}]
    db.add_examples([{"text": "Apple buys", "spans": spans, "_view_id": "ner_manual"}], [dataset_name])
    exported = db.get_dataset_examples(dataset_name)
    copy = f"{dataset_name}-copy"
    db.add_dataset(copy, view_id="ner_manual")
    db.add_examples(exported, datasets=copy, session="alex")
    (row,) = db.get_dataset_examples(copy)
    assert row["_session_id"] == f"{copy}-alex"
    keep = ("text", "spans", "_input_hash", "_task_hash", "_view_id", "answer")
    assert {k: row[k] for k in keep} == {k: exported[0][k] for k in keep}


def test_hash_sets_of_one_or_more_datasets(db: Database, dataset_name: str) -> None:
    other = f"{dataset_name}-b"
    for name in (dataset_name, other):
        db.add_dataset(name)
    db.add_examples([{"text": "one"}, {"text": "two", "label": "X"}], datasets=[dataset_name])
    db.add_examples([{"text": "three", "_input_hash": 7, "_task_hash": "8"}], datasets=[other])
    first = [set_hashes({"text": "one"}), set_hashes({"text": "two", "label": "X"})]
    assert db.get_input_hashes(dataset_name) == {t["_input_hash"] for t in first}
    assert db.get_task_hashes(dataset_name) == {t["_task_hash"] for t in first}
    assert db.get_input_hashes(dataset_name, other) == {t["_input_hash"] for t in first} | {7}
    assert db.get_task_hashes(other) == {8}
    assert db.get_task_hashes() == set()
    assert all(isinstance(h, int) for h in db.get_task_hashes(dataset_name))


def test_latest_decision_of_a_session_wins(db: Database, nats_url: str, dataset_name: str) -> None:
    db.add_dataset(dataset_name)
    task = {"text": "Is this news?", "label": "NEWS"}
    db.add_examples([{**task, "answer": "accept"}], datasets=[dataset_name])
    db.add_examples([{**task, "answer": "reject"}], datasets=[dataset_name])
    (row,) = db.get_dataset_examples(dataset_name)
    assert row["answer"] == "reject"
    db.add_examples([{**task, "answer": "reject"}], datasets=[dataset_name])  # a repeat: nothing new
    db.add_examples([{**task, "answer": "accept"}], datasets=[dataset_name])
    assert [r["answer"] for r in db.get_dataset_examples(dataset_name)] == ["accept"]
    assert [r["answer"] for r in db_out(nats_url, dataset_name)] == ["accept"]


def test_drop_dataset(db: Database, dataset_name: str) -> None:
    db.add_dataset(dataset_name)
    db.add_examples([{"text": "gone soon"}], datasets=[dataset_name])
    count = len(db)
    report = db.drop_dataset(dataset_name)
    assert report.dataset == dataset_name and not report.already_dropped
    assert dataset_name not in db and len(db) == count - 1
    with pytest.raises(UnknownDataset, match=dataset_name):
        db.get_dataset_examples(dataset_name)
    with pytest.raises(UnknownDataset, match=dataset_name):
        db.drop_dataset(f"{dataset_name}-never")
    assert db.add_dataset(dataset_name) is True  # the name is free again, and empty
    assert db.get_dataset_examples(dataset_name) == []
    db.add_examples([{"text": "gone soon"}, {"text": "new"}], datasets=[dataset_name])
    assert [r["text"] for r in db.get_dataset_examples(dataset_name)] == ["gone soon", "new"]


BAD = [
    pytest.param(["not a dict"], "must be a dict, got str", id="not-a-dict"),
    pytest.param(
        [{"meta": {"x": 1}}], "has no input key: give it one of text, image, html, input", id="no-input"
    ),
    pytest.param([{"text": "a", "answer": "maybe"}], "unknown answer 'maybe'", id="bad-answer"),
    pytest.param([{"text": "a", "_task_hash": "abc"}], "bad _task_hash", id="bad-hash"),
    pytest.param(
        [{"text": "a", "spans": [{"start": 5, "end": 2, "label": "X"}]}],
        "start 5 is not before end 2",
        id="unprojectable-span",
    ),
    pytest.param([{"text": "a", "n": 2**70}], "does not fit a signed 64-bit integer", id="huge-int"),
    pytest.param([{"text": "a", "obj": object()}], "can't be stored as JSON", id="not-json"),
    pytest.param([{"text": "a", "_view_id": 3}], "_view_id must be a non-empty string", id="bad-view"),
]


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_a_bad_example_names_its_index_and_adds_nothing(
    db: Database, nats_url: str, dataset_name: str, bad: list[Any], message: str
) -> None:
    db.add_dataset(dataset_name)
    before = ledger_events(nats_url, dataset_name)
    good = [{"text": "fine"}, {"text": "also fine"}]
    with pytest.raises(BadExample, match=re.escape(message)) as caught:
        db.add_examples([*good, *bad], datasets=[dataset_name])
    assert caught.value.index == 2
    assert str(caught.value).startswith("example 2: ") and "nothing was added" in str(caught.value)
    assert isinstance(caught.value, QuorumError)
    assert ledger_events(nats_url, dataset_name) == before
    assert db.get_dataset_examples(dataset_name) == []


def test_unknown_or_invalid_datasets_add_nothing(db: Database, nats_url: str, dataset_name: str) -> None:
    db.add_dataset(dataset_name)
    missing = f"{dataset_name}-missing"
    with pytest.raises(UnknownDataset, match=rf"unknown dataset '{missing}'.*add_dataset"):
        db.add_examples([{"text": "a"}], datasets=[dataset_name, missing])
    with pytest.raises(InvalidName, match="invalid dataset name 'a.b'"):
        db.add_examples([{"text": "a"}], datasets=[dataset_name, "a.b"])
    with pytest.raises(QuorumError, match="needs a dataset"):
        db.add_examples([{"text": "a"}], datasets=[])
    with pytest.raises(QuorumError, match="wrap a single example in a list"):
        db.add_examples({"text": "a"}, datasets=[dataset_name])  # type: ignore[arg-type,dict-item]
    with pytest.raises(UnknownDataset, match=missing):
        db.get_task_hashes(dataset_name, missing)
    assert [type(e) for e in ledger_events(nats_url, dataset_name)] == [DatasetConfigured]
    assert ledger_events(nats_url, missing) == []


def test_connect_owns_the_data_dir_until_closed(tmp_path: Path, no_nats_env: None, dataset_name: str) -> None:
    data_dir = tmp_path / "data"
    first = connect(data_dir)
    try:
        owner = current_owner(data_dir.resolve())
        assert owner is not None and owner.pid == os.getpid() and owner.nats_url == first.url
        first.add_dataset(dataset_name)
        with connect(data_dir=str(data_dir)) as second:  # attaches to the owner's server
            assert second.url == first.url
            second.add_examples([{"text": "hello"}], datasets=[dataset_name])
        assert current_owner(data_dir.resolve()) is not None  # the attached one took nothing
        assert [r["text"] for r in first.get_dataset_examples(dataset_name)] == ["hello"]
    finally:
        first.close()
    first.close()  # twice is fine
    assert current_owner(data_dir.resolve()) is None
    with pytest.raises(QuorumError, match="closed"):
        _ = first.datasets
    with connect(data_dir) as again:  # the lock is free again; the store kept the data
        assert [r["text"] for r in again.get_dataset_examples(dataset_name)] == ["hello"]
    assert current_owner(data_dir.resolve()) is None


def test_the_owners_server_comes_before_nats_url(
    server: EmbeddedNats, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", nats_url)
    with connect(server.data_dir) as db:
        assert db.url == server.url
    with connect(server.data_dir, nats_url=nats_url) as db:
        assert db.url == nats_url
    with connect(tmp := server.data_dir.parent / "unowned") as db:
        assert db.url == nats_url and current_owner(tmp.resolve()) is None


def test_usable_inside_a_running_event_loop(nats_url: str, dataset_name: str) -> None:
    async def recipe_code() -> list[str]:
        with connect(nats_url=nats_url) as db:
            db.add_dataset(dataset_name)
            return db.datasets

    assert dataset_name in asyncio.run(recipe_code())


def test_public_and_prodigy_names(server: EmbeddedNats) -> None:
    import quorum.db
    from recipes.compat.prodigy.components import db as prodigy_db

    assert quorum.db.connect is connect and quorum.db.Database is Database
    assert prodigy_db.Database is Database
    with prodigy_db.connect("sqlite", {"data_dir": str(server.data_dir), "name": "x.db"}) as db:
        assert isinstance(db, Database) and db.url == server.url
    source = Path(prodigy_db.__file__).read_text()
    assert not re.search(r"^\s*(import|from) prodigy", source, re.MULTILINE)


def test_the_docs_example_runs(nats_url: str, monkeypatch: pytest.MonkeyPatch, dataset_name: str) -> None:
    text = (ROOT / "docs" / "db-api.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert snippet is not None
    monkeypatch.setenv("NATS_URL", nats_url)
    exec(snippet.group(1).replace("news_import", dataset_name), {})
    with connect() as db:
        assert dataset_name not in db
