"""Who owns a data dir: one process at a time, under an OS lock the kernel drops on death.

The owner (a recipe or `quorum serve`; or a tool such as `quorum db-out` while no server
runs) holds an exclusive `flock` on `<data dir>/quorum.lock` for as long as it lives, and
describes itself in `<data dir>/owner.json`: pid, command line, the NATS URL it runs and
the feed's URL. The lock, never the file, says whether an owner lives: a file left by a
killed owner is ignored. The lock's descriptor is not inherited by child processes, so
a child that outlived its owner could never keep the data dir locked.

This module also finds what a dead owner may have left running (`leftovers`) and who
listens on a port (`port_holders`), so that errors can name a pid and what to kill.
It never starts, stops or signals a process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ledger.errors import QuorumError

__all__ = [
    "LOCK_FILE",
    "OWNER_FILE",
    "DataDirBusy",
    "Owner",
    "OwnerLock",
    "ProcessInfo",
    "acquire",
    "bind_error",
    "check_no_leftovers",
    "check_unowned",
    "current_owner",
    "describe_processes",
    "leftovers",
    "port_holders",
    "try_acquire",
]

LOCK_FILE = "quorum.lock"
OWNER_FILE = "owner.json"


@dataclass(frozen=True)
class Owner:
    """What the owner of a data dir says about itself in `owner.json`."""

    pid: int
    command: str
    nats_url: str | None = None
    nats_pid: int | None = None
    feed_url: str | None = None
    feed_pid: int | None = None

    def describe(self) -> str:
        """`pid 4711 (quorum ner.manual …), serving http://…, NATS at nats://…`."""
        parts = [f"pid {self.pid} ({self.command})"]
        if self.feed_url:
            parts.append(f"serving {self.feed_url}")
        if self.nats_url:
            parts.append(f"NATS at {self.nats_url}")
        return ", ".join(parts)


class DataDirBusy(QuorumError):
    """Another process owns the data dir."""

    def __init__(self, data_dir: Path, owner: Owner) -> None:
        self.owner = owner
        super().__init__(
            f"data dir {data_dir} is in use by another Quorum: {owner.describe()}. One process "
            f"owns a data dir at a time: use the running one (db-out, stats, sql and the ledger "
            f"commands attach to it), stop it first (Ctrl+C in its terminal, or kill {owner.pid}), "
            f"or pass --data-dir with another directory"
        )


def _prepare(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise QuorumError(
            f"data dir {data_dir} is not usable ({exc.strerror}); pass --data-dir with a "
            f"writable directory or set QUORUM_DATA_DIR"
        ) from None
    return data_dir.resolve()


def _this_command() -> str:
    """`quorum ner.manual news …` as the user typed it, else the full command line."""
    if Path(sys.argv[0]).name == "quorum" or (sys.argv[0] == "-c" and "quorum.cli" in sys.modules):
        return shlex.join(["quorum", *sys.argv[1:]])
    return shlex.join(sys.orig_argv)


class OwnerLock:
    """The lock of a data dir, held by this process until `release` (or death)."""

    def __init__(self, data_dir: Path, handle: IO[str]) -> None:
        self.data_dir = data_dir
        self._handle: IO[str] | None = handle
        self._owner = Owner(pid=os.getpid(), command=_this_command())
        self._write()

    @property
    def owner(self) -> Owner:
        return self._owner

    def update(self, **changes: Any) -> None:
        """Change what `owner.json` says (the NATS URL once it runs, the feed's pid…)."""
        self._owner = dataclasses.replace(self._owner, **changes)
        if self._handle is not None:  # after `release` the file belongs to the next owner
            self._write()

    def _write(self) -> None:
        # Readers never see half a file: write aside, then rename over.
        target = self.data_dir / OWNER_FILE
        scratch = target.with_name(f".{OWNER_FILE}.{os.getpid()}")
        scratch.write_text(json.dumps(dataclasses.asdict(self._owner)))
        os.replace(scratch, target)

    def release(self) -> None:
        """Give the data dir up; a second call does nothing."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / OWNER_FILE).unlink()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> OwnerLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def try_acquire(data_dir: Path) -> OwnerLock | None:
    """Own `data_dir` (created if missing), or return None if a live process owns it."""
    data_dir = _prepare(data_dir)
    handle = (data_dir / LOCK_FILE).open("a+")  # not inheritable: children never hold it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return OwnerLock(data_dir, handle)


def acquire(data_dir: Path) -> OwnerLock:
    """Own `data_dir`; raise `DataDirBusy`, naming the owner, if a live process does."""
    while (lock := try_acquire(data_dir)) is None:
        owner = current_owner(data_dir.resolve())
        if owner is not None:
            raise DataDirBusy(data_dir.resolve(), owner)
        # else the owner ended just now: the data dir is free again
    return lock


def check_unowned(data_dir: Path) -> None:
    """Raise `DataDirBusy` if a live process owns `data_dir` (a quick look; `acquire`
    is what takes it). A recipe looks before it reads its source, to fail fast."""
    owner = current_owner(data_dir.resolve()) if data_dir.exists() else None
    if owner is not None:
        raise DataDirBusy(data_dir.resolve(), owner)


def current_owner(data_dir: Path, *, wait: float = 1.0) -> Owner | None:
    """The live owner of `data_dir`, or None when no process holds its lock."""
    lock_path = data_dir / LOCK_FILE
    if not lock_path.exists():
        return None
    deadline = time.monotonic() + wait
    while True:
        with lock_path.open("a+") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                return None  # closing the probe releases the lock at once
        owner = _read_owner(data_dir)
        if owner is not None and _exists(owner.pid):
            return owner
        if time.monotonic() > deadline:
            return _owner_from_kernel(lock_path)
        # An owner writes its file right after it takes the lock; until then the file
        # is missing, or the one a killed owner left.
        time.sleep(0.05)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(data_dir: Path) -> Owner | None:
    try:
        raw = json.loads((data_dir / OWNER_FILE).read_text())
        return Owner(**{f.name: raw.get(f.name) for f in dataclasses.fields(Owner)})
    except (OSError, ValueError, TypeError):
        return None


def _owner_from_kernel(lock_path: Path) -> Owner:
    """Who holds the lock, from /proc/locks, when the owner has not written its file."""
    inode = lock_path.stat().st_ino
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                pid = int(fields[4])
                return Owner(pid=pid, command=_command_of(pid) or "unknown command")
    return Owner(pid=0, command="a process this user cannot see")


@dataclass(frozen=True)
class ProcessInfo:
    """A process found on this machine: its pid, what it is, and the Quorum data dir it
    works for (its nats-server's store, its feed workers' QUORUM_DATA_DIR), if any."""

    pid: int
    what: str
    command: str
    data_dir: Path | None = None


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _command_of(pid: int) -> str:
    return shlex.join(_argv(pid))


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # not Linux: nothing to find
        return []


def _data_dir_of(pid: int) -> Path | None:
    """The QUORUM_DATA_DIR a process was started with, resolved against its cwd."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    for entry in environ:
        if entry.startswith(b"QUORUM_DATA_DIR="):
            value = Path(entry.split(b"=", 1)[1].decode(errors="replace"))
            return (cwd / value).resolve()
    return None


def _inspect(pid: int) -> ProcessInfo | None:
    argv = _argv(pid)
    if not argv:
        return None
    name = Path(argv[0]).name
    if name.startswith("nats-server"):
        config = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else ""
        store = Path(config).parent if Path(config).name == "nats.conf" else None
        return ProcessInfo(pid, "nats-server", shlex.join(argv), store)
    if "granian" in argv[:3]:
        return ProcessInfo(pid, "Granian feed worker", shlex.join(argv), _data_dir_of(pid))
    return ProcessInfo(pid, name, shlex.join(argv))


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # `pid (comm) state ppid …`; comm may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _descendants(pids: list[int], root: int) -> set[int]:
    """`root`'s children, grandchildren…, among `pids`."""
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def leftovers(data_dir: Path, *, besides_mine: bool = False) -> list[ProcessInfo]:
    """Processes that work for `data_dir` (its nats-server, its Granian workers) and are
    not this one (`besides_mine`: nor its children, which an owner starts before its
    nats-server). The owner looks before it starts its own: then they can only be left
    by an owner that died."""
    data_dir = data_dir.resolve()
    found = []
    pids = _pids()
    ours = {os.getpid()} | (_descendants(pids, os.getpid()) if besides_mine else set())
    for pid in pids:
        if pid in ours:
            continue
        info = _inspect(pid)
        if info is not None and info.data_dir == data_dir:
            found.append(info)
    return sorted(found, key=lambda p: p.pid)


def describe_processes(processes: list[ProcessInfo]) -> str:
    """`pid 12 (nats-server), pid 13 (Granian feed worker)`."""
    return ", ".join(f"pid {p.pid} ({p.what})" for p in processes)


def check_no_leftovers(data_dir: Path, *, grace: float = 2.0, besides_mine: bool = False) -> None:
    """Refuse to start on `data_dir` while a dead owner's processes still run on it.

    Waits `grace` seconds first for those on their way out: an owner that has just died
    leaves a nats-server that is still closing its store.
    """
    deadline = time.monotonic() + grace
    while (found := leftovers(data_dir, besides_mine=besides_mine)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if found:
        pids = " ".join(str(p.pid) for p in found)
        raise QuorumError(
            f"processes left by an earlier Quorum on data dir {data_dir.resolve()} still run: "
            f"{describe_processes(found)}. Their owner is gone and two servers must never share a "
            f"store: stop them with `kill {pids}`, then start again"
        )


def bind_error(host: str, port: int) -> str | None:
    """None if `port` on `host` can be bound right now, else the system's reason."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # fields: sl, local address:port (hex), remote, state (0A = LISTEN), …, inode
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def port_holders(port: int) -> list[ProcessInfo]:
    """The processes listening on TCP `port`, of those this user may inspect."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found = []
    for pid in _pids() if inodes else []:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    info = _inspect(pid)
                    if info is not None:
                        found.append(info)
                    break
    return sorted(found, key=lambda p: p.pid)
