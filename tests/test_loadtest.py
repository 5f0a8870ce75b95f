"""The benchmark driver: a short real run reports acknowledged answers; its arithmetic is right."""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from ledger.errors import QuorumError
from loadtest.bench import auto_tasks, parse_args
from loadtest.driver import EndpointStats, _Tally
from loadtest.stack import StackOptions, parse_assignments

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_short_bench_run_reports_acknowledged_answers() -> None:
    """`python -m loadtest.bench` starts its own stack, drives it ~3 s, and stops it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench",
            "--sessions",
            "2",
            "--workers",
            "1",
            "--duration",
            "3",
            "--warmup",
            "0.5",
            "--tasks",
            "800",
            # Paced well below what two sessions can do, so 800 tasks never run out.
            "--rate",
            "100",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout)
    assert result["answers"] > 0
    assert result["answers_per_s"] > 0
    assert result["sync_interval"] == "always"
    questions = result["endpoints"]["/get_session_questions"]
    answers = result["endpoints"]["/give_answers"]
    assert questions["ok"] > 0 and answers["ok"] > 0
    assert questions["requests"] == questions["ok"] and answers["requests"] == answers["ok"]
    assert answers["p50_ms"] is not None and answers["p99_ms"] >= answers["p50_ms"]
    # Answers counted are answers in 200 responses: never more than sent in them.
    assert result["answers"] <= answers["ok"] * result["batch_size"]
    assert result["empty_batches"] == 0
    assert result["answers_per_s"] <= 100 * 1.1  # the pacing holds
    assert result["server_log_errors"] == 0
    assert set(result["cpu_seconds"]) >= {"workers", "nats", "driver", "other"}


def test_only_requests_completed_inside_the_window_count() -> None:
    tally = _Tally(start=10.0, end=20.0)
    assert not tally.record(tally.answers, 9.0, 9.5, 200)  # warm-up
    assert tally.record(tally.answers, 9.5, 10.5, 200)  # started before, ended inside
    assert tally.record(tally.answers, 15.0, 15.2, 503)
    assert not tally.record(tally.answers, 19.9, 20.5, 200)  # ended after the window
    summary = tally.answers.summary(10.0)
    assert summary["requests"] == 2 and summary["ok"] == 1
    assert summary["statuses"] == {"200": 1, "503": 1}
    assert summary["p50_ms"] == pytest.approx(1000.0)


def test_percentiles() -> None:
    stats = EndpointStats(latencies_ms=[float(n) for n in range(1, 101)])
    stats.statuses[200] = 100
    summary = stats.summary(1.0)
    assert (summary["p50_ms"], summary["p99_ms"], summary["max_ms"]) == (51.0, 100.0, 100.0)


def test_auto_tasks_scale_with_routing() -> None:
    base = {"warmup": 2.0, "duration": 20.0, "rate": 0.0, "batch_size": 10}
    plain = auto_tasks(Namespace(**base, feed_overlap=None, annotations_per_task=None), 50)
    k2 = auto_tasks(Namespace(**base, feed_overlap=None, annotations_per_task=2), 50)
    full = auto_tasks(Namespace(**base, feed_overlap=True, annotations_per_task=None), 50)
    assert plain > k2 > full >= 1000


def test_pass_through_flags() -> None:
    args = parse_args(
        ["--annotations-per-task", "3", "--setting", "ack_wait=30", "--recipe-arg", "exclusive=true"]
    )
    assert args.annotations_per_task == 3
    assert parse_assignments(args.setting, "--setting") == {"ack_wait": 30}
    assert parse_assignments(args.recipe_arg, "--recipe-arg") == {"exclusive": True}
    with pytest.raises(QuorumError, match="KEY=VALUE"):
        parse_assignments(["ack_wait"], "--setting")


def test_unknown_pass_through_option_names_the_fix() -> None:
    with pytest.raises(QuorumError, match="no setting or textcat.manual argument 'no_such_mode'"):
        StackOptions(either={"no_such_mode": True}).resolved()
