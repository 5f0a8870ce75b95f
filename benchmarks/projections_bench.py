"""Benchmark of the projections: annotator counts, agreement, the dashboard and a full
db-out at scale.

Writes N synthetic answers (k=2 overlap over S sessions, two labels, some ignores, two
spans per answer of which one's label some sessions flip, so the review queue has work) as
Parquet files in the snapshot layout (`dataset=<name>/part-<first>-<last>.parquet`,
zstd, the `events` columns), starts an embedded NATS (the live tail is empty), then
times each step in a fresh process so its peak RSS is its own:

    python benchmarks/projections_bench.py --answers 1000000
    python benchmarks/projections_bench.py --answers 1000000,10000000 --json

Goals (issue 6): annotator_counts < 1 s and agreement < 5 s at 1M answers; (issue 22) a
dashboard refresh (`dashboard_data`, review queue included) about 1 s at 1M. "open" is
reading the (empty) live tail and defining the views; for agreement and the dashboard it
also keeps the answer keys in a temporary table, as `quorum agreement`, the dashboard and
db-out do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from projections.tail import TAIL_SCHEMA  # noqa: E402

DATASET = "bench"
CHUNK = 1_000_000
T0 = 1_767_225_600_000
STEPS = ("open", "annotator_counts", "agreement", "dashboard", "db_out")
SPAN_TYPE = TAIL_SCHEMA.field("spans").type


def _config_rows() -> list[dict[str, Any]]:
    config = {"labels": ["POS", "NEG"], "routing": {"feed_overlap": False, "annotations_per_task": 2}}
    return [
        {
            "seq": 1,
            "position": 0,
            "event_id": "cfg-bench",
            "kind": "dataset_configured",
            "dataset": DATASET,
            "view_id": "classification",
            "recipe": "textcat.manual",
            "config": json.dumps(config, separators=(",", ":")),
            "recorded_at": T0,
        }
    ]


def _chunk(start: int, count: int, sessions: int, rng: np.random.Generator) -> pa.Table:
    """Answers start..start+count: answer i is the (i % 2)-th of task i // 2."""
    index = np.arange(start, start + count, dtype=np.int64)
    task = index // 2
    slot = index % 2
    first = task % sessions
    second = (task + 1 + (task // sessions) % (sessions - 1)) % sessions
    session = np.where(slot == 0, first, second)
    truth = (task * 2654435761) % 7 < 4  # about 4 in 7 tasks deserve 'accept'
    flip_rate = 0.05 + 0.05 * session
    flipped = rng.random(count) < flip_rate
    accept = truth ^ flipped
    ignore = rng.random(count) < 0.03
    answer = np.where(ignore, "ignore", np.where(accept, "accept", "reject"))
    label = np.where(task % 2 == 0, "POS", "NEG")
    task_hash = ((task.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(1)).astype(np.int64)
    input_hash = task_hash ^ 0x5BD1E995
    recorded = T0 + index * 2_500  # 1M answers span about 29 days
    # Two spans per answer; some sessions relabel the second one now and then, so tasks
    # whose sessions agree on accept/reject can still disagree on spans.
    relabel = rng.random(count) < 0.02 * session
    span_starts = np.stack([np.zeros(count, dtype=np.int64), np.full(count, 20, dtype=np.int64)], axis=1)
    spans = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * count + 1, 2, dtype=np.int32)),
        pa.StructArray.from_arrays(
            [
                pa.array(span_starts.ravel()),
                pa.array(span_starts.ravel() + 9),
                pa.array(np.stack([label, np.where(relabel, "PER", "ORG")], axis=1).ravel()),
                pa.array(span_starts.ravel() // 10),
                pa.array(span_starts.ravel() // 10 + 1),
            ],
            fields=list(SPAN_TYPE.value_type),
        ),
        type=SPAN_TYPE,
    )
    names = np.array([f"annotator{i}" for i in range(sessions)])
    session_names = names[session]
    examples = [
        f'{{"text":"Synthetic sentence number {t} for the benchmark.","label":"{lab}",'
        f'"_input_hash":{ih},"_task_hash":{th},"_view_id":"classification"}}'
        for t, lab, ih, th in zip(
            task.tolist(), label.tolist(), input_hash.tolist(), task_hash.tolist(), strict=True
        )
    ]
    columns = {
        "seq": index // 10 + 2,
        "position": (index % 10).astype(np.int32),
        "event_id": [f"ans-{i:032x}" for i in index.tolist()],
        "kind": np.full(count, "answer_recorded"),
        "dataset": np.full(count, DATASET),
        "session": session_names,
        "session_id": np.char.add(f"{DATASET}-", session_names),
        "answer": answer,
        "view_id": np.full(count, "classification"),
        "input_hash": input_hash,
        "task_hash": task_hash,
        "label": label,
        "example": examples,
        "handed_out_at": recorded - 1500 - (index % 9000),
        "recorded_at": recorded,
    }
    arrays = []
    for field in TAIL_SCHEMA:
        if field.name == "spans":
            arrays.append(spans)
        elif field.name in columns:
            arrays.append(pa.array(columns[field.name], type=field.type))
        else:
            arrays.append(pa.nulls(count, type=field.type))
    return pa.Table.from_arrays(arrays, schema=TAIL_SCHEMA)


def generate(root: Path, answers: int, sessions: int) -> int:
    """Write the synthetic snapshot; return the last sequence number."""
    folder = root / f"dataset={DATASET}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    pq.write_table(
        pa.Table.from_pylist(_config_rows(), schema=TAIL_SCHEMA),
        folder / f"part-{1:020d}-{1:020d}.parquet",
        compression="zstd",
    )
    last = 1
    for start in range(0, answers, CHUNK):
        table = _chunk(start, min(CHUNK, answers - start), sessions, rng)
        first, last = int(table["seq"][0].as_py()), int(table["seq"][-1].as_py())
        pq.write_table(
            table,
            folder / f"part-{first:020d}-{last:020d}.parquet",
            compression="zstd",
            row_group_size=250_000,
        )
    return last


def run_step(step: str, root: Path, last_seq: int, nats_url: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    from ledger.connection import connect
    from projections.duck import Projections, open_projections
    from projections.export import export_jsonl
    from projections.reports import agreement_report, dashboard_data
    from projections.snapshots import SnapshotSet

    snapshots = SnapshotSet(root, last_seq)

    async def open_them() -> Projections:
        nc = await connect(nats_url)
        try:
            materialize = step in ("agreement", "dashboard", "db_out")
            return await open_projections(nc, dataset=DATASET, snapshots=snapshots, materialize=materialize)
        finally:
            await nc.close()

    started = time.perf_counter()
    projections = asyncio.run(open_them())
    opened = time.perf_counter() - started
    result: dict[str, Any] = {"step": step, "open_s": round(opened, 3)}
    with projections:
        started = time.perf_counter()
        if step == "annotator_counts":
            rows = projections.execute(
                "SELECT * FROM annotator_counts WHERE dataset = ?", [DATASET]
            ).fetchall()
            result["rows"] = len(rows)
        elif step == "agreement":
            report = agreement_report(projections, DATASET)
            result["krippendorff_alpha"] = report.overall["krippendorff_alpha"]
            result["n_items"] = report.overall["n_items"]
            result["pairs"] = len(report.pairwise)
        elif step == "dashboard":
            data = dashboard_data(projections, DATASET)
            result["disagreement_count"] = data["disagreement_count"]
            result["review_rows"] = len(data["disagreements"])
        elif step == "db_out":
            with open(os.devnull, "wb") as sink:
                result["rows"] = export_jsonl(projections, DATASET, sink)
        result["seconds"] = round(time.perf_counter() - started, 3)
    result["peak_rss_mb"] = round(_peak_rss_kb() / 1024, 1)
    return result


def _peak_rss_kb() -> int:
    """This process's peak RSS since exec (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench(answers: int, sessions: int, keep: Path | None) -> dict[str, Any]:
    from ledger.natsd import start_embedded

    work = Path(tempfile.mkdtemp(prefix="quorum-bench-"))
    root = keep or work / "snapshots"
    started = time.perf_counter()
    last_seq = generate(root, answers, sessions)
    generated = time.perf_counter() - started
    files = sorted(root.rglob("*.parquet"))
    server = start_embedded(work / "nats")
    results: dict[str, Any] = {
        "answers": answers,
        "sessions": sessions,
        "generate_s": round(generated, 1),
        "files": len(files),
        "parquet_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        "steps": {},
    }
    try:
        for step in STEPS:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--step",
                    step,
                    "--root",
                    str(root),
                    "--last-seq",
                    str(last_seq),
                    "--nats",
                    server.url,
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"step {step} failed:\n{out.stderr}")
            results["steps"][step] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", default="1000000", help="comma-separated sizes, e.g. 1000000,10000000")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--keep", type=Path, help="write (and keep) the synthetic snapshot here")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--last-seq", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--nats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.root, args.last_seq, args.nats)))
        return
    for size in (int(float(s)) for s in args.answers.split(",")):
        result = bench(size, args.sessions, args.keep)
        if args.json:
            print(json.dumps(result))
            continue
        print(
            f"{size:,} answers, {args.sessions} sessions: {result['files']} files, "
            f"{result['parquet_mb']} MB Parquet (generated in {result['generate_s']} s)"
        )
        for step, figures in result["steps"].items():
            seconds = figures.get("seconds", 0.0)
            print(
                f"  {step:<17}{seconds:>7.2f} s  + open {figures['open_s']:.2f} s  "
                f"= {seconds + figures['open_s']:6.2f} s   peak RSS {figures['peak_rss_mb']:,.0f} MB"
            )


if __name__ == "__main__":
    main()
