"""Docs that cannot rot: settings table, README commands, CI wiring, API paths."""

from __future__ import annotations

import re

from recipes.settings import SETTINGS, Settings
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


LEDGER_DOC = ROOT / "docs" / "ledger.md"


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n#", 1)[0]


def test_ledger_doc_has_every_snapshot_column_in_its_schema_table():
    from ledger.columns import EVENT_SCHEMA

    table = _section(LEDGER_DOC.read_text(), "### The Parquet schema")
    documented = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M)
    assert [name for name, _ in documented] == EVENT_SCHEMA.names, (
        "docs/ledger.md's schema table must list EVENT_SCHEMA's columns, in order"
    )
    for (name, kind), field in zip(documented, EVENT_SCHEMA, strict=True):
        arrow = str(field.type)
        head = arrow.split("<", 1)[0]
        assert kind.strip().startswith(head), f"{name}: documented as {kind.strip()}, is {arrow}"


def _ledger_commands() -> list[str]:
    """The subcommands of the `ledger` script, registered as its entry point does."""
    import typer.main

    from quorum.cli import ledger_cmd

    captured = []
    original = ledger_cmd.run_cli
    ledger_cmd.run_cli = lambda app, args=None: captured.append(app)  # type: ignore[assignment]
    try:
        ledger_cmd.main([])
    finally:
        ledger_cmd.run_cli = original
    (app,) = captured
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_ledger_doc_mentions_every_ledger_command():
    text = LEDGER_DOC.read_text()
    commands = _ledger_commands()
    assert {"snapshot", "replay", "verify", "export", "import", "compact"} <= set(commands)
    for name in commands:
        assert f"`ledger {name}" in text or f"ledger {name} " in text, (
            f"docs/ledger.md never shows `ledger {name}`"
        )


def test_ledger_doc_duckdb_recipe_reads_exactly_the_manifests_files(tmp_path):
    """The doc's manifest query ignores a file the manifest does not list; the glob needs the dedupe."""
    import duckdb

    from ledger.columns import ColumnBuffer
    from ledger.snapshot_store import Manifest, SnapshotStore
    from tests.ledger_writes import answer, configure

    store = SnapshotStore(tmp_path / ".quorum" / "snapshots")
    buffer = ColumnBuffer()
    buffer.append(1, [configure("news")])
    buffer.append(2, [answer("news", "ann", 1), answer("news", "bob", 1, "reject")])
    batch = buffer.take()

    def part(rows):
        writer = store.writer("news", 100)
        writer.write(rows)
        return writer.finish()

    # Two listed files, and the file a compaction merged them into but never listed.
    listed = [part(batch.slice(0, 1)), part(batch.slice(1))]
    merged = part(batch)
    assert merged.path not in {f.path for f in listed}
    store.write_manifest(Manifest(ledger_id="ledger-doc", through_seq=2, files=listed))

    text = LEDGER_DOC.read_text()
    recipe = text.split("```sql\n-- duckdb, reading the files the manifest lists\n", 1)[1].split("```", 1)[0]
    blocks = [
        b.split("```", 1)[0] for b in _section(text, "### Querying with plain DuckDB").split("```sql\n")[1:]
    ]
    (glob,) = [b for b in blocks if "dataset=*" in b and "DISTINCT" not in b]
    (dedupe,) = [b for b in blocks if "DISTINCT ON (seq, position)" in b]
    con = duckdb.connect()
    try:
        statements = duckdb.extract_statements(recipe.replace(".quorum/", f"{tmp_path}/.quorum/"))
        for statement in statements:
            rows = con.execute(statement).fetchall()
        assert [(r[0], r[1], r[2]) for r in rows] == [("news", "accept", 1), ("news", "reject", 1)]
        assert con.execute("SELECT count(*) FROM events").fetchone() == (3,)

        def count(query: str) -> int:
            query = query.replace(".quorum/", f"{tmp_path}/.quorum/").strip().rstrip(";")
            return con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]

        assert count(glob) == 6  # the glob sees the unlisted file too…
        assert count(dedupe) == 3  # …which the dedupe takes care of
    finally:
        con.close()
