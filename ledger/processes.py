"""Child processes that end with their parent, however the parent ends.

Quorum starts helpers it must never leave behind: nats-server and the Granian feed
workers (by `quorum/`), the snapshot workers (by `ledger.snapshot_workers`). On Linux,
`PR_SET_PDEATHSIG` asks the kernel to signal a process when its parent dies, even by
`kill -9`, which no handler in the parent can catch. Elsewhere this module does nothing
and says so (`die_with_parent` returns False).

The kernel watches the parent *thread* that started the child, not the process: a
child started from a helper thread would die when that thread ends. So only children
started from the main thread (which lives as long as the process) get the signal;
Quorum starts its servers from the main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent", "dies_with_this_process"]

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Looked up once, here: a forked child calling `dlopen` could deadlock on a lock that
# another thread of the parent held at fork time.
_prctl = _load_prctl()


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Have the kernel send `sig` to this process when its parent ends.

    `parent` is the pid the caller expects as its parent (default: the current one).
    If that parent is already gone, because it died before this call, `sig` is sent
    now. Returns False where the platform has no such mechanism.
    """
    if _prctl is None:
        return False
    expected = os.getppid() if parent is None else parent
    if _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != expected:
        os.kill(os.getpid(), sig)
    return True


def dies_with_this_process(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `sig` when this process ends.

    The setting survives the child's `exec`, so it works for any program (nats-server,
    a Python interpreter). `sig` should be one the program stops cleanly on. Returns
    None (no `preexec_fn`) when called from a thread other than the main thread: the
    child would die with that thread (see the module docstring).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        die_with_parent(sig, parent)

    return preexec
