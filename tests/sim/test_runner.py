"""Replications pool the same way whether one process or several ran them."""

from __future__ import annotations

from scenarios import World
from sim.runner import SimulationPlan, run_plan
from tests.conftest import constant_world


def test_parallel_and_serial_runs_are_identical(seed_world: World) -> None:
    """Workers run the caller's World (here changed in memory), not the files on disk."""
    world = constant_world(seed_world)
    runs = (("hybrid", 6000.0, 3), ("legacy", 1000.0, 1))
    plan = SimulationPlan("seed", runs, duration_s=2.0, warmup_s=0.2, replications=3, seed=9)
    progress: list[float] = []
    serial = run_plan(world, SimulationPlan(**{**plan.__dict__, "workers": 1}))
    parallel = run_plan(
        world,
        SimulationPlan(**{**plan.__dict__, "workers": 2}),
        on_progress=lambda f, _: progress.append(f),
    )
    assert progress and progress[-1] == 1.0
    for arch in ("hybrid", "legacy"):
        a, b = serial[arch], parallel[arch]
        assert a.simulated_requests == b.simulated_requests > 0
        assert a.cells.keys() == b.cells.keys()
        for cell, samples in a.cells.items():
            other = b.cells[cell]
            assert len(samples.batches) == len(other.batches) == 3 * plan.batches
            assert all(
                x.tobytes() == y.tobytes()
                for x, y in zip(samples.batches, other.batches, strict=True)
            )
            assert samples.step_ms == other.step_ms
    # The constant world gives one latency per branch: the files' world would not.
    hybrid = parallel["hybrid"].cells[("session_validation", "same_region", "us-west")]
    values = {round(float(v), 2) for b in hybrid.batches for v in b}
    assert len(values) <= 4, values
