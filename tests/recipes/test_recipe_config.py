"""Config precedence: defaults, ~/.quorum/quorum.json, ./quorum.json, the recipe's config,
then the command line and the environment; unknown keys are a one-line warning."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import free_port, quorum_cli

from recipes.config import UnknownConfigKey, merged_config, project_config
from recipes.errors import RecipeError
from recipes.settings import load_settings, with_recipe_config


def test_the_recipe_config_wins_over_quorum_json_and_the_command_line_over_both(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "project"
    (home / ".quorum").mkdir(parents=True)
    cwd.mkdir()
    (home / ".quorum" / "quorum.json").write_text(json.dumps({"batch_size": 4, "history_size": 3}))
    (cwd / "quorum.json").write_text(json.dumps({"batch_size": 6, "exclude_by": "input"}))
    project = project_config(cwd=cwd, home=home)
    assert project == {"batch_size": 6, "history_size": 3, "exclude_by": "input"}

    config = merged_config("r", {"feed_overlap": True}, project)
    settings = with_recipe_config(load_settings({}), config, given={}, environ={})
    assert (settings.batch_size, settings.feed_overlap, settings.exclude_by) == (6, True, "input")
    given = {"batch_size": 20}
    chosen = with_recipe_config(load_settings({}, **given), config, given=given, environ={})
    assert chosen.batch_size == 20 and chosen.feed_overlap is True


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "quorum.json is not valid JSON"), ("[1, 2]", "quorum.json must hold one JSON object")],
)
def test_a_bad_quorum_json_names_the_file(tmp_path, text, message):
    (tmp_path / "quorum.json").write_text(text)
    with pytest.raises(RecipeError, match=message):
        project_config(cwd=tmp_path, home=tmp_path / "nohome")


def test_an_unknown_config_key_is_a_warning_naming_it():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merged_config("r", {"batch_sise": 3}, {})
    assert [w.category for w in caught] == [UnknownConfigKey]
    assert "config 'batch_sise' not read by Quorum" in str(caught[0].message)


def test_the_command_line_says_so_in_one_line(tmp_path, nats_url, dataset_name):
    (tmp_path / "quorum.json").write_text(json.dumps({"batch_sise": 3}))
    source = tmp_path / "news.jsonl"
    source.write_text("".join(json.dumps({"text": f"t{n}"}) + "\n" for n in range(3)))
    port = free_port()
    # --host on a name that doesn't resolve stops the command right after the warning.
    result = quorum_cli(
        "textcat.manual", dataset_name, str(source), "--label", "A", "--port", str(port),
        "--host", "no-such-host.invalid", env={"NATS_URL": nats_url}, cwd=tmp_path,
    )  # fmt: skip
    lines = [line for line in result.stderr.decode().splitlines() if "batch_sise" in line]
    assert len(lines) == 1 and lines[0].startswith("⚠ recipe 'textcat.manual': config 'batch_sise'")


def test_instructions_are_read_for_the_web_app(tmp_path):
    from recipes.config import read_instructions

    (tmp_path / "guide.md").write_text("# How to annotate\n\nMark **people**.", encoding="utf-8")
    (tmp_path / "guide.html").write_text("<h1>Guide</h1>", encoding="utf-8")
    md = read_instructions({"instructions": "guide.md"}, base=tmp_path)["instructions"]
    assert md == {"format": "markdown", "text": "# How to annotate\n\nMark **people**."}
    assert (
        read_instructions({"instructions": str(tmp_path / "guide.html")})["instructions"]["format"] == "html"
    )
    with pytest.raises(RecipeError, match="instructions file missing.md does not exist"):
        read_instructions({"instructions": "missing.md"}, base=tmp_path)
