"""The factory Granian calls in each feed worker that `quorum` starts on this machine.

It builds the same app as `feed.app:create_app` (what a cluster's pods run), after
making the worker die with its Granian master: the master gets a signal when the
`quorum` parent ends and stops its workers, but if the master itself is killed
outright, no one else would stop them and they would keep answering on the port.
"""

from __future__ import annotations

import multiprocessing
import signal

from litestar import Litestar

from feed.app import create_app as create_feed_app
from ledger.processes import die_with_parent

__all__ = ["create_app"]


def create_app() -> Litestar:
    """`feed.app.create_app`, in a worker that ends when its Granian master does."""
    master = multiprocessing.parent_process()
    die_with_parent(signal.SIGKILL, master.pid if master is not None else None)
    return create_feed_app()
