"""The OpenAPI schema tells the truth: every route declares the errors it can give, and
schemathesis, fuzzing real Granian workers from that schema, finds no 5xx and no
response that breaks it (issue 11 §5; before the fix it found 11 failures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from feed.app import create_app
from recipes.settings import Settings
from recipes.textcat import textcat_manual
from tests.conftest import EXAMPLES

# What each route can answer besides success (docs/api.md, "Errors").
DECLARED = {
    ("/project", "get"): {404, 503},
    ("/get_session_questions", "post"): {400, 401, 403, 404, 413, 429, 503},
    ("/give_answers", "post"): {400, 401, 403, 404, 409, 413, 422, 429, 503},
    ("/progress", "get"): {401, 403, 404, 503},
    ("/dashboard/data", "get"): {400, 401, 403, 404, 503},
    ("/ready", "get"): {503},
}

# A session may come from `?session=`, `X-Quorum-Session`, `session_id` or the login, and
# OpenAPI can't say "at least one of them": so a schema-valid request may name none and
# get 400. That rule, and only for these two routes, is what schemathesis is told to allow.
CONFIG = """
[[operations]]
include-path-regex = "^/(get_session_questions|give_answers)$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx",
]
"""


def test_every_route_declares_its_errors_with_the_error_shape():
    schema = create_app(Settings()).openapi_schema.to_schema()
    body = schema["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"error", "message", "status"}
    for (path, method), statuses in DECLARED.items():
        responses = schema["paths"][path][method]["responses"]
        assert statuses <= {int(code) for code in responses}, f"{method.upper()} {path}: {sorted(responses)}"
        if path == "/ready":
            continue  # its 503 is the readiness body, {"status": "unavailable", "message": …}
        for status in statuses:
            content = responses[str(status)]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_session_and_dataset_parameters_declare_the_name_rule():
    schema = create_app(Settings()).openapi_schema.to_schema()
    questions = schema["paths"]["/get_session_questions"]["post"]
    params = {p["name"]: p for p in questions["parameters"]}
    assert params["session"]["in"] == "query" and params["session"]["schema"]["pattern"].startswith("^")
    assert params["X-Quorum-Session"]["in"] == "header"
    assert questions["requestBody"]["required"] is False  # `{}` or no body at all
    dashboard = {p["name"]: p for p in schema["paths"]["/dashboard/data"]["get"]["parameters"]}
    assert "pattern" in dashboard["dataset"]["schema"]


@pytest.mark.timeout(120)
def test_schemathesis_finds_no_server_error_and_no_conformance_failure(
    settings, dataset_name, load, start_server, tmp_path
):
    pytest.importorskip("schemathesis")
    load(textcat_manual(dataset_name, EXAMPLES / "news.jsonl", "Tech,Politics", exclusive=True))
    feed = start_server(settings, dataset_name, workers=1)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{feed.url}/schema/openapi.json",
            "--max-examples",
            "25",
            "--seed",
            "11",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output, output[-3000:]
