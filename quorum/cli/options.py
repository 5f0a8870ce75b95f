"""CLI options shared by several commands, each mirroring a `QUORUM_*` setting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "AckWait",
    "AnnotationsPerTask",
    "BatchSize",
    "DataDir",
    "Encoding",
    "Exclude",
    "ExcludeBy",
    "Feed",
    "FeedOverlap",
    "Host",
    "MaxTaskBytes",
    "Port",
    "RecipeFiles",
    "SnapshotDir",
    "ToSeq",
    "Until",
    "UsersFile",
    "Workers",
    "parse_until",
]

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where the embedded NATS keeps its data \\[env: QUORUM_DATA_DIR, default ./.quorum]",
    ),
]
SnapshotDir = Annotated[
    str | None,
    typer.Option(
        "--snapshot-dir",
        help="Parquet snapshots: a directory or URI "
        "\\[env: QUORUM_SNAPSHOT_DIR, default <data dir>/snapshots]",
    ),
]
Host = Annotated[
    str | None, typer.Option("--host", help="Interface to listen on \\[env: QUORUM_HOST, default localhost]")
]
Port = Annotated[
    int | None, typer.Option("--port", help="Port to listen on \\[env: QUORUM_PORT, default 8080]")
]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Granian worker processes \\[env: QUORUM_WORKERS, default 1]")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Tasks per request \\[env: QUORUM_BATCH_SIZE, default 10]")
]
AckWait = Annotated[
    float | None,
    typer.Option(
        "--ack-wait", help="Seconds before an unanswered task goes to someone else \\[env: QUORUM_ACK_WAIT]"
    ),
]
FeedOverlap = Annotated[
    bool | None,
    typer.Option(
        "--feed-overlap/--no-feed-overlap",
        help="Every session annotates every task, or each task goes to one session "
        "\\[env: QUORUM_FEED_OVERLAP]",
    ),
]
Feed = Annotated[
    bool | None,
    typer.Option(
        "--feed/--no-feed",
        help="Serve the feed workers, or run only the recipe runner (a cluster's runner Deployment) "
        "\\[env: QUORUM_FEED, default on]",
    ),
]
Snapshots = Annotated[
    bool | None,
    typer.Option(
        "--snapshots/--no-snapshots",
        help="Keep Parquet snapshots of the ledger current while serving, so db-out, stats and the "
        "dashboard read snapshots plus a short tail; without, every read re-reads the whole ledger "
        "\\[env: QUORUM_SNAPSHOTS, default on]",
    ),
]
AnnotationsPerTask = Annotated[
    int | None,
    typer.Option(
        "--annotations-per-task",
        help="Each task answered by exactly K distinct sessions, late joiners included "
        "\\[env: QUORUM_ANNOTATIONS_PER_TASK]",
    ),
]
Exclude = Annotated[
    str | None,
    typer.Option(
        "--exclude",
        help="Skip tasks already answered in these datasets (comma-separated) \\[env: QUORUM_EXCLUDE]",
    ),
]
ExcludeBy = Annotated[
    str | None,
    typer.Option(
        "--exclude-by", help="Compare by 'task' or 'input' hash for --exclude \\[env: QUORUM_EXCLUDE_BY]"
    ),
]
Encoding = Annotated[
    str,
    typer.Option(
        "--encoding",
        help="Text encoding of the source file, e.g. latin-1 or cp1252 (a UTF-8 byte order mark is fine)",
    ),
]
MaxTaskBytes = Annotated[
    int | None,
    typer.Option(
        "--max-task-bytes",
        help="Largest source record in bytes; a bigger one stops the load before anything is queued "
        "\\[env: QUORUM_MAX_TASK_BYTES, default 1048576]",
    ),
]
UsersFile = Annotated[
    Path | None,
    typer.Option(
        "--users-file",
        help="Annotator credentials (made with 'quorum users add'); enables login \\[env: QUORUM_USERS_FILE]",
    ),
]

Until = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="Time travel: only events recorded up to this time (ISO 8601, e.g. 2026-11-16 or "
        "2026-11-16T18:00:00+01:00; without an offset: UTC)",
    ),
]
ToSeq = Annotated[
    int | None,
    typer.Option("--to-seq", min=1, help="Time travel: only events up to this ledger sequence number"),
]


def parse_until(text: str | None) -> int | None:
    """`--until` as milliseconds since the epoch; a date alone means the end of that day."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time: use e.g. 2026-11-16 or 2026-11-16T18:00:00Z",
            param_hint="--until",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if len(text.strip()) == 10:  # a date: everything recorded that day counts
        return int(moment.timestamp() * 1000) + 86_400_000 - 1
    return int(moment.timestamp() * 1000)


RecipeFiles = Annotated[
    list[str] | None,
    typer.Option(
        "--file",
        "-F",
        metavar="FILE",
        help="A Python file defining recipes (@quorum.recipe or @prodigy.recipe); may repeat",
    ),
]
