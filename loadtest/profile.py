"""Where the feed workers spend their time: py-spy recordings and a summary of them.

`start_profilers` attaches `py-spy record` to each Granian worker for the measurement
window (collapsed stacks, one file per worker). `python -m loadtest.profile FILES…`
summarises such files: the functions that are on CPU themselves (self time), and, for
one endpoint's handler, the share of its samples under each function it calls.

py-spy is not a dependency of Quorum: `pip install py-spy`. It samples from outside the
process, 100 times a second, pausing the worker for a few microseconds per sample
(`--nonblocking` would avoid the pauses but tears stacks: a third of its samples came
back empty or truncated here). Only Python frames are shown: time inside Granian's Rust
code, nats-server and the kernel shows up as CPU seconds in the report, not here.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import QuorumError

__all__ = ["Profilers", "StackSummary", "main", "start_profilers", "summarise"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profilers:
    """py-spy processes recording the workers; `finish` waits and lists the files."""

    outputs: list[Path]
    timer: threading.Timer
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def finish(self, timeout: float = 30.0) -> list[str]:
        self.timer.join(timeout)
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return [str(path) for path in self.outputs if path.exists()]


def start_profilers(
    directory: Path, pids: Sequence[int], delay: float, duration: float, *, tag: str = "run"
) -> Profilers:
    """Record every pid in `pids` for `duration` seconds, starting `delay` seconds from now."""
    binary = shutil.which("py-spy")
    if binary is None:
        raise QuorumError("--profile needs py-spy on PATH: pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    outputs = [directory / f"{tag}-worker{n}-{pid}.txt" for n, pid in enumerate(pids)]

    def launch() -> None:
        for pid, output in zip(pids, outputs, strict=True):
            profilers.processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(max(1, round(duration))),
                        "--rate",
                        "100",
                        "--format",
                        "raw",
                        "--output",
                        str(output),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    profilers = Profilers(outputs=outputs, timer=threading.Timer(delay, launch))
    profilers.timer.start()
    return profilers


def _frames(stack: str) -> list[str]:
    names = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match:
            path = match["file"]
            short = path.split("site-packages/")[-1] if "site-packages/" in path else path
            short = re.sub(r"^.*?/(feed|ledger|quorum|recipes|projections)/", r"\1/", short)
            names.append(f"{match['func']} ({short})")
        else:
            names.append(frame)
    return names


# Leaves where a thread waits rather than computes; py-spy's idle detection misses
# these Python-level waits (the logging listener thread, the event loop's epoll).
_IDLE_LEAVES = ("Condition.wait (", "EpollSelector.select (")


def _owner(frame: str) -> str:
    """Which package a frame's code belongs to, for the 'where the time goes' table."""
    path = frame.rpartition(" (")[2]
    top = path.split("/", 1)[0] if "/" in path else path.rstrip(")")
    if top in ("feed", "ledger", "quorum", "recipes", "projections"):
        return "quorum (feed/, ledger/)"
    if top in ("asyncio", "selectors.py)", "selectors.py"):
        return "asyncio event loop"
    return {
        "litestar": "litestar",
        "nats": "nats-py",
        "granian": "granian (Python side)",
        "msgspec": "msgspec",
    }.get(top, f"stdlib/other ({top.removesuffix('.py').removesuffix('.py)')})")


@dataclass
class StackSummary:
    """Sample counts: per leaf function, per owner, and the focus handler's call tree."""

    total: int = 0
    idle: int = 0
    no_python: int = 0
    self_samples: Counter[str] = field(default_factory=Counter)
    owners: Counter[str] = field(default_factory=Counter)
    tree: Counter[tuple[str, ...]] = field(default_factory=Counter)
    under_total: int = 0


def summarise(lines: Iterable[str], focus: str = "give_answers", depth: int = 3) -> StackSummary:
    """Summarise py-spy collapsed stacks; `focus` names the handler to break down."""
    summary = StackSummary()
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        if not stack.strip():
            # A thread with no Python frame: Granian's Rust threads, mostly.
            summary.no_python += count
            continue
        frames = _frames(stack)
        if frames[-1].startswith(_IDLE_LEAVES):
            summary.idle += count
            continue
        summary.total += count
        summary.self_samples[frames[-1]] += count
        summary.owners[_owner(frames[-1])] += count
        for index, name in enumerate(frames):
            if name.startswith(f"{focus} ("):
                summary.under_total += count
                below = tuple(frames[index + 1 : index + 1 + depth])
                for level in range(1, len(below) + 1):
                    summary.tree[below[:level]] += count
                break
    return summary


def render(summary: StackSummary, focus: str, top: int, min_share: float = 0.02) -> str:
    """The summary as text: time by package, top self time, the focus handler's tree."""
    if not summary.total:
        return "no samples"
    lines = [
        f"{summary.total:,} samples in Python code; left out: {summary.idle:,} waiting in "
        f"Python, {summary.no_python:,} in threads without Python frames (Granian's Rust side)",
        "",
        "self time by package:",
    ]
    for name, count in summary.owners.most_common():
        lines.append(f"  {count / summary.total:6.1%}  {name}")
    lines += ["", "top self time:"]
    for name, count in summary.self_samples.most_common(top):
        lines.append(f"  {count / summary.total:6.1%}  {name}")
    if summary.under_total:
        share = summary.under_total / summary.total
        lines += [
            "",
            f"{focus}: {summary.under_total:,} samples ({share:.1%} of all) with the "
            f"handler on the stack; its callees, inclusive, as a share of those:",
        ]

        def walk(prefix: tuple[str, ...]) -> None:
            children = [
                (k, v) for k, v in summary.tree.items() if len(k) == len(prefix) + 1 and k[:-1] == prefix
            ]
            for key, count in sorted(children, key=lambda kv: -kv[1]):
                if count / summary.under_total < min_share:
                    continue
                lines.append(f"  {count / summary.under_total:6.1%}  {'  ' * len(prefix)}{key[-1]}")
                walk(key)

        walk(())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.profile",
        description="Summarise py-spy collapsed-stack recordings of the feed workers.",
        epilog="Example: python -m loadtest.profile prof/*.txt --focus give_answers",
    )
    parser.add_argument("files", nargs="+", type=Path, help="py-spy record --format raw outputs")
    parser.add_argument(
        "--focus", default="give_answers", help="handler to break down (default give_answers)"
    )
    parser.add_argument("--top", type=int, default=25, help="rows per table (default 25)")
    parser.add_argument("--depth", type=int, default=4, help="levels of the handler's call tree (default 4)")
    args = parser.parse_args(argv)
    lines: list[str] = []
    for path in args.files:
        lines += path.read_text(errors="replace").splitlines()
    print(render(summarise(lines, args.focus, args.depth), args.focus, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
