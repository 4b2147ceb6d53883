"""The model walks the step lists: exact latencies on constant worlds, branches, RTTs."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios import World
from scenarios.distributions import Constant, Empirical, Lognormal
from sim.errors import SimulationError
from sim.model import RunConfig, SystemModel, max_reduction
from sim.sampling import stream_of
from tests.conftest import constant_world


def _run(
    world: World,
    arch: str = "hybrid",
    qps: float = 200.0,
    duration_ms: float = 20_000,
    seed: int = 3,
    reduction: int = 1,
) -> SystemModel:
    model = SystemModel(world, RunConfig(arch, qps, duration_ms, 0.0, 4, reduction, seed, 0))
    model.run()
    return model


def _values(model: SystemModel, op: str, locality: str, region: str) -> np.ndarray:
    i = model.cells.index((op, locality, region))
    b = model.config.batches
    return np.concatenate([np.frombuffer(model.latencies[i * b + k]) for k in range(b)])


def _branches(values: np.ndarray, expected: set[float], atol: float = 0.2) -> None:
    """Every latency is one of the expected branch totals (plus at most a short queue
    wait, well below the gap between branches) and every branch occurs."""
    targets = np.array(sorted(expected))
    nearest = targets[np.abs(values[:, None] - targets[None, :]).argmin(axis=1)]
    assert np.all(values >= nearest - 1e-9), "faster than the sum of the steps"
    assert np.all(values - nearest <= atol), sorted(set(np.round(values, 3)))
    assert set(nearest.tolist()) == set(targets.tolist())


def test_seed_profile_constant_latencies(seed_world: World) -> None:
    """With every figure at its mean and light load, each branch has one exact latency."""
    model = _run(constant_world(seed_world))
    edge, redis, svc = 5.0, 3.0, 0.003
    crdb_same, crdb_cross, read_cpu, write_cpu = 30.0, 125.0, 1.0, 2.0
    hit = edge + redis + svc
    miss_same = hit + crdb_same + read_cpu + redis + svc
    got = set(np.round(_values(model, "session_validation", "same_region", "ap-ne"), 6))
    assert got == {round(hit, 6), round(miss_same, 6)}
    # Cross region: the local cache never holds the user's session (hit rate 0 by scenario),
    # and a follower read is served by the local replica.
    got = set(np.round(_values(model, "session_validation", "cross_region", "ap-ne"), 6))
    assert got == {round(miss_same, 6)}
    token_cross = edge + 2 * (redis + svc) + crdb_cross + write_cpu
    got = set(np.round(_values(model, "token_issue", "cross_region", "eu-west"), 6))
    # A request carrying a DPoP proof (a share of them) pays one more Redis call.
    assert round(token_cross, 6) in got
    assert got <= {round(token_cross, 6), round(token_cross + redis + svc, 6)}
    # The revocation check answers in Redis, then the read-modify-write and the invalidation.
    profile_same = edge + (redis + svc) + crdb_same + read_cpu + crdb_same + write_cpu + redis + svc
    got = set(np.round(_values(model, "profile_update", "same_region", "us-east"), 6))
    assert got == {round(profile_same, 6)}


def test_cited_profile_pays_the_rtt_and_the_quorum(cited_world: World) -> None:
    world = constant_world(cited_world)
    model = _run(world, qps=2000.0)
    intra, jitter = 1.25, 0.5
    handle, sign = 0.1, 0.023
    redis_call = intra + 0.065 + 0.003
    # ZONE survival (the seed's layout): the quorum is one intra-region round trip.
    write_at_home_from_ap_ne = {
        home: intra + rtt + jitter + 0.09 + 2.0 + intra
        for home, rtt in (("us-west", 99), ("us-east", 153), ("eu-west", 218))
    }
    # 30 % of token requests carry a DPoP proof: one more Redis call for its jti.
    expected = {
        handle + (2 + dpop) * redis_call + 2 * sign + w
        for w in write_at_home_from_ap_ne.values()
        for dpop in (0, 1)
    }
    _branches(_values(model, "token_issue", "cross_region", "ap-ne"), expected)


def test_region_survival_waits_for_the_nearest_other_region(cited_world: World) -> None:
    crdb = cited_world.topology.crdb.model_copy(update={"survival": "region"})
    topo = cited_world.topology.model_copy(update={"crdb": crdb})
    world = constant_world(
        World(
            topo,
            cited_world.workload,
            cited_world.operations,
            cited_world.profile,
            cited_world.files,
        )
    )
    model = _run(world, qps=400.0)
    same = _values(model, "token_issue", "same_region", "ap-ne")
    # ap-ne's nearest other region is us-west, 99 ms away, plus mean jitter 0.5 ms.
    redis_call = 1.25 + 0.065 + 0.003
    base = 0.1 + 2 * redis_call + 2 * 0.023 + 1.25 + 0.09 + 2.0
    _branches(same, {base + 99.5, base + redis_call + 99.5})


def test_legacy_runs_through_durable_objects_and_d1(seed_world: World) -> None:
    model = _run(constant_world(seed_world), arch="legacy", qps=100.0)
    # A Durable Object serves for 1 ms, so two requests meeting at one shard may wait up to
    # that long; the branches themselves lie tens of ms apart.
    _branches(_values(model, "session_validation", "all", "us-west"), {5.0 + 50.0 + 1.0}, 2.0)
    # D1's primary is in us-east: same-region figure there, the cross-region one elsewhere.
    _branches(_values(model, "userinfo", "all", "us-east"), {5.0 + 30.0 + 0.25}, 2.0)
    _branches(_values(model, "userinfo", "all", "us-west"), {5.0 + 350.0 + 0.25}, 2.0)


def test_traced_steps_follow_the_step_list(seed_world: World) -> None:
    model = _run(seed_world, qps=2000.0, duration_ms=5000)
    catalog = seed_world.operations.hybrid
    for cell, label in model.step_ms:
        op = model.cells[cell][0]
        step = label.split("|")[0]
        assert step in {s.label for s in catalog[op].steps}, (op, label)
    i = model.cells.index(("login", "same_region", "us-west"))
    traced = {label.split("|")[0] for (c, label) in model.step_ms if c == i}
    assert {"edge.handle", "redis.rate_limit", "crdb.write_session"} <= traced


def test_seeded_runs_are_reproducible_bit_for_bit(seed_world: World) -> None:
    a = _run(seed_world, qps=3000.0, duration_ms=3000, seed=5)
    b = _run(seed_world, qps=3000.0, duration_ms=3000, seed=5)
    c = _run(seed_world, qps=3000.0, duration_ms=3000, seed=6)
    assert a.completed == b.completed
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.latencies, b.latencies, strict=True))
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a.latencies, c.latencies, strict=True))


def test_reduction_must_divide_every_pool(seed_world: World) -> None:
    assert max_reduction(seed_world, "hybrid") == 3
    assert max_reduction(seed_world, "legacy") == 1
    with pytest.raises(SimulationError, match="does not divide every node pool"):
        SystemModel(seed_world, RunConfig("legacy", 100, 1000, 0, 2, 3, 1, 0))


def test_cross_region_homes_follow_the_workload_table(seed_world: World) -> None:
    """Skew ap-ne's travellers to eu-west: its cross-region writes all go there."""
    homes = seed_world.workload.cross_region_home
    weights = {**homes.weights, "ap-ne": {"us-west": 0.0, "us-east": 0.0, "eu-west": 1.0}}
    workload = seed_world.workload.model_copy(
        update={"cross_region_home": homes.model_copy(update={"weights": weights})}
    )
    world = constant_world(
        World(
            seed_world.topology,
            workload,
            seed_world.operations,
            seed_world.profile,
            seed_world.files,
        )
    )
    model = _run(world, qps=3000.0, duration_ms=10_000)
    i = model.cells.index(("token_issue", "cross_region", "ap-ne"))
    routes = {label.split("|")[1] for (c, label) in model.step_ms if c == i and "crdb" in label}
    assert routes == {"ap-ne→eu-west"}
    i = model.cells.index(("token_issue", "cross_region", "us-west"))
    routes = {label.split("|")[1] for (c, label) in model.step_ms if c == i and "crdb" in label}
    assert routes == {"us-west→us-east", "us-west→eu-west", "us-west→ap-ne"}


def test_scaled_streams_are_the_same_draws_scaled() -> None:
    """CPU times scaled to a load (calibration speed points) are the fitted draws times the
    factor, in the same order, so a scaled run differs only by the scale."""
    for dist in (
        Lognormal(dist="lognormal", median_ms=0.2, sigma=0.5, source="a test"),
        Lognormal(dist="lognormal", median_ms=0.2, sigma=0.5, shift_ms=0.05, source="a test"),
        Empirical(dist="empirical", quantiles_ms=(0.1, 0.2, 0.4, 1.0), source="a test"),
        Constant(dist="constant", value_ms=0.3, source="a test"),
    ):
        plain = stream_of(dist, np.random.default_rng(3))
        scaled = stream_of(dist, np.random.default_rng(3), 0.5)
        for _ in range(100):
            assert scaled() == pytest.approx(0.5 * plain())
