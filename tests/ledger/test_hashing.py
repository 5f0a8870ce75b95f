"""Task identity: xxh3_64 over canonical JSON, Prodigy's input/task key semantics."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from ledger.hashing import get_input_hash, hash_hex, parse_hash, set_hashes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
tasks = st.fixed_dictionaries(
    {"text": st.text(max_size=50)},
    optional={"label": st.text(max_size=10), "meta": json_values, "spans": st.lists(json_values, max_size=3)},
)


@given(tasks)
def test_key_order_does_not_change_hashes(task):
    reordered = dict(reversed(list(task.items())))
    first, second = set_hashes(dict(task)), set_hashes(reordered)
    assert first["_input_hash"] == second["_input_hash"]
    assert first["_task_hash"] == second["_task_hash"]


@given(tasks, json_values, st.sampled_from(["meta", "answer", "_view_id", "_session_id", "score"]))
def test_ignored_keys_do_not_change_hashes(task, value, key):
    plain = set_hashes(dict(task))
    extra = set_hashes({**task, key: value})
    assert plain["_input_hash"] == extra["_input_hash"]
    assert plain["_task_hash"] == extra["_task_hash"]


@given(tasks)
def test_hashes_are_signed_64_bit_and_round_trip_as_strings(task):
    hashed = set_hashes(dict(task))
    for key in ("_input_hash", "_task_hash"):
        value = hashed[key]
        assert -(2**63) <= value < 2**63
        assert parse_hash(str(value)) == value
        assert len(hash_hex(value)) == 16


@given(st.text(max_size=30), st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10))
def test_task_keys_separate_tasks_with_same_input(text, label_a, label_b):
    a = set_hashes({"text": text, "label": label_a})
    b = set_hashes({"text": text, "label": label_b})
    assert a["_input_hash"] == b["_input_hash"]
    assert (a["_task_hash"] == b["_task_hash"]) == (label_a == label_b)


def test_existing_hashes_are_kept_unless_overwrite():
    task = {"text": "hello", "_input_hash": 1, "_task_hash": 2}
    assert set_hashes(dict(task))["_task_hash"] == 2
    assert set_hashes(dict(task), overwrite=True)["_task_hash"] != 2


def test_input_keys_are_configurable_and_whole_task_is_the_fallback():
    assert get_input_hash({"text": "a", "x": 1}) == get_input_hash({"text": "a", "x": 2})
    assert get_input_hash({"x": 1}) != get_input_hash({"x": 2})
    assert get_input_hash({"text": "a", "x": 1}, input_keys=["x"]) != get_input_hash(
        {"text": "a", "x": 2}, input_keys=["x"]
    )


def test_hashes_are_stable_across_processes():
    """Python's str hash is salted per process; ours must not be."""
    code = "from ledger.hashing import set_hashes; print(set_hashes({'text': 'Grace Liu met Omar', 'label': 'X'}))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(set_hashes({"text": "Grace Liu met Omar", "label": "X"}))


def test_parse_hash_rejects_garbage_with_a_message():
    import pytest

    for bad in ("abc", 1.5, None, True, str(2**64)):
        with pytest.raises(ValueError, match="hash"):
            parse_hash(bad)
