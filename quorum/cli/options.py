"""CLI options shared by several commands, each mirroring a `QUORUM_*` setting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "AckWait",
    "AnnotationsPerTask",
    "BatchSize",
    "DataDir",
    "Exclude",
    "ExcludeBy",
    "FeedOverlap",
    "Host",
    "Port",
    "Workers",
]

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the embedded NATS keeps its data [env: QUORUM_DATA_DIR, default ./.quorum]"
    ),
]
Host = Annotated[
    str | None, typer.Option("--host", help="Interface to listen on [env: QUORUM_HOST, default localhost]")
]
Port = Annotated[
    int | None, typer.Option("--port", help="Port to listen on [env: QUORUM_PORT, default 8080]")
]
Workers = Annotated[
    int | None, typer.Option("--workers", help="Granian worker processes [env: QUORUM_WORKERS, default 1]")
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Tasks per request [env: QUORUM_BATCH_SIZE, default 10]")
]
AckWait = Annotated[
    float | None,
    typer.Option(
        "--ack-wait", help="Seconds before an unanswered task goes to someone else [env: QUORUM_ACK_WAIT]"
    ),
]
FeedOverlap = Annotated[
    bool | None,
    typer.Option(
        "--feed-overlap/--no-feed-overlap",
        help="Every session annotates every task, or each task goes to one session [env: QUORUM_FEED_OVERLAP]",
    ),
]
AnnotationsPerTask = Annotated[
    int | None,
    typer.Option(
        "--annotations-per-task",
        help="Each task answered by exactly K distinct sessions, late joiners included [env: QUORUM_ANNOTATIONS_PER_TASK]",
    ),
]
Exclude = Annotated[
    str | None,
    typer.Option(
        "--exclude",
        help="Skip tasks already answered in these datasets (comma-separated) [env: QUORUM_EXCLUDE]",
    ),
]
ExcludeBy = Annotated[
    str | None,
    typer.Option(
        "--exclude-by", help="Compare by 'task' or 'input' hash for --exclude [env: QUORUM_EXCLUDE_BY]"
    ),
]
