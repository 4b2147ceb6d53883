"""The load generator's schedule follows the simulator's workload."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from loadgen.workload import Schedule
from scenarios import load_world
from scenarios.workload import OPERATIONS

WORLD = load_world("seed")


def test_schedule_rate_mix_and_localities() -> None:
    sched = Schedule(WORLD, ["ap-ne", "us-west"], 500, seed=7)
    slots = [sched.next() for _ in range(200_000)]
    assert len(slots) / slots[-1].intended_s == pytest.approx(500, rel=0.01)
    counts = Counter(s.operation for s in slots)
    for op in OPERATIONS:
        assert counts[op] / len(slots) == pytest.approx(WORLD.workload.mix[op].value, abs=0.003)
    cross = sum(s.locality == "cross_region" for s in slots) / len(slots)
    assert cross == pytest.approx(WORLD.workload.cross_region_share.value, abs=0.003)
    assert all(s.home != s.edge for s in slots if s.locality == "cross_region")
    assert all(s.intended_s < t.intended_s for s, t in pairwise(slots))


def test_one_region_has_no_cross_region_traffic_and_seeds_repeat() -> None:
    a = [Schedule(WORLD, ["ap-ne"], 50, seed=3).next() for _ in range(1)]
    sched = Schedule(WORLD, ["ap-ne"], 50, seed=3)
    b = [sched.next() for _ in range(1000)]
    assert a[0] == b[0]
    assert {s.locality for s in b} == {"same_region"}


def test_traffic_segments_change_the_rate() -> None:
    sched = Schedule(WORLD, ["ap-ne"], 100, seed=1, segments=[(10, 20, 250)])
    slots = [sched.next() for _ in range(6000)]
    during = sum(10 <= s.intended_s < 20 for s in slots) / 10
    before = sum(s.intended_s < 10 for s in slots) / 10
    assert during == pytest.approx(250, rel=0.1) and before == pytest.approx(100, rel=0.15)


def test_qps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="QPS=0 must be > 0"):
        Schedule(WORLD, ["ap-ne"], 0, seed=1)
