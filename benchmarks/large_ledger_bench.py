"""Benchmark for issue 22: reads of a large NER dataset, with and without the server.

Starts `quorum ner.manual bench_ner blank:en SOURCE --label PERSON,ORG,LOC` on N
distinct synthetic headlines (embedded NATS with `sync_interval: always`, the server's
own snapshotter on, as a user runs it), gives N answers, then times, each in a fresh
process (seconds and peak RSS):

- `quorum db-out bench_ner` (to /dev/null), `quorum stats bench_ner`, and the dashboard's
  data endpoint (`GET /dashboard/data`) while the server runs, after its snapshotter
  caught up — nobody ran `ledger snapshot`;
- the same after the server stopped (the dashboard's data computed by the same function
  in a fresh process);
- the same with no snapshots at all (`QUORUM_SNAPSHOT_DIR` pointing at an empty
  directory): the whole ledger replayed from the stream, through the bounded reader.

Answers go in one of two ways (`--via`):

- `http` (default): 32 sessions answer through the HTTP API as the web app does, one
  `give_answers` request per batch of 10 (one ledger message each);
- `ledger`: the server still runs, but the answer messages are appended straight to its
  ledger, 10 answers per message, each answer the example a `ner.manual` task would come
  back as (text, tokens, spans): the same message shape, without the HTTP round trips.
  Used where giving 1M answers over HTTP takes too long on the machine at hand.

    python benchmarks/large_ledger_bench.py --answers 10000,100000
    python benchmarks/large_ledger_bench.py --answers 1000000 --via ledger --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.connection import connect  # noqa: E402
from ledger.events import AnswerRecorded, answer_event_id, now_ms  # noqa: E402
from ledger.natsd import free_port  # noqa: E402
from ledger.store import Ledger  # noqa: E402
from ledger.streams import EVENTS_STREAM  # noqa: E402

DATASET = "bench_ner"
LABELS = ("PERSON", "ORG", "LOC")
_WORDS = [
    "council",
    "approves",
    "budget",
    "for",
    "new",
    "bridge",
    "after",
    "long",
    "debate",
    "in",
    "parliament",
    "as",
    "ministers",
    "warn",
    "of",
    "rising",
    "costs",
    "while",
    "unions",
    "call",
    "strike",
    "over",
    "pay",
    "and",
    "pensions",
    "markets",
    "rally",
    "on",
    "hopes",
    "of",
    "rate",
    "cut",
    "storm",
    "leaves",
    "thousands",
    "without",
    "power",
    "across",
    "northern",
    "region",
]
_NAMES = ("Ada Lovelace", "Acme Corp", "Berlin", "Grace Hopper", "Reuters", "Lagos", "Initech", "Oslo")


def _headline(n: int) -> str:
    rnd = random.Random(n)
    words = [rnd.choice(_WORDS) for _ in range(rnd.randint(30, 42))]
    words.insert(rnd.randint(0, len(words)), rnd.choice(_NAMES))
    return " ".join(words).capitalize() + f" ({n})"


def _source(path: Path, answers: int) -> None:
    with path.open("w") as out:
        for n in range(answers):
            out.write(json.dumps({"text": _headline(n), "meta": {"id": n}}) + "\n")


def _quorum(*args: str) -> list[str]:
    return [sys.executable, "-c", "from quorum.cli import main; main()", *args]


def _measure(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `command` to completion: seconds, its peak RSS (the largest of it and its
    children) and the JSON lines it printed (counted here, as a pipe reader would) and
    any others; a failure is recorded with the end of its stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=err
        )
        assert process.stdout is not None
        # DuckDB's progress bar (queries over 2 s) lands in stdout: count answer lines
        # with anything printed before them (`mangled`), and lines of only that (`others`).
        lines = others = mangled = 0
        rest = b""
        while chunk := process.stdout.read(1 << 20):
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                if line.startswith(b"{"):
                    lines += 1
                elif b'{"' in line:
                    lines, mangled = lines + 1, mangled + 1
                else:
                    others += 1
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        figures: dict[str, Any] = {
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "lines": lines,
            "mangled_lines": mangled,
            "other_lines": others,
        }
        if process.returncode:
            err.seek(0)
            figures["error"] = err.read().decode(errors="replace")[-1500:]
    return figures


_DASHBOARD_CODE = """
import asyncio, sys
from ledger.connection import connect
from projections.reports import dashboard
from ledger.natsd import nats_server
from recipes.settings import load_settings

async def main(url):
    nc = await connect(url)
    try:
        data = await dashboard(nc, sys.argv[1], snapshot_dir=settings.snapshot_location)
        assert data
    finally:
        await nc.close()

settings = load_settings()
with nats_server(settings.data_dir, settings.nats_url, settings.nats_port) as url:
    asyncio.run(main(url))
"""


def _reads(cwd: Path, answers: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """db-out, stats and the dashboard's data, each in a fresh process."""
    reads = {
        "db_out": _measure(_quorum("db-out", DATASET), cwd, env),
        "stats": _measure(_quorum("stats", DATASET), cwd, env),
        "dashboard": _measure([sys.executable, "-c", _DASHBOARD_CODE, DATASET], cwd, env),
    }
    if reads["db_out"]["lines"] != answers and "error" not in reads["db_out"]:
        raise RuntimeError(f"db-out printed {reads['db_out']['lines']:,} answers, not {answers:,}")
    return reads


class Server:
    """The recipe server, as a user starts it."""

    def __init__(self, cwd: Path, source: Path, workers: int) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd / "server.log").open("wb")
        self.process = subprocess.Popen(
            _quorum(
                "ner.manual", DATASET, "blank:en", str(source), "--label", ",".join(LABELS),
                "--port", str(self.port), "--workers", str(workers),
            ),
            cwd=cwd,
            env={k: v for k, v in os.environ.items() if k not in ("NATS_URL", "QUORUM_NATS_URL")},
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError((self.cwd / "server.log").read_text()[-3000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return time.perf_counter() - start
            time.sleep(0.5)
        raise RuntimeError("the server did not become ready")

    @property
    def nats_url(self) -> str:
        owner = json.loads((self.cwd / ".quorum" / "owner.json").read_text())
        return str(owner["nats_url"])

    def worker_peak_rss_mb(self) -> int:
        """The largest VmHWM among the server's Granian processes (the feed workers)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.name.isdigit():
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        family, grew = {self.process.pid}, True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in family} - family
            family |= more
            grew = bool(more)
        peak = 0
        for pid in family:
            with contextlib.suppress(OSError, ValueError):
                if b"granian" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        return round(peak / 1024)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


async def _answer_http(url: str, answers: int, sessions: int) -> int:
    given = 0

    async def session(name: str) -> None:
        nonlocal given
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while given < answers:
                got = await client.post(f"/get_session_questions?session={name}", json={})
                got.raise_for_status()
                tasks = got.json()["tasks"][: max(0, answers - given)]
                if not tasks:
                    return
                batch = [{**task, "answer": "accept"} for task in tasks]
                response = await client.post(f"/give_answers?session={name}", json={"answers": batch})
                response.raise_for_status()
                given += len(batch)

    await asyncio.gather(*(session(f"annotator{i}") for i in range(sessions)))
    return given


async def _answer_ledger(url: str, nats_url: str, answers: int, sessions: int) -> int:
    """Append answer messages as `give_answers` writes them, shaped after a real task."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        got = await client.post("/get_session_questions?session=template", json={})
        template = {
            k: v for k, v in got.json()["tasks"][0].items() if not k.startswith("_") or k == "_view_id"
        }
    from spacy.lang.en import English

    tokenizer = English().tokenizer
    nc = await connect(nats_url)
    ledger = Ledger(nc)
    window: list[Any] = []
    try:
        for first in range(0, answers, 10):
            events = []
            for n in range(first, min(first + 10, answers)):
                text = _headline(10_000_000 + n)
                doc = tokenizer(text)
                tokens = [
                    {
                        "text": t.text,
                        "start": t.idx,
                        "end": t.idx + len(t.text),
                        "id": t.i,
                        "ws": bool(t.whitespace_),
                    }
                    for t in doc
                ]
                spans = [
                    {"start": 0, "end": len(doc[0].text), "token_start": 0, "token_end": 0, "label": "ORG"}
                ]
                example = {**template, "text": text, "tokens": tokens, "spans": spans, "meta": {"id": n}}
                session = f"annotator{(first // 10) % sessions}"
                task_hash, input_hash = n * 104729 + 1, n * 7919 + 1
                events.append(
                    AnswerRecorded(
                        event_id=answer_event_id(DATASET, session, task_hash, "accept", example),
                        dataset=DATASET,
                        session_id=f"{DATASET}-{session}",
                        session=session,
                        answer="accept",
                        input_hash=input_hash,
                        task_hash=task_hash,
                        view_id="ner_manual",
                        example={**example, "_input_hash": input_hash, "_task_hash": task_hash},
                        handed_out_at=now_ms() - 5000,
                        recorded_at=now_ms(),
                    )
                )
            window.append(ledger.append(events))
            if len(window) >= 200:
                await asyncio.gather(*window)
                window = []
        await asyncio.gather(*window)
    finally:
        await nc.close()
    return answers


async def _ledger_state(nats_url: str) -> tuple[int, int]:
    nc = await connect(nats_url)
    try:
        state = (await nc.jetstream().stream_info(EVENTS_STREAM)).state
        return int(state.last_seq), int(state.bytes)
    finally:
        await nc.close()


def _caught_up(server: Server, last_seq: int, timeout: float) -> float:
    """Seconds until the server's snapshotter lists everything up to `last_seq`."""
    manifest = server.cwd / ".quorum" / "snapshots" / "_quorum_manifest.json"
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(manifest.read_text())["through_seq"] >= last_seq:
                return time.perf_counter() - start
        time.sleep(0.5)
    raise RuntimeError(f"the snapshotter did not catch up to {last_seq} in {timeout:.0f} s")


def _dashboard_http(server: Server) -> dict[str, Any]:
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        response = httpx.get(f"{server.url}/dashboard/data?dataset={DATASET}", timeout=300)
        timings.append(time.perf_counter() - start)
        if response.status_code != 200:
            return {"seconds": round(timings[0], 2), "error": response.text[-1500:]}
    return {
        "seconds": round(timings[0], 2),
        "warm_seconds": round(min(timings[1:]), 2),
        "worker_peak_rss_mb": server.worker_peak_rss_mb(),
    }


def run(answers: int, via: str, sessions: int, workers: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="quorum-large-ledger-"))
    result: dict[str, Any] = {"answers": answers, "via": via, "sessions": sessions, "workers": workers}
    try:
        source = work / "headlines.jsonl"
        _source(source, answers if via == "http" else 1000)
        server = Server(work, source, workers)
        try:
            result["start_seconds"] = round(server.wait_ready(3600), 1)
            start = time.perf_counter()
            if via == "http":
                given = asyncio.run(_answer_http(server.url, answers, sessions))
            else:
                given = asyncio.run(_answer_ledger(server.url, server.nats_url, answers, sessions))
            result["answer_seconds"] = round(time.perf_counter() - start, 1)
            result["answers_given"] = given
            last_seq, ledger_bytes = asyncio.run(_ledger_state(server.nats_url))
            result["ledger_messages"], result["ledger_mb"] = last_seq, round(ledger_bytes / 1e6, 1)
            result["snapshot_catch_up_seconds"] = round(_caught_up(server, last_seq, 3600), 1)
            print(f"  {answers:,}: {result}", file=sys.stderr)
            running = _reads(work, given)
            running["dashboard_http"] = _dashboard_http(server)
            result["server_running"] = running
            print(f"  running: {running}", file=sys.stderr)
        finally:
            server.stop()
        result["server_stopped"] = _reads(work, given)
        print(f"  stopped: {result['server_stopped']}", file=sys.stderr)
        empty = work / "no-snapshots"
        empty.mkdir()
        result["no_snapshots"] = _reads(work, given, {"QUORUM_SNAPSHOT_DIR": str(empty)})
        print(f"  no snapshots: {result['no_snapshots']}", file=sys.stderr)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cell(figures: dict[str, Any]) -> str:
    if "error" in figures:
        return f"failed after {figures['seconds']} s"
    return f"{figures['seconds']} s, {figures['peak_rss_mb']} MB"


def _table(results: list[dict[str, Any]]) -> str:
    rows = ["| answers | via | when | db-out | stats | dashboard data |", "|---|---|---|---|---|---|"]
    for r in results:
        for key, label in (
            ("server_running", "server running"),
            ("server_stopped", "server stopped"),
            ("no_snapshots", "no snapshots (whole stream)"),
        ):
            cells = " | ".join(_cell(r[key][step]) for step in ("db_out", "stats", "dashboard"))
            rows.append(f"| {r['answers']:,} | {r['via']} | {label} | {cells} |")
        http = r["server_running"]["dashboard_http"]
        served = _cell(http)
        if "error" not in http:
            peak = http["worker_peak_rss_mb"]
            served = f"{http['seconds']} s (warm {http['warm_seconds']} s), worker peak {peak} MB"
        rows.append(f"| {r['answers']:,} | {r['via']} | GET /dashboard/data | | | {served} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", default="200000", help="comma-separated answer counts (default 200000)")
    parser.add_argument("--via", choices=("http", "ledger"), default="http", help="how answers go in")
    parser.add_argument("--sessions", type=int, default=32, help="annotators answering at once")
    parser.add_argument("--workers", type=int, default=2, help="Granian workers of the server")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = []
    for answers in (int(n) for n in args.answers.split(",")):
        print(f"{answers:,} answers via {args.via}…", file=sys.stderr)
        results.append(run(answers, args.via, args.sessions, args.workers))
    print(json.dumps(results, indent=1) if args.json else _table(results))


if __name__ == "__main__":
    main()
