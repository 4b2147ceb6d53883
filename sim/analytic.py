"""Closed-form queueing results that the tests hold the simulated queues to."""

from __future__ import annotations

import math


def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C)."""
    a = arrival_rate / service_rate
    rho = a / servers
    if rho >= 1:
        raise ValueError(f"unstable queue: utilisation {rho:.3f} >= 1")
    top = a**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(a**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue (before service) of an M/M/c queue."""
    return erlang_c(arrival_rate, service_rate, servers) / (servers * service_rate - arrival_rate)


def pollaczek_khinchine_wait(
    arrival_rate: float, mean_service: float, second_moment_service: float
) -> float:
    """Mean time in queue of an M/G/1 queue: λ E[S²] / (2 (1 - ρ))."""
    rho = arrival_rate * mean_service
    if rho >= 1:
        raise ValueError(f"unstable queue: utilisation {rho:.3f} >= 1")
    return arrival_rate * second_moment_service / (2 * (1 - rho))
