"""The built-in recipes on the recipe API: ner.manual --patterns pre-highlights matches,
mark counts this run's answers (its update) and prints them on exit."""

from __future__ import annotations

import json

import httpx
import pytest
from browser import until

from recipes.catalog import get_recipe
from recipes.components import check_components
from recipes.errors import RecipeError
from recipes.runner import RunnerThread


def _source(tmp_path, texts):
    path = tmp_path / "source.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    return path


def test_ner_manual_with_patterns_pre_highlights_matches(tmp_path):
    source = _source(tmp_path, ["Apple hired Ada Lovelace in London.", "Nothing here."])
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text(
        json.dumps({"label": "ORG", "pattern": [{"lower": "apple"}]})
        + "\n"
        + json.dumps({"label": "LOC", "pattern": "London"})
        + "\n"
    )
    result = get_recipe("ner.manual").func(
        "news", "blank:en", str(source), "ORG,LOC,PERSON", patterns=str(patterns)
    )
    tasks = list(check_components("ner.manual", result).stream)
    spans = [(s["label"], s["start"], s["end"]) for s in tasks[0]["spans"]]
    assert spans == [("ORG", 0, 5), ("LOC", 28, 34)]
    assert tasks[0]["tokens"][0]["text"] == "Apple" and tasks[0]["spans"][0]["token_start"] == 0
    assert not tasks[1].get("spans")
    plain = list(
        check_components(
            "ner.manual", get_recipe("ner.manual").func("news", "blank:en", str(source), "ORG")
        ).stream
    )
    assert plain[0]["_task_hash"] != tasks[0]["_task_hash"]  # pre-highlighted spans are part of the task


def test_ner_manual_refuses_pattern_labels_it_was_not_given(tmp_path):
    source = _source(tmp_path, ["Apple"])
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text(json.dumps({"label": "GPE", "pattern": "Apple"}) + "\n")
    with pytest.raises(RecipeError, match="GPE"):
        get_recipe("ner.manual").func("news", "blank:en", str(source), "ORG", patterns=str(patterns))


def test_mark_counts_this_runs_answers_and_prints_them_on_exit(
    tmp_path, nats_url, settings, dataset_name, start_server, capsys
):
    source = _source(tmp_path, [f"headline {n}" for n in range(6)])
    components = check_components(
        "mark", get_recipe("mark").func(dataset_name, str(source), view_id="classification", label="Tech")
    )
    tuned = settings.with_overrides(batch_size=3, update_idle=0.3)
    runner = RunnerThread(nats_url, components, tuned)
    runner.start()
    try:
        feed = start_server(tuned, dataset_name, workers=1)
        tasks = httpx.post(f"{feed.url}/get_session_questions?session=alex", json={}, timeout=10).json()[
            "tasks"
        ]
        assert tasks[0]["label"] == "Tech"
        answers = [{**t, "answer": a} for t, a in zip(tasks, ["accept", "accept", "reject"], strict=True)]
        assert httpx.post(
            f"{feed.url}/give_answers?session=alex", json={"answers": answers}, timeout=10
        ).is_success
        until(lambda: runner.runner.status.updates == 1, timeout=15, interval=0.1)
    finally:
        runner.stop()
    out = capsys.readouterr().out
    assert f"{dataset_name}: 2 accept, 1 reject, 0 ignore this run (3 answers in the dataset)" in out
