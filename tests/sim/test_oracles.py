"""The queueing core against Erlang C, Pollaczek-Khinchine and Little's law.

Tolerances are the simulations' own 99 % batch-means confidence intervals.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.analytic import erlang_c, mmc_mean_wait, pollaczek_khinchine_wait
from sim.stats import batch_means_interval
from tests.sim.queueing import run_station

CUSTOMERS = 200_000
WARMUP = 5_000
BATCHES = 20


def _interval(values: np.ndarray) -> tuple[float, float]:
    kept = values[WARMUP:]
    batches = [b.mean() for b in np.array_split(kept, BATCHES)]
    return batch_means_interval(batches, confidence=0.99)


def test_closed_forms_known_values() -> None:
    # REFERENCE.md: lambda 7.2, mu 1, c 8 gives Wq 0.877 in a shared M/M/8 queue.
    assert mmc_mean_wait(7.2, 1.0, 8) == pytest.approx(0.877, abs=0.001)
    # M/M/1: P(wait) = rho, Wq = rho / (mu - lambda).
    assert erlang_c(0.5, 1.0, 1) == pytest.approx(0.5)
    assert mmc_mean_wait(0.5, 1.0, 1) == pytest.approx(1.0)
    # M/D/1 at rho 0.5: Wq = rho / (2 mu (1 - rho)) = 0.5.
    assert pollaczek_khinchine_wait(0.5, 1.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(2.0, 1.0, 1)


@pytest.mark.parametrize(("rate", "servers"), [(0.8, 1), (7.2, 8)])
def test_mmc_wait_matches_erlang_c(rate: float, servers: int) -> None:
    arr, start, _ = run_station(
        rate, lambda rng, n: rng.exponential(1.0, n), servers, CUSTOMERS, seed=11
    )
    waits = start - arr
    lo, hi = _interval(waits)
    assert lo <= mmc_mean_wait(rate, 1.0, servers) <= hi
    p_wait = float((waits[WARMUP:] > 0).mean())
    assert p_wait == pytest.approx(erlang_c(rate, 1.0, servers), abs=0.02)


def test_mg1_wait_matches_pollaczek_khinchine() -> None:
    # Uniform(0, 2) service: E[S] = 1, E[S^2] = 4/3.
    rate = 0.7
    arr, start, _ = run_station(rate, lambda rng, n: rng.uniform(0, 2, n), 1, CUSTOMERS, 12)
    lo, hi = _interval(start - arr)
    assert lo <= pollaczek_khinchine_wait(rate, 1.0, 4 / 3) <= hi


def test_littles_law() -> None:
    rate = 0.85
    arr, _, dep = run_station(rate, lambda rng, n: rng.exponential(1.0, n), 1, CUSTOMERS, 13)
    horizon = arr[-1]
    # Time-average number in system from the arrival/departure step function.
    events = np.concatenate(
        [np.stack([arr, np.ones_like(arr)], 1), np.stack([dep, -np.ones_like(dep)], 1)]
    )
    events = events[np.argsort(events[:, 0], kind="stable")]
    times, steps = events[:, 0], events[:, 1]
    inside = np.cumsum(steps)
    keep = times <= horizon
    area = np.sum(np.diff(times[keep], append=horizon) * inside[keep])
    mean_in_system = area / horizon
    lo, hi = _interval(dep - arr)
    measured_rate = len(arr) / horizon
    assert lo * measured_rate <= mean_in_system <= hi * measured_rate
