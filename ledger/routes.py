"""The routes of tasks to sessions: JetStream pull consumers on the TASKS stream.

Three modes, chosen per dataset and kept in its configuration (so every worker and every
restart agrees):

- **no overlap** (`feed_overlap=false`): one shared durable consumer, `feed-<dataset>`.
  Each task goes to one session; one not answered within `ack_wait` goes to whoever asks
  next.
- **full overlap** (`feed_overlap=true`): one durable consumer per session. Every session
  sees every task once; its own unanswered tasks come back to it after `ack_wait`.
- **k per task** (`annotations_per_task=k`): k shared "slot" consumers; `feed.routing`
  makes sure a session takes a task from one slot at most.

The consumer names are made here and nowhere else (`owns_consumer` recognises them when a
dataset is dropped). Handing tasks out and claiming answers is `feed.routing`'s work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from ledger.datasets import DatasetInfo
from ledger.errors import LedgerError
from ledger.streams import HOLDS_STREAM, TASKS_STREAM, holds_subject, tasks_subject

__all__ = [
    "Mode",
    "Route",
    "consumer_info",
    "consumer_name",
    "ensure_consumers",
    "ensure_session_consumer",
    "owns_consumer",
    "route_for",
    "route_of",
    "session_consumer_name",
    "session_consumers",
    "sessions_holding_tasks",
    "slot_consumer_name",
]

Mode = Literal["none", "full", "k"]


@dataclass(frozen=True)
class Route:
    """How a dataset's tasks reach sessions."""

    dataset: str
    mode: Mode
    k: int
    ack_wait: float
    max_ack_pending: int
    session_idle: float = 7 * 86400.0

    def consumers_for(self, session: str) -> list[str]:
        """The consumers a session draws from, in order of preference."""
        if self.mode == "full":
            return [session_consumer_name(self.dataset, session)]
        if self.mode == "k":
            return [slot_consumer_name(self.dataset, slot) for slot in range(self.k)]
        return [consumer_name(self.dataset)]


def route_for(
    dataset: str,
    *,
    feed_overlap: bool,
    annotations_per_task: int | None,
    ack_wait: float,
    max_ack_pending: int,
    session_idle: float = 7 * 86400.0,
) -> Route:
    """The route for a dataset's routing settings (k=1 is plain no-overlap)."""
    if feed_overlap:
        mode: Mode = "full"
    elif annotations_per_task and annotations_per_task > 1:
        mode = "k"
    else:
        mode = "none"
    return Route(dataset, mode, annotations_per_task or 1, ack_wait, max_ack_pending, session_idle)


def route_of(info: DatasetInfo) -> Route:
    """The route of a configured dataset."""
    return route_for(
        info.dataset,
        feed_overlap=info.feed_overlap,
        annotations_per_task=info.annotations_per_task,
        ack_wait=info.ack_wait,
        max_ack_pending=info.max_ack_pending,
        session_idle=info.session_idle,
    )


def consumer_name(dataset: str) -> str:
    """The shared durable consumer of a no-overlap dataset."""
    return f"feed-{dataset}"


def slot_consumer_name(dataset: str, slot: int) -> str:
    """Slot `slot` of a k-overlap dataset. The length prefix keeps names apart that a
    plain `feed-<dataset>-k<slot>` would merge (slot 0 of `news`, dataset `news-k0`)."""
    return f"slot-{len(dataset)}-{dataset}-{slot}"


def session_consumer_name(dataset: str, session: str) -> str:
    """A full-overlap session's own consumer. `_` never appears in `len`, so no clash."""
    return f"sess-{len(dataset)}-{dataset}-{session}"


def _config(route: Route, name: str, *, idle: float | None = None) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name,
        filter_subject=tasks_subject(route.dataset),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=route.ack_wait,
        max_ack_pending=route.max_ack_pending,
        max_deliver=-1,
        max_waiting=4096,
        inactive_threshold=idle,
    )


async def _add(nc: Client, config: ConsumerConfig) -> None:
    # Creating a durable that exists updates it in place (e.g. a new --ack-wait).
    try:
        await nc.jetstream().add_consumer(TASKS_STREAM, config)
    except BadRequestError as exc:
        raise LedgerError(f"cannot set up task consumer {config.durable_name!r}: {exc.description}") from exc


async def ensure_consumers(nc: Client, route: Route) -> None:
    """Create (or update) the dataset's shared consumers; session consumers come lazily."""
    if route.mode == "none":
        await _add(nc, _config(route, consumer_name(route.dataset)))
    elif route.mode == "k":
        for slot in range(route.k):
            await _add(nc, _config(route, slot_consumer_name(route.dataset, slot)))


async def ensure_session_consumer(nc: Client, route: Route, session: str) -> None:
    """Create a full-overlap session's own consumer; NATS deletes it after `session_idle`."""
    await _add(nc, _config(route, session_consumer_name(route.dataset, session), idle=route.session_idle))


async def consumer_info(nc: Client, dataset: str, name: str | None = None) -> ConsumerInfo | None:
    """A consumer's counters (pending = queued, ack pending = out), None if it is gone."""
    try:
        info: ConsumerInfo = await nc.jetstream().consumer_info(TASKS_STREAM, name or consumer_name(dataset))
    except NotFoundError:
        return None
    return info


def owns_consumer(dataset: str, info: ConsumerInfo) -> bool:
    """True for the durable feed consumers of `dataset` (named above), and no others.

    The consumer must also read the dataset's task subject, so a consumer that merely
    shares a name prefix is never touched.
    """
    name = info.name
    named = (
        name == consumer_name(dataset)
        or re.fullmatch(re.escape(slot_consumer_name(dataset, 0))[:-1] + r"\d+", name) is not None
        or name.startswith(session_consumer_name(dataset, ""))
    )
    config = info.config
    subjects = [config.filter_subject] if config.filter_subject else list(config.filter_subjects or [])
    return named and subjects == [tasks_subject(dataset)]


async def session_consumers(nc: Client, route: Route) -> list[str]:
    """The full-overlap session consumers of `route`'s dataset that exist now."""
    prefix = session_consumer_name(route.dataset, "")
    names: list[str] = []
    for info in await nc.jetstream().consumers_info(TASKS_STREAM):
        if info.name.startswith(prefix) and owns_consumer(route.dataset, info):
            names.append(info.name)
    return names


async def sessions_holding_tasks(nc: Client, dataset: str) -> list[str]:
    """Sessions that hold tasks of `dataset` unanswered (their HOLDS records)."""
    info = await nc.jetstream().stream_info(HOLDS_STREAM, subjects_filter=holds_subject(dataset, "*"))
    prefix = holds_subject(dataset, "")
    return sorted(subject.removeprefix(prefix) for subject in (info.state.subjects or {}))
