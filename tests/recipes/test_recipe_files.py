"""Recipe files: `quorum NAME … -F recipe.py`, Prodigy's recipe files unchanged, and
every bad recipe file or bad component refused in one line, exit code 2, nothing queued."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import free_port, quorum_cli, run, start_recipe, wait_ready

from ledger.connection import connect
from ledger.datasets import list_datasets
from ledger.streams import ensure_streams

NEWS = Path(__file__).resolve().parents[2] / "examples" / "news.jsonl"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


PRODIGY_STYLE = '''
    import prodigy
    from prodigy.components.loaders import JSONL
    from prodigy.util import split_string


    @prodigy.recipe(
        "news.topics",
        dataset=("The dataset to save to", "positional", None, str),
        source=("The source data as a JSONL file", "positional", None, str),
        label=("One or more comma-separated labels", "option", "l", split_string),
        exclusive=("Treat classes as mutually exclusive", "flag", "E", bool),
    )
    def topics(dataset, source, label=None, exclusive=False):
        """Pick the topics of a news headline."""
        options = [{"id": name, "text": name} for name in label or []]

        def stream():
            for eg in JSONL(source):
                eg["options"] = options
                yield eg

        return {
            "dataset": dataset,
            "view_id": "choice",
            "stream": stream(),
            "config": {"choice_style": "single" if exclusive else "multiple", "batch_size": 3},
        }
'''


def _stderr(result) -> str:
    return result.stderr.decode()


def _datasets(nats_url: str) -> list[str]:
    async def names() -> list[str]:
        nc = await connect(nats_url)
        try:
            return await list_datasets(await ensure_streams(nc.jetstream()))
        finally:
            await nc.close()

    return run(names())


def test_help_lists_a_recipe_files_arguments(tmp_path):
    recipe = write(tmp_path / "recipe.py", PRODIGY_STYLE)
    result = quorum_cli("news.topics", "--help", "-F", str(recipe), cwd=tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 0, _stderr(result)
    assert "Pick the topics of a news headline" in out
    for expected in ("DATASET", "SOURCE", "--label", "-l", "--exclusive", "-E", "--port", "--data-dir"):
        assert expected in out, expected
    listing = quorum_cli("--help", "-F", str(recipe), cwd=tmp_path).stdout.decode()
    assert "news.topics" in listing and "ner.manual" in listing


def test_a_prodigy_recipe_file_runs_unchanged_and_serves(tmp_path, nats_url, dataset_name):
    """Loaded with -F, its config's batch_size applies, and its options reach the view."""
    recipe = write(tmp_path / "recipe.py", PRODIGY_STYLE)
    port = free_port()
    args = ["news.topics", dataset_name, str(NEWS), "-l", "Tech,Politics", "-E", "-F", str(recipe)]
    args += ["--port", str(port), "--host", "127.0.0.1", "--data-dir", str(tmp_path / "d")]
    server = start_recipe(args, tmp_path, {"NATS_URL": nats_url})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        project = httpx.get(f"{url}/project", timeout=5).json()
        assert project["recipe_name"] == "news.topics" and project["view_id"] == "choice"
        assert project["batch_size"] == 3  # the recipe's config, no flag given
        tasks = httpx.post(f"{url}/get_session_questions?session=alex", json={}, timeout=10).json()["tasks"]
        assert len(tasks) == 3
        assert [o["id"] for o in tasks[0]["options"]] == ["Tech", "Politics"]
        assert tasks[0]["_task_hash"] and tasks[0]["_input_hash"]  # set by Quorum
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_a_recipe_file_replaces_a_built_in_with_a_notice(tmp_path):
    recipe = write(
        tmp_path / "mine.py",
        '''
        import quorum


        @quorum.recipe("textcat.manual")
        def mine(dataset: str, source: str, size: int = 3):
            """My own textcat.manual."""
            return {"dataset": dataset, "view_id": "text", "stream": []}
        ''',
    )
    result = quorum_cli("textcat.manual", "--help", "-F", str(recipe), cwd=tmp_path)
    assert result.returncode == 0, _stderr(result)
    assert "My own textcat.manual" in result.stdout.decode() and "--size" in result.stdout.decode()
    assert f"recipe 'textcat.manual' from {recipe} replaces the built-in one" in " ".join(
        _stderr(result).split()
    )


def test_several_recipe_files_each_add_their_recipes(tmp_path):
    one = write(tmp_path / "one.py", PRODIGY_STYLE)
    two = write(
        tmp_path / "two.py",
        """
        import prodigy


        @prodigy.recipe("say.hello")
        def hello(dataset, greeting="hello"):
            return {"dataset": dataset, "view_id": "text", "stream": [{"text": greeting}]}
        """,
    )
    result = quorum_cli("--help", "-F", str(one), "-F", str(two), cwd=tmp_path)
    assert result.returncode == 0, _stderr(result)
    assert "news.topics" in result.stdout.decode() and "say.hello" in result.stdout.decode()


RETURNS = {
    "a list": ("[1, 2]", "returned a list; a recipe returns a dict of components"),
    "no stream": ('{"dataset": dataset, "view_id": "text"}', "returned no stream"),
    "an unknown view": (
        '{"dataset": dataset, "view_id": "fancy", "stream": []}',
        "returned view_id 'fancy', which Quorum has no view for",
    ),
    "non-dict tasks": (
        '{"dataset": dataset, "view_id": "text", "stream": ["just text"]}',
        "task 1 of its stream is a str, not a dict",
    ),
    "tasks without the view's fields": (
        '{"dataset": dataset, "view_id": "choice", "stream": [{"text": "no options"}]}',
        "task 1 of its stream has no options, which the 'choice' view needs",
    ),
}


@pytest.mark.parametrize("case", list(RETURNS))
def test_a_recipe_returning_what_cant_run_is_one_line_exit_2_nothing_queued(
    tmp_path, nats_url, dataset_name, case
):
    returned, message = RETURNS[case]
    recipe = write(
        tmp_path / "bad.py",
        f"""
        import prodigy


        @prodigy.recipe("bad.recipe")
        def bad(dataset):
            return {returned}
        """,
    )
    result = quorum_cli(
        "bad.recipe", dataset_name, "-F", str(recipe), "--port", str(free_port()),
        env={"NATS_URL": nats_url}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, _stderr(result)
    lines = [line for line in _stderr(result).splitlines() if line.strip()]
    assert len(lines) == 1 and "recipe 'bad.recipe'" in lines[0] and message in lines[0], lines
    assert "Traceback" not in _stderr(result)
    assert dataset_name not in _datasets(nats_url)


BAD_FILES = {
    "a file that does not exist": (None, "recipe file {path} does not exist"),
    "a syntax error": ("def broken(:\n    pass\n", "recipe file {path} has a syntax error on line 1"),
    "a file that registers nothing": ("x = 1\n", "recipe file {path} defines no recipe"),
    "a file that fails while loading": (
        "import prodigy\nraise RuntimeError('no model here')\n",
        "failed while loading, at {name} line 2: RuntimeError: no model here",
    ),
    "a bad argument tuple": (
        "import prodigy\n\n@prodigy.recipe('x.y', a=('help', 'sideways', None, str))\n"
        "def f(a):\n    return {}\n",
        "argument 'a' has kind 'sideways'; use one of positional, option, flag",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_recipe_file_is_one_line_with_exit_code_2(tmp_path, case):
    text, message = BAD_FILES[case]
    path = tmp_path / "recipe.py"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    result = quorum_cli("x.y", "ds", "-F", str(path), cwd=tmp_path)
    assert result.returncode == 2, _stderr(result)
    lines = [line for line in _stderr(result).splitlines() if line.strip()]
    expected = message.format(path=path, name=path.name)
    assert len(lines) == 1 and expected in " ".join(lines), lines


def test_two_files_defining_one_name_conflict(tmp_path):
    text = "import prodigy\n\n@prodigy.recipe('same.name')\ndef f(dataset):\n    return {}\n"
    one, two = write(tmp_path / "one.py", text), write(tmp_path / "two.py", text)
    result = quorum_cli("same.name", "ds", "-F", str(one), "-F", str(two), cwd=tmp_path)
    assert result.returncode == 2
    assert f"recipe 'same.name' is defined in both {one} and {two}" in " ".join(_stderr(result).split())


def test_missing_arguments_and_failing_converters_are_usage_errors(tmp_path):
    recipe = write(
        tmp_path / "recipe.py",
        """
        import prodigy


        def positive(text):
            if int(text) <= 0:
                raise ValueError("must be above 0")
            return int(text)


        @prodigy.recipe(
            "sized",
            dataset=("Dataset", "positional", None, str),
            size=("How many", "option", "n", positive),
        )
        def sized(dataset, size=1):
            return {"dataset": dataset, "view_id": "text", "stream": [{"text": "x"}] * size}
        """,
    )
    missing = quorum_cli("sized", "-F", str(recipe), cwd=tmp_path)
    assert missing.returncode == 2 and "Missing argument 'DATASET'" in _stderr(missing)
    bad = quorum_cli("sized", "ds", "-n", "-3", "-F", str(recipe), cwd=tmp_path)
    assert bad.returncode == 2 and "'-3': must be above 0" in _stderr(bad), _stderr(bad)


def test_unknown_components_are_a_warning_naming_them(tmp_path, nats_url, dataset_name):
    recipe = write(
        tmp_path / "recipe.py",
        """
        import prodigy


        @prodigy.recipe("typo")
        def typo(dataset):
            return {"dataset": dataset, "view_id": "text", "stream": ["oops"], "updaet": print}
        """,
    )
    result = quorum_cli("typo", dataset_name, "-F", str(recipe), env={"NATS_URL": nats_url}, cwd=tmp_path)
    assert "'updaet', which Quorum does not know and ignores" in " ".join(_stderr(result).split())


def test_recipe_config_yields_to_the_command_line_and_the_environment():
    from recipes.settings import load_settings, with_recipe_config

    config = {"batch_size": 3, "feed_overlap": True}
    assert with_recipe_config(load_settings({}), config, given={}, environ={}).batch_size == 3
    assert (
        with_recipe_config(
            load_settings({}, batch_size=7), config, given={"batch_size": 7}, environ={}
        ).batch_size
        == 7
    )
    env = {"QUORUM_FEED_OVERLAP": "false"}
    assert with_recipe_config(load_settings(env), config, given={}, environ=env).feed_overlap is False
    with pytest.raises(Exception, match="sets batch_size to 'ten'; it must be int"):
        with_recipe_config(load_settings({}), {"batch_size": "ten"}, given={}, environ={})
