"""Drives a FcfsStation with Poisson arrivals inside SimPy, for the oracle tests."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from sim.queues import FcfsStation


def run_station(
    arrival_rate: float,
    service: Callable[[np.random.Generator, int], np.ndarray],
    servers: int,
    customers: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival, start of service, departure) per customer, in arrival order."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / arrival_rate, customers).tolist()
    demands = service(rng, customers).tolist()
    station = FcfsStation("oracle", servers)
    env = simpy.Environment()
    arrivals, departures = [], []

    def source() -> Generator[simpy.Event, Any, None]:
        for gap, demand in zip(gaps, demands, strict=True):
            yield env.timeout(gap)
            arrivals.append(env.now)
            departures.append(station.finish(env.now, demand))

    env.process(source())
    env.run()
    arr, dep = np.array(arrivals), np.array(departures)
    return arr, dep - np.array(demands), dep
