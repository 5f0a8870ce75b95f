"""How a parallel snapshot divides its work: slices of the ledger and worker counts."""

from __future__ import annotations

import itertools
import os

import pytest

from ledger.snapshot_workers import available_cpus, split_range


@pytest.mark.parametrize(
    ("first", "last", "workers"), [(1, 10, 3), (5, 5, 4), (101, 1_000_000, 8), (1, 7, 7)]
)
def test_slices_cover_the_range_once_in_order(first, last, workers):
    slices = split_range(first, last, workers)
    assert slices[0][0] == first and slices[-1][1] == last
    assert all(a <= b for a, b in slices), "no empty slice"
    assert all(prev[1] + 1 == nxt[0] for prev, nxt in itertools.pairwise(slices))
    sizes = [b - a + 1 for a, b in slices]
    assert max(sizes) - min(sizes) <= 1
    assert len(slices) == min(workers, last - first + 1)


def test_a_container_cpu_limit_caps_the_workers(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # half a CPU
    assert available_cpus(cpu_max) == 1
    cpu_max.write_text("max 100000\n")  # no limit
    assert available_cpus(cpu_max) == affinity
    cpu_max.write_text("150000 100000\n")
    assert available_cpus(cpu_max) == min(affinity, 2)
    assert available_cpus(tmp_path / "missing") == affinity
    cpu_max.write_text("garbage")
    assert available_cpus(cpu_max) == affinity
