"""`make bench-scheduler`: how often a light thread waits for a core on this machine's
kernel, against the model of the cores (`sim.cores.FairCorePool`).

A thread pinned to one core sleeps 0.5–1.5 ms (uniformly, so that its wake-ups fall at every
phase of the timer tick), then computes a burst on its own CPU clock, again and again,
while a second process spins on that core without end. Each wake-up's delay is how late it
got up plus how long its burst was stretched beyond its CPU time (it was preempted); a
wake-up waited when that exceeds 0.3 ms. The same loop runs on one core of the model,
with the kernel's base slice and tick (as `make calibrate` finds them) and the timer's
own lateness measured here without the spinner. The table shows both, per burst.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from report.calibrate import TICK_FALLBACK_MS, kernel_slice_ms, measure_tick_ms
from sim.cores import CoreThread, FairCorePool
from sim.results import new_run_dir, write_json

BURSTS_MS = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5)
WAITED_MS = 0.3  # a delay beyond this is a wait for the core, not the timer's lateness
SLEEP_MS = (0.5, 1.5)


class BenchError(RuntimeError):
    """The machine cannot run the measurement (no CPU affinity)."""


def _sleeps(wakes: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [SLEEP_MS[0] + (SLEEP_MS[1] - SLEEP_MS[0]) * rng.random() for _ in range(wakes)]


def _wake_loop(burst_ms: float, sleeps: list[float]) -> list[float]:
    """Run the loop on this thread (already pinned): each wake-up's delay in ms."""
    burst = burst_ms / 1000.0
    delays = []
    for sleep_ms in sleeps:
        t0 = time.perf_counter()
        time.sleep(sleep_ms / 1000.0)
        late = time.perf_counter() - t0 - sleep_ms / 1000.0
        c0, r0 = time.thread_time(), time.perf_counter()
        if burst > 0:
            while time.thread_time() - c0 < burst:
                pass
        stretch = time.perf_counter() - r0 - (time.thread_time() - c0)
        delays.append(1000.0 * (late + max(0.0, stretch)))
    return delays


def measure(burst_ms: float, wakes: int, seed: int = 1, spinner: bool = True) -> np.ndarray:
    """The machine: delays (ms) of `wakes` wake-ups with bursts of `burst_ms` on one core
    (the first this process may use), beside a process spinning there (or alone:
    `spinner=False`)."""
    if not hasattr(os, "sched_setaffinity"):
        raise BenchError("this platform cannot pin threads to a core (os.sched_setaffinity)")
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # the first core this process may use
    pid = 0
    try:
        if spinner:
            pid = os.fork()
            if pid == 0:  # the spinner: the same core (inherited), until killed
                try:
                    while True:
                        pass
                finally:
                    os._exit(0)
            time.sleep(0.1)  # let it settle on the core
        return np.array(_wake_loop(burst_ms, _sleeps(wakes, seed)))
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.sched_setaffinity(0, before)


def model(
    burst_ms: float, wakes: int, slice_ms: float, tick_ms: float, late_ms: float, seed: int = 1
) -> np.ndarray:
    """The model: the same loop on one core of `FairCorePool` beside a spinner, each sleep
    lengthened by the timer's lateness `late_ms`."""
    env = simpy.Environment()
    pool = FairCorePool(env, 1, slice_ms, tick_ms)
    CoreThread("spinner", pool).submit(1e12, None)
    waker = CoreThread("waker", pool)
    delays: list[float] = []

    def loop() -> Generator[simpy.Event, Any, None]:
        for sleep_ms in _sleeps(wakes, seed):
            yield env.timeout(sleep_ms + late_ms)
            t0 = env.now
            woke = env.event()
            waker.submit(burst_ms, woke.succeed)
            t = yield woke
            delays.append(t - t0 - burst_ms)

    env.run(until=env.process(loop()))  # (the spinner would keep the clock going forever)
    return np.array(delays)


def share_waited(delays: np.ndarray) -> tuple[float, float]:
    """The share of wake-ups that waited (%) and their mean delay (ms; 0 if none)."""
    waited = delays[delays > WAITED_MS]
    return 100.0 * len(waited) / len(delays), float(waited.mean()) if len(waited) else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make bench-scheduler", description=__doc__)
    p.add_argument("--wakes", type=int, default=2000, help="wake-ups per burst (default 2000)")
    p.add_argument(
        "--bursts", default=",".join(map(str, BURSTS_MS)), help="bursts in ms, comma-separated"
    )
    p.add_argument("--results-dir", default=os.environ.get("AUTHSCALE_RESULTS", "results"))
    args = p.parse_args(argv)
    try:
        bursts = [float(b) for b in args.bursts.split(",") if b.strip()]
        if not bursts or any(b <= 0 for b in bursts) or args.wakes < 10:
            raise ValueError("bursts must be positive ms and --wakes at least 10")
    except ValueError as exc:
        print(f"authscale bench-scheduler: error: {exc}", file=sys.stderr)
        return 2
    slice_ms, _ = kernel_slice_ms(os.cpu_count() or 1)
    tick_ms = measure_tick_ms() or TICK_FALLBACK_MS
    try:
        late_ms = float(np.median(measure(0.0, 300, spinner=False)))
        print(
            f"authscale bench-scheduler: base slice {slice_ms:.2f} ms, tick {tick_ms:.2f} ms, "
            f"timer lateness {late_ms:.3f} ms; {args.wakes:,} wake-ups per burst, "
            f"about {args.wakes * 1.1 * len(bursts) / 1000:.0f} s"
        )
        print(f"{'burst ms':>9}  {'machine waited':>15} {'mean ms':>8}", end="")
        print(f"  {'model waited':>13} {'mean ms':>8}")
        rows = []
        for burst in bursts:
            m_share, m_mean = share_waited(measure(burst, args.wakes))
            s_share, s_mean = share_waited(model(burst, args.wakes, slice_ms, tick_ms, late_ms))
            rows.append(
                {
                    "burst_ms": burst,
                    "machine_waited_pct": round(m_share, 2),
                    "machine_mean_ms": round(m_mean, 3),
                    "model_waited_pct": round(s_share, 2),
                    "model_mean_ms": round(s_mean, 3),
                }
            )
            print(
                f"{burst:>9.2f}  {m_share:>14.1f}% {m_mean:>8.2f}  {s_share:>12.1f}% {s_mean:>8.2f}"
            )
    except BenchError as exc:
        print(f"authscale bench-scheduler: error: {exc}", file=sys.stderr)
        return 2
    run_dir = new_run_dir(Path(args.results_dir), "bench", "scheduler")
    out = {
        "slice_ms": slice_ms,
        "tick_ms": tick_ms,
        "late_ms": late_ms,
        "wakes": args.wakes,
        "waited_beyond_ms": WAITED_MS,
        "bursts": rows,
    }
    write_json(run_dir / "bench.json", out)
    print(f"written: {run_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
