"""Connecting to NATS, with driver errors translated into `LedgerUnavailable`."""

from __future__ import annotations

import nats
from nats.aio.client import DEFAULT_PENDING_SIZE, Client

from ledger.errors import LedgerUnavailable

__all__ = ["connect"]


async def _quiet(_: Exception) -> None:
    """nats-py logs every reconnect attempt; Quorum reports failures itself."""


async def connect(url: str, *, name: str = "quorum", reconnect: bool = False) -> Client:
    """Connect to NATS at `url` and check that JetStream answers.

    CLI commands connect with `reconnect=False` so that an unreachable server fails
    fast with a clear message; feed workers pass `reconnect=True` and ride out a
    NATS restart. While such a connection is down, a publish (and so a request)
    fails at once instead of waiting in a buffer for the server to come back: the
    caller can answer "not ready, retry" within its deadline.
    """
    try:
        nc = await nats.connect(
            url,
            name=name,
            connect_timeout=3,
            allow_reconnect=reconnect,
            # nats-py treats 0 as "retry forever" at connect time; 1 fails fast.
            max_reconnect_attempts=-1 if reconnect else 1,
            reconnect_time_wait=0.5,
            # No buffering while disconnected (see above); 0 also drops the write
            # back-pressure that bulk loaders want, so only reconnecting clients get it.
            pending_size=0 if reconnect else DEFAULT_PENDING_SIZE,
            error_cb=_quiet,
        )
    except Exception as exc:
        raise LedgerUnavailable(
            f"cannot reach NATS at {url}: {exc or type(exc).__name__}. Start the server, fix "
            f"NATS_URL, or unset NATS_URL to let Quorum run its embedded server"
        ) from None
    try:
        await nc.jetstream().account_info()
    except Exception as exc:
        await nc.close()
        raise LedgerUnavailable(
            f"NATS at {url} answered but JetStream did not ({exc or type(exc).__name__}); "
            f"start nats-server with -js"
        ) from None
    return nc
