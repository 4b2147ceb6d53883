"""`make bench-sim`: the model's speed against a bare SimPy M/M/1 loop, in one run.

Both run in this process, one after the other, on the same machine state, so their ratio
is meaningful even where absolute timings are noisy. The bare loop is a textbook SimPy
M/M/1 queue (a process per customer, `simpy.Resource`) with its random numbers drawn in
blocks, as the model draws its own. `--peak` also times `make simulate LOAD=peak`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from scenarios import load_world
from sim.model import RunConfig, SystemModel, max_reduction
from sim.results import new_run_dir, write_json

PEAK_BUDGET_S = 120.0
RATIO_GOAL = 0.4


def bare_mm1_rate(customers: int, seed: int = 1) -> float:
    """Customers per wall second of a minimal SimPy M/M/1 loop (rho = 0.8)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0, customers).tolist()
    services = rng.exponential(0.8, customers).tolist()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    done = [0]

    def customer(service: float) -> Generator[simpy.Event, Any, None]:
        with server.request() as req:
            yield req
            yield env.timeout(service)
        done[0] += 1

    def arrivals() -> Generator[simpy.Event, Any, None]:
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(arrivals())
    started = time.perf_counter()
    env.run()
    return done[0] / (time.perf_counter() - started)


def model_rate(qps: float, duration_s: float, profile: str = "seed", seed: int = 1) -> float:
    """Simulated requests per wall second of the full hybrid model, one process."""
    world = load_world(profile)
    config = RunConfig(
        "hybrid", qps, duration_s * 1000, 200.0, 10, max_reduction(world, "hybrid"), seed, 0
    )
    model = SystemModel(world, config)
    started = time.perf_counter()
    model.run()
    return model.completed / (time.perf_counter() - started)


def time_peak_run(results_dir: Path) -> float:
    """Wall seconds of `python -m sim --load peak` as a user would run it."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "--load",
            "peak",
            "--quiet",
            "--results-dir",
            str(results_dir),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench-sim", description=__doc__)
    p.add_argument("--qps", type=float, default=500_000, help="model rate to measure at")
    p.add_argument("--duration", type=float, default=6.0, help="simulated seconds")
    p.add_argument("--customers", type=int, default=600_000, help="bare M/M/1 customers")
    p.add_argument("--peak", action="store_true", help="also time make simulate LOAD=peak")
    p.add_argument("--results-dir", default="results")
    args = p.parse_args(argv)
    print("measuring the bare SimPy M/M/1 loop ...", flush=True)
    bare = bare_mm1_rate(args.customers)
    print("measuring the full four-region model (hybrid) ...", flush=True)
    model = model_rate(args.qps, args.duration)
    ratio = model / bare
    out: dict[str, Any] = {
        "bare_mm1_customers_per_s": round(bare),
        "model_requests_per_s": round(model),
        "ratio": round(ratio, 3),
        "ratio_goal": RATIO_GOAL,
        "model_qps": args.qps,
    }
    print(f"bare SimPy M/M/1:   {bare:>10,.0f} customers / wall s")
    print(
        f"full model:         {model:>10,.0f} simulated requests / wall s "
        f"(at {args.qps:,.0f} QPS, one process)"
    )
    print(
        f"ratio:              {ratio:10.2f}  (goal >= {RATIO_GOAL}: "
        f"{'met' if ratio >= RATIO_GOAL else 'NOT met'})"
    )
    if args.peak:
        print("timing make simulate LOAD=peak (500k QPS, 60 simulated s) ...", flush=True)
        peak = time_peak_run(Path(args.results_dir))
        out.update(peak_wall_s=round(peak, 1), peak_budget_s=PEAK_BUDGET_S)
        print(
            f"LOAD=peak run:      {peak:10.1f} s wall  (budget {PEAK_BUDGET_S:g} s: "
            f"{'met' if peak <= PEAK_BUDGET_S else 'NOT met'})"
        )
    run_dir = new_run_dir(Path(args.results_dir), "bench", "sim")
    write_json(run_dir / "bench.json", out)
    print(f"written: {run_dir / 'bench.json'}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
