"""Benchmark of the ledger's history tools: snapshot, replay (+ db-out), verify, export.

Loads N synthetic answer events into a fresh nats-server (textcat-style answers of
~300 bytes each, `--per-message` events per ledger message as one `give_answers`
request would append them, over two datasets), then times each step in a fresh
process so its peak RSS is its own:

    python benchmarks/ledger_bench.py --events 1000000
    python benchmarks/ledger_bench.py --events 1000000,10000000 --json

The benchmark server runs *without* `sync_interval: always`: only loading the events
would change (one fsync per message), and loading is not what is measured here.
Goal (issue 5): 10M events replayed to Parquet and the datasets written out in < 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.connection import connect  # noqa: E402
from ledger.datasets import DatasetInfo, save_dataset  # noqa: E402
from ledger.events import DatasetConfigured  # noqa: E402
from ledger.natsd import free_port, nats_binary  # noqa: E402
from ledger.store import Ledger  # noqa: E402
from ledger.streams import ensure_streams  # noqa: E402

DATASETS = ("bench_a", "bench_b")
T0 = 1_767_225_600_000
STEPS = {
    "snapshot": "ledger snapshot (one-shot, empty snapshot dir)",
    "replay": "ledger replay (delete every snapshot, rebuild)",
    "db_out": "quorum db-out of both datasets from the snapshots",
    "verify": "ledger verify (files against the stream)",
}


def _start_nats(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = data / "nats.conf"
    config.write_text(f'host: 127.0.0.1\nport: {port}\njetstream {{\n  store_dir: "{data / "js"}"\n}}\n')
    process = subprocess.Popen([str(nats_binary()), "-c", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return process, f"nats://127.0.0.1:{port}"


def _message(first: int, per_message: int) -> bytes:
    dataset = DATASETS[(first // per_message) % len(DATASETS)]
    events = []
    for n in range(first, first + per_message):
        session = f"annotator{n % 20}"
        task = n // 2
        events.append(
            {
                "kind": "answer_recorded",
                "event_id": f"ans-{n:016x}",
                "dataset": dataset,
                "session_id": f"{dataset}-{session}",
                "session": session,
                "answer": ("accept", "reject", "accept", "ignore")[n % 4],
                "input_hash": task * 7919,
                "task_hash": task * 104729,
                "view_id": "choice",
                "example": {
                    "text": f"Quarterly results for company {task} beat expectations as demand grew.",
                    "options": [{"id": "Tech", "text": "Tech"}, {"id": "Politics", "text": "Politics"}],
                    "accept": ["Tech"] if n % 3 else ["Politics"],
                    "_input_hash": task * 7919,
                    "_task_hash": task * 104729,
                },
                "recorded_at": T0 + n,
            }
        )
    return msgspec.json.encode({"events": events, "v": 1})


async def _load(url: str, events: int, per_message: int) -> float:
    nc = await connect(url)
    js = nc.jetstream()
    kv = await ensure_streams(js)
    start = time.perf_counter()
    for dataset in DATASETS:
        config = DatasetConfigured(
            event_id=f"cfg-{dataset}",
            dataset=dataset,
            recipe="textcat.manual",
            view_id="choice",
            config={"labels": ["Tech", "Politics"], "routing": {"feed_overlap": True}},
            recorded_at=T0,
        )
        await Ledger(nc).append([config])
        await save_dataset(kv, DatasetInfo(dataset=dataset, recipe="textcat.manual", view_id="choice"))
    window = []
    for first in range(0, events, per_message):
        dataset = DATASETS[(first // per_message) % len(DATASETS)]
        window.append(js.publish(f"quorum.events.{dataset}.answers", _message(first, per_message)))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window = []
        if first % (per_message * 100_000) == 0 and first:
            print(f"  loaded {first:,} events", file=sys.stderr)
    await asyncio.gather(*window)
    await nc.close()
    return time.perf_counter() - start


_LEDGER = "from quorum.cli.ledger_cmd import main; main"
_STEP_CODE = {
    "snapshot": _LEDGER + "(['snapshot', '--snapshot-dir', SNAP, *WORKERS])",
    "replay": _LEDGER + "(['replay', '--snapshot-dir', SNAP, *WORKERS])",
    "db_out": (
        "from quorum.cli import main\n"
        "for ds in DATASETS:\n"
        "    try:\n"
        "        main(['db-out', ds, '-o', OUT + '/' + ds + '.jsonl', '--snapshot-dir', SNAP])\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code"
    ),
    "verify": _LEDGER + "(['verify', '--snapshot-dir', SNAP])",
}


def _step(name: str, url: str, snap: Path, out: Path, workers: int | None) -> dict[str, Any]:
    flags = ["--workers", str(workers)] if workers is not None else []
    prelude = f"SNAP={str(snap)!r}\nOUT={str(out)!r}\nDATASETS={DATASETS!r}\nWORKERS={flags!r}\n"
    code = prelude + "try:\n" + "\n".join("    " + line for line in _STEP_CODE[name].splitlines())
    code += "\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    rss_file = out / f"{name}.rss"
    code += (
        "import resource\nrss = max(resource.getrusage(who).ru_maxrss for who in "
        "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
        f"open({str(rss_file)!r}, 'w').write(str(rss))\n"
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"NATS_URL": url, "PATH": "/usr/bin:/bin"}, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(int(rss_file.read_text()) / 1024)}


def _files(snap: Path) -> dict[str, Any]:
    parts = sorted(snap.glob("dataset=*/part-*.parquet"))
    sizes = [p.stat().st_size for p in parts]
    return {
        "files": len(parts),
        "total_mb": round(sum(sizes) / 1e6, 1),
        "largest_mb": round(max(sizes, default=0) / 1e6, 1),
    }


def run(events: int, per_message: int, workers: int | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="quorum-ledger-bench-"))
    process, url = _start_nats(work)
    try:
        load = asyncio.run(_load(url, events, per_message))
        result: dict[str, Any] = {"events": events, "per_message": per_message, "workers": workers}
        result["load_seconds"] = round(load, 1)
        snap, out = work / "snapshots", work / "out"
        out.mkdir()
        for name in STEPS:
            figures = _step(name, url, snap, out, workers)
            figures["events_per_s"] = round(events / figures["seconds"])
            result[name] = figures
            print(f"  {name}: {figures}", file=sys.stderr)
        result["snapshot_files"] = _files(snap)
        result["db_out_lines"] = sum(sum(1 for _ in (out / f"{d}.jsonl").open("rb")) for d in DATASETS)
        return result
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", default="1000000", help="comma-separated event counts")
    parser.add_argument("--per-message", type=int, default=10, help="events per ledger message")
    parser.add_argument(
        "--workers", type=int, default=None, help="--workers for snapshot and replay (default: theirs)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = [run(int(n), args.per_message, args.workers) for n in args.events.split(",")]
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        workers = r["workers"] if r["workers"] is not None else "default"
        print(
            f"\n{r['events']:,} events, {r['per_message']} per message, workers {workers} "
            f"(loaded in {r['load_seconds']} s; peak RSS: largest process)"
        )
        for name, what in STEPS.items():
            f = r[name]
            speed = f"{f['events_per_s']:>10,} ev/s"
            print(f"  {what:<52} {f['seconds']:>7.1f} s {speed}  RSS {f['peak_rss_mb']} MB")
        files = r["snapshot_files"]
        print(f"  files: {files['files']}, {files['total_mb']} MB, largest {files['largest_mb']} MB")
        print(f"  db-out lines: {r['db_out_lines']:,}")


if __name__ == "__main__":
    main()
