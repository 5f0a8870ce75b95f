"""Benchmark of `ledger export` and `ledger import` (disaster recovery, moving clusters).

Loads N synthetic events (as benchmarks/ledger_bench.py does) into a bench nats-server,
exports them, imports the archive into a second server that runs like a deployment
(`sync_interval: always`, so one fsync per ledger message), and imports it again (the
idempotent re-run):

    python benchmarks/archive_bench.py --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ledger_bench import _load, _start_nats  # noqa: E402
from ledger.natsd import start_embedded  # noqa: E402


def _ledger(url: str, *args: str) -> tuple[float, str]:
    """Run one `ledger` command; return its seconds and its summary line."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from quorum.cli.ledger_cmd import main; main()", *args],
        env={**os.environ, "NATS_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    return time.perf_counter() - start, result.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quorum-archive-bench-"))
    process, url = _start_nats(work)
    target = start_embedded(work / "target")
    try:
        asyncio.run(_load(url, args.events, 10))
        archive = str(work / "archive")
        steps = [
            ("export", url, ("export", archive)),
            ("import (sync_interval: always)", target.url, ("import", archive)),
            ("import again (nothing new)", target.url, ("import", archive)),
        ]
        print(f"{args.events:,} events, 10 per ledger message")
        for name, server, command in steps:
            seconds, summary = _ledger(server, *command)
            print(f"  {name:<32} {seconds:6.1f} s {args.events / seconds:>10,.0f} ev/s   {summary}")
    finally:
        process.terminate()
        process.wait()
        target.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
