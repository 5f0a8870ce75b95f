"""Recipe files in the style of Prodigy's published examples run unchanged through
`quorum.compat.prodigy`: ner.manual with patterns, textcat with options, and mark with
update / on_load / on_exit, called the way `quorum NAME … -F FILE` calls them."""

from __future__ import annotations

import json
import textwrap

import httpx
from browser import until

from recipes.catalog import RecipeCall, call_recipe
from recipes.runner import RunnerThread

NER = """
import prodigy
from prodigy.components.loaders import JSONL
from prodigy.components.preprocess import add_tokens
from prodigy.models.matcher import PatternMatcher
from prodigy.util import split_string
import spacy


@prodigy.recipe(
    "my.ner",
    dataset=("The dataset to use", "positional", None, str),
    source=("The source data as a JSONL file", "positional", None, str),
    label=("One or more comma-separated labels", "option", "l", split_string),
    patterns=("Optional match patterns", "option", "p", str),
)
def my_ner(dataset, source, label=None, patterns=None):
    nlp = spacy.blank("en")
    stream = JSONL(source)
    if patterns is not None:
        matcher = PatternMatcher(nlp, combine_matches=True, all_examples=True).from_disk(patterns)
        stream = (eg for _, eg in matcher(stream))
    stream = add_tokens(nlp, stream)
    return {
        "view_id": "ner_manual",
        "dataset": dataset,
        "stream": stream,
        "config": {"lang": nlp.lang, "labels": label},
    }
"""

MARK = """
from collections import Counter

import prodigy
from prodigy.components.loaders import JSONL
from prodigy.util import set_hashes

SEEN = Counter()
EVENTS = []


@prodigy.recipe(
    "my.mark",
    dataset=("The dataset to use", "positional", None, str),
    source=("The source data as a JSONL file", "positional", None, str),
    view_id=("Annotation interface", "option", "v", str),
)
def my_mark(dataset, source, view_id="text"):
    def update(answers):
        SEEN.update(eg["answer"] for eg in answers)

    def on_load(ctrl):
        EVENTS.append(("load", ctrl.dataset))

    def on_exit(ctrl):
        EVENTS.append(("exit", dict(SEEN), ctrl.total_annotated))

    return {
        "view_id": view_id,
        "dataset": dataset,
        "stream": (set_hashes(eg) for eg in JSONL(source)),
        "update": update,
        "on_load": on_load,
        "on_exit": on_exit,
    }
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_a_prodigy_style_ner_recipe_with_patterns(tmp_path):
    recipe = _write(tmp_path, "ner_recipe.py", NER)
    source = tmp_path / "news.jsonl"
    source.write_text(json.dumps({"text": "Apple opened an office in Berlin."}) + "\n", encoding="utf-8")
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text(
        json.dumps({"label": "ORG", "pattern": [{"lower": "apple"}]}) + "\n", encoding="utf-8"
    )
    args = {"dataset": "news", "source": str(source), "label": ["ORG", "GPE"], "patterns": str(patterns)}
    components = call_recipe(RecipeCall("my.ner", [str(recipe)], args))
    (task,) = list(components.stream)
    assert components.view_id == "ner_manual" and components.config["labels"] == ["ORG", "GPE"]
    assert [(s["label"], s["start"], s["end"]) for s in task["spans"]] == [("ORG", 0, 5)]
    assert task["tokens"][0]["text"] == "Apple" and task["_task_hash"]


def test_a_prodigy_style_mark_recipe_with_update_on_load_and_on_exit(
    tmp_path, nats_url, settings, dataset_name, start_server
):
    import sys

    recipe = _write(tmp_path, "mark_recipe.py", MARK)
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": f"text {n}"}) + "\n" for n in range(5)), encoding="utf-8")
    components = call_recipe(
        RecipeCall("my.mark", [str(recipe)], {"dataset": dataset_name, "source": str(source)})
    )
    module = next(m for name, m in sys.modules.items() if name.startswith("quorum_recipes.mark_recipe"))
    tuned = settings.with_overrides(batch_size=3, update_idle=0.3)
    runner = RunnerThread(nats_url, components, tuned)
    runner.start()
    try:
        feed = start_server(tuned, dataset_name, workers=1)
        tasks = httpx.post(f"{feed.url}/get_session_questions?session=alex", json={}, timeout=10).json()[
            "tasks"
        ]
        answers = [{**t, "answer": a} for t, a in zip(tasks[:3], ["accept", "reject", "accept"], strict=True)]
        assert httpx.post(
            f"{feed.url}/give_answers?session=alex", json={"answers": answers}, timeout=10
        ).is_success
        until(lambda: sum(module.SEEN.values()) == 3, timeout=15, interval=0.1)
    finally:
        runner.stop()
    assert [("load", dataset_name), ("exit", {"accept": 2, "reject": 1}, 3)] == module.EVENTS
