"""One typed settings object per process, loaded from `QUORUM_*` environment variables.

`SETTINGS` is the single declarative table: each entry names its environment variable,
type, default and help. CLI options mirror these, `docs/settings.md` documents them,
and `tests/test_docs.py` fails when the two drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ledger.errors import QuorumError
from ledger.streams import MAX_MESSAGE_BYTES
from recipes.loaders import DEFAULT_MAX_RECORD_BYTES

__all__ = [
    "RECIPE_CONFIG_SETTINGS",
    "SETTINGS",
    "InvalidSetting",
    "Setting",
    "Settings",
    "load_settings",
    "routing_of",
    "with_recipe_config",
]


class InvalidSetting(QuorumError):
    """An environment variable or option has a value Quorum cannot use."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    env: str
    type: type
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "data_dir",
        "QUORUM_DATA_DIR",
        Path,
        Path(".quorum"),
        "Directory for the embedded NATS store, its run file and the token secret.",
    ),
    Setting(
        "snapshot_dir",
        "QUORUM_SNAPSHOT_DIR",
        str,
        None,
        "Where `ledger snapshot` writes Parquet: a directory or a pyarrow URI (s3://…). "
        "Unset: <data dir>/snapshots.",
    ),
    Setting(
        "snapshots",
        "QUORUM_SNAPSHOTS",
        bool,
        True,
        "The process that owns the data dir keeps its Parquet snapshots current (a `ledger snapshot "
        "--follow` child). false: every db-out, stats and dashboard refresh replays the ledger "
        "from the last snapshot, a cost that grows with the history.",
    ),
    Setting(
        "nats_url",
        "QUORUM_NATS_URL",
        str,
        None,
        "NATS server to use (also read from NATS_URL). Unset: run the embedded server.",
    ),
    Setting(
        "nats_port", "QUORUM_NATS_PORT", int, 0, "Port for the embedded NATS server; 0 picks a free one."
    ),
    Setting("host", "QUORUM_HOST", str, "localhost", "Interface the feed workers listen on."),
    Setting("port", "QUORUM_PORT", int, 8080, "Port the feed workers listen on."),
    Setting("workers", "QUORUM_WORKERS", int, 1, "Number of Granian worker processes serving the feed."),
    Setting(
        "dataset",
        "QUORUM_DATASET",
        str,
        None,
        "Dataset the feed workers serve (set by the recipe that starts them).",
    ),
    Setting(
        "batch_size", "QUORUM_BATCH_SIZE", int, 10, "Tasks handed out per /get_session_questions request."
    ),
    Setting(
        "feed",
        "QUORUM_FEED",
        bool,
        True,
        "A recipe command serves the feed workers; false: it runs the recipe runner only (its "
        "Deployment on a cluster), waiting for the dataset's leader lock while another runner holds it.",
    ),
    Setting(
        "queue_depth",
        "QUORUM_QUEUE_DEPTH",
        int,
        0,
        "Tasks the recipe runner keeps queued ahead of the annotators, pulling the recipe's stream "
        "lazily; 0: four batches per session holding tasks (at least four batches).",
    ),
    Setting(
        "update_idle",
        "QUORUM_UPDATE_IDLE",
        float,
        2.0,
        "Seconds without new answers after which the runner hands a partial batch to the recipe's `update`.",
    ),
    Setting(
        "ack_wait",
        "QUORUM_ACK_WAIT",
        float,
        600.0,
        "Seconds a handed-out task may stay unanswered before it goes to someone else.",
    ),
    Setting(
        "token_ttl",
        "QUORUM_TOKEN_TTL",
        float,
        86400.0,
        "Seconds a task token stays valid; an answer with an older token gets 403.",
    ),
    Setting(
        "max_ack_pending",
        "QUORUM_MAX_ACK_PENDING",
        int,
        20000,
        "Most tasks of one dataset handed out and not yet answered at once.",
    ),
    Setting(
        "max_body_bytes",
        "QUORUM_MAX_BODY_BYTES",
        int,
        4 * 1024 * 1024,
        "Largest accepted request body; bigger ones get 413.",
    ),
    Setting(
        "max_task_bytes",
        "QUORUM_MAX_TASK_BYTES",
        int,
        DEFAULT_MAX_RECORD_BYTES,
        "Largest source record (a JSONL/CSV/text line, a JSON record) a recipe loads; a bigger one "
        "stops the load before anything is queued, naming its file and line.",
    ),
    Setting(
        "secret",
        "QUORUM_SECRET",
        str,
        None,
        "HMAC key for task tokens. Unset: a random key kept in the NATS config bucket.",
    ),
    Setting(
        "log_level",
        "QUORUM_LOG_LEVEL",
        str,
        "info",
        "Log level of the JSON logs: debug, info, warning or error.",
    ),
    Setting(
        "feed_overlap",
        "QUORUM_FEED_OVERLAP",
        bool,
        False,
        "Every session annotates every task (true), or each task goes to one session (false).",
    ),
    Setting(
        "annotations_per_task",
        "QUORUM_ANNOTATIONS_PER_TASK",
        int,
        None,
        "Each task is answered by exactly this many distinct sessions (not with feed_overlap).",
    ),
    Setting(
        "exclude",
        "QUORUM_EXCLUDE",
        str,
        None,
        "Comma-separated datasets whose answered tasks are skipped when loading.",
    ),
    Setting(
        "exclude_by",
        "QUORUM_EXCLUDE_BY",
        str,
        "task",
        "Compare tasks for --exclude by 'task' hash or by 'input' hash.",
    ),
    Setting(
        "allowed_sessions",
        "QUORUM_ALLOWED_SESSIONS",
        str,
        None,
        "Comma-separated session names allowed to annotate; others get 403. Unset: any.",
    ),
    Setting(
        "users_file",
        "QUORUM_USERS_FILE",
        Path,
        None,
        "File of annotator credentials (made with 'quorum users add'); enables login.",
    ),
    Setting(
        "admin_token",
        "QUORUM_ADMIN_TOKEN",
        str,
        None,
        "Bearer token for operator endpoints such as /progress; required off localhost.",
    ),
    Setting(
        "instant_submit",
        "QUORUM_INSTANT_SUBMIT",
        bool,
        False,
        "The web app sends each answer at once instead of batching the outbox.",
    ),
    Setting(
        "session_idle",
        "QUORUM_SESSION_IDLE",
        float,
        30 * 86400.0,
        "Seconds before an idle session's full-overlap consumer is deleted by NATS.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The validated settings of this process."""

    data_dir: Path = Path(".quorum")
    snapshot_dir: str | None = None
    snapshots: bool = True
    nats_url: str | None = None
    nats_port: int = 0
    host: str = "localhost"
    port: int = 8080
    workers: int = 1
    dataset: str | None = None
    batch_size: int = 10
    feed: bool = True
    queue_depth: int = 0
    update_idle: float = 2.0
    ack_wait: float = 600.0
    token_ttl: float = 86400.0
    max_ack_pending: int = 20000
    max_body_bytes: int = 4 * 1024 * 1024
    max_task_bytes: int = DEFAULT_MAX_RECORD_BYTES
    secret: str | None = None
    log_level: str = "info"
    feed_overlap: bool = False
    annotations_per_task: int | None = None
    exclude: str | None = None
    exclude_by: str = "task"
    allowed_sessions: str | None = None
    users_file: Path | None = None
    admin_token: str | None = None
    instant_submit: bool = False
    session_idle: float = 30 * 86400.0

    @property
    def snapshot_location(self) -> str:
        """The snapshot root: `snapshot_dir`, or `snapshots` inside the data dir."""
        return self.snapshot_dir or str(self.data_dir / "snapshots")

    @property
    def session_allow_list(self) -> frozenset[str] | None:
        """Sessions allowed to annotate, or None when any session may."""
        if not self.allowed_sessions:
            return None
        return frozenset(name.strip() for name in self.allowed_sessions.split(",") if name.strip())

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None `overrides` applied (CLI options win over env)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _validate(replace(self, **given))

    def to_env(self) -> dict[str, str]:
        """The settings as `QUORUM_*` variables, to hand to worker processes."""
        env: dict[str, str] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if value is not None:
                env[setting.env] = str(value)
        return env


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(setting: Setting, raw: str) -> Any:
    try:
        if setting.type is Path:
            return Path(raw)
        if setting.type is bool:
            if raw.lower() in _TRUE + _FALSE:
                return raw.lower() in _TRUE
            raise ValueError(raw)
        return setting.type(raw)
    except ValueError:
        raise InvalidSetting(
            f"{setting.env}={raw!r} is not a valid {setting.type.__name__}: {setting.help}"
        ) from None


_POSITIVE = (
    "workers",
    "batch_size",
    "update_idle",
    "ack_wait",
    "token_ttl",
    "max_ack_pending",
    "max_body_bytes",
    "max_task_bytes",
    "session_idle",
)


def _validate(settings: Settings) -> Settings:
    by_name = {s.name: s for s in SETTINGS}
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise InvalidSetting(f"{by_name[name].env} must be positive, got {getattr(settings, name)}")
    if settings.max_task_bytes > MAX_MESSAGE_BYTES:
        raise InvalidSetting(
            f"QUORUM_MAX_TASK_BYTES / --max-task-bytes is {settings.max_task_bytes:,}, over the "
            f"{MAX_MESSAGE_BYTES:,} bytes a NATS message may carry; split big records instead"
        )
    for name in ("port", "nats_port"):
        if not 0 <= getattr(settings, name) <= 65535:
            raise InvalidSetting(f"{by_name[name].env} must be a port number 0-65535")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise InvalidSetting("QUORUM_LOG_LEVEL must be one of debug, info, warning, error")
    if settings.exclude_by not in ("task", "input"):
        raise InvalidSetting(
            f"QUORUM_EXCLUDE_BY / --exclude-by must be 'task' or 'input', got {settings.exclude_by!r}"
        )
    if settings.queue_depth < 0:
        raise InvalidSetting(f"QUORUM_QUEUE_DEPTH must be 0 (automatic) or more, got {settings.queue_depth}")
    k = settings.annotations_per_task
    if k is not None and k < 1:
        raise InvalidSetting("QUORUM_ANNOTATIONS_PER_TASK / --annotations-per-task must be 1 or more")
    if k is not None and settings.feed_overlap:
        raise InvalidSetting(
            "feed_overlap and annotations_per_task can't both be set: use --feed-overlap for every "
            "session on every task, or --annotations-per-task K for exactly K sessions per task"
        )
    return settings


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `environ` (default: `os.environ`), then `overrides` on top."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for setting in SETTINGS:
        assert setting.name in known
        raw = env.get(setting.env)
        if raw is None and setting.name == "nats_url":
            raw = env.get("NATS_URL")
        if raw not in (None, ""):
            values[setting.name] = _convert(setting, raw)  # type: ignore[arg-type]
    return _validate(Settings(**values)).with_overrides(**overrides)


RECIPE_CONFIG_SETTINGS = ("batch_size", "feed_overlap", "annotations_per_task", "exclude_by")
"""Settings a recipe's `config` may set (Prodigy's keys of the same names)."""


def with_recipe_config(
    settings: Settings,
    config: Mapping[str, Any],
    given: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """`settings` with the recipe's `config` values for `RECIPE_CONFIG_SETTINGS`, where
    neither the command line (`given`) nor the environment set them: defaults, then the
    recipe's config, then the user's own choice."""
    env = os.environ if environ is None else environ
    by_name = {s.name: s for s in SETTINGS}
    updates: dict[str, Any] = {}
    for name in RECIPE_CONFIG_SETTINGS:
        if name not in config or given.get(name) is not None or env.get(by_name[name].env):
            continue
        value = config[name]
        wanted = by_name[name].type
        if value is not None and not (
            isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))
        ):
            raise InvalidSetting(
                f"the recipe's config sets {name} to {value!r}; it must be {wanted.__name__}"
            )
        updates[name] = value
    return _validate(replace(settings, **updates)) if updates else settings


def routing_of(settings: Settings) -> dict[str, Any]:
    """The dataset routing settings a recipe run asks for."""
    return {
        "feed_overlap": settings.feed_overlap,
        "annotations_per_task": settings.annotations_per_task,
        "ack_wait": settings.ack_wait,
        "max_ack_pending": settings.max_ack_pending,
        "session_idle": settings.session_idle,
    }


def render_settings_table() -> str:
    """The Markdown table of `docs/settings.md` (`python -m recipes.settings` prints it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = "unset" if setting.default is None else f"`{setting.default}`"
        rows.append(f"| `{setting.env}` | {default} | {setting.help} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render_settings_table(), end="")
