"""The statistical reduction is exact: 1/k of every node pool carrying 1/k of the traffic
gives the full system's per-node load and latency distribution.

Both models run in a deliberately heavy world (Redis shards and CockroachDB nodes near
70 % busy) at a rate the full model can run. Percentiles are compared with batch-means
intervals, which allow for the autocorrelation of latencies under load (a KS test would
treat the samples as independent and overstate significance). A negative control, the
reduced model with 30 % more traffic per node, must fail the same comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from scenarios import World
from scenarios.distributions import Exponential
from sim.model import RunConfig, SystemModel
from sim.stats import batch_means_interval

QPS = 6000.0
BATCHES = 20


def _heavy(world: World) -> World:
    def exp(ms: float) -> Exponential:
        return Exponential(dist="exponential", mean_ms=ms, source="test: heavy load")

    crdb = world.topology.crdb.model_copy(
        update={"vcpus_per_node": 2, "read_cpu": exp(11.0), "write_cpu": exp(22.0)}
    )
    redis = world.topology.redis.model_copy(update={"service": exp(1.0)})
    topo = world.topology.model_copy(update={"crdb": crdb, "redis": redis})
    return World(topo, world.workload, world.operations, world.profile, world.files)


def _run(
    world: World, qps: float, reduction: int, seed: int
) -> tuple[list[np.ndarray], dict[str, float]]:
    cfg = RunConfig("hybrid", qps, 20_000.0, 1_000.0, BATCHES, reduction, seed, 0)
    model = SystemModel(world, cfg)
    model.run()
    batches = [
        np.concatenate(
            [np.frombuffer(model.latencies[c * BATCHES + k]) for c in range(len(model.cells))]
        )
        for k in range(BATCHES)
    ]
    util: dict[str, list[float]] = {}
    for station in model.stations():
        if station.served:
            group = station.name.split("/")[0]
            util.setdefault(group, []).append(station.utilisation(21_000.0))
    return batches, {g: float(np.mean(u)) for g, u in util.items()}


def _intervals(batches: list[np.ndarray]) -> dict[int, tuple[float, float]]:
    return {
        p: batch_means_interval([float(np.percentile(b, p)) for b in batches]) for p in (50, 90, 99)
    }


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@pytest.fixture(scope="module")
def full(seed_world: World) -> tuple[list[np.ndarray], dict[str, float]]:
    return _run(_heavy(seed_world), QPS, 1, seed=1)


def test_reduced_model_matches_the_full_one(
    seed_world: World, full: tuple[list[np.ndarray], dict[str, float]]
) -> None:
    full_batches, full_util = full
    red_batches, red_util = _run(_heavy(seed_world), QPS, 3, seed=2)
    assert 0.6 < full_util["redis"] < 0.8 and 0.6 < full_util["crdb"] < 0.8
    for group in ("redis", "crdb"):
        assert red_util[group] == pytest.approx(full_util[group], abs=0.03)
    full_ci, red_ci = _intervals(full_batches), _intervals(red_batches)
    for p in (50, 90, 99):
        assert _overlap(full_ci[p], red_ci[p]), (p, full_ci[p], red_ci[p])
    # The reduced model really is cheaper: a third of the requests.
    n_full = sum(len(b) for b in full_batches)
    n_red = sum(len(b) for b in red_batches)
    assert n_red == pytest.approx(n_full / 3, rel=0.03)


def test_negative_control_is_detected(
    seed_world: World, full: tuple[list[np.ndarray], dict[str, float]]
) -> None:
    full_batches, full_util = full
    wrong_batches, wrong_util = _run(_heavy(seed_world), QPS * 1.3, 3, seed=2)
    assert wrong_util["redis"] > full_util["redis"] + 0.1
    full_ci, wrong_ci = _intervals(full_batches), _intervals(wrong_batches)
    assert not _overlap(full_ci[90], wrong_ci[90])
    assert not _overlap(full_ci[99], wrong_ci[99])
