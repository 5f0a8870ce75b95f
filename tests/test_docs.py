"""Docs that cannot rot: settings table, README commands, CI wiring, API paths."""

from __future__ import annotations

import re

from quorum.settings import SETTINGS, Settings
from tests.conftest import ROOT


def test_every_setting_is_documented_and_nothing_else():
    text = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"^\| `(QUORUM_[A-Z_]+)` \|", text, re.M))
    assert documented == {s.env for s in SETTINGS}
    for setting in SETTINGS:
        assert setting.help in text, f"{setting.env}: help text differs from docs/settings.md"


def test_settings_table_matches_the_settings_object():
    names = set(Settings.__dataclass_fields__)
    assert names == {s.name for s in SETTINGS}
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default


def _readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    run_command, test_command = _readme_commands()[:2]
    assert "quorum ner.manual news blank:en examples/news.jsonl" in run_command
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, ".ci/run must run the README's test command verbatim"


def test_readme_example_source_exists():
    assert (ROOT / "examples" / "news.jsonl").exists()


def test_api_doc_names_every_endpoint():
    from feed.app import create_app

    app = create_app(Settings())
    text = (ROOT / "docs" / "api.md").read_text()
    for path in app.openapi_schema.paths or {}:
        assert f"`{path}`" in text or f" {path}`" in text, f"{path} is not documented in docs/api.md"
