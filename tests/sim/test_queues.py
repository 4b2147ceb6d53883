"""FcfsStation gives the same departures as simpy.Resource, on timelines."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest
import simpy

from sim.queues import FcfsStation, TurnStation


def _resource_timeline(
    arrivals: list[float], services: list[float], servers: int
) -> list[tuple[str, float]]:
    env = simpy.Environment()
    resource = simpy.Resource(env, servers)
    out: list[tuple[str, float]] = []

    def customer(name: str, at: float, service: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(at)
        with resource.request() as req:
            yield req
            yield env.timeout(service)
        out.append((name, env.now))

    for i, (at, s) in enumerate(zip(arrivals, services, strict=True)):
        env.process(customer(f"c{i}", at, s))
    env.run()
    return sorted(out, key=lambda x: int(x[0][1:]))


def _station_timeline(
    arrivals: list[float], services: list[float], servers: int
) -> list[tuple[str, float]]:
    env = simpy.Environment()
    station = FcfsStation("s", servers)
    out: list[tuple[str, float]] = []

    def customer(name: str, at: float, service: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(at)
        done = station.finish(env.now, service)
        yield env.timeout(done - env.now)
        out.append((name, env.now))

    for i, (at, s) in enumerate(zip(arrivals, services, strict=True)):
        env.process(customer(f"c{i}", at, s))
    env.run()
    return sorted(out, key=lambda x: int(x[0][1:]))


def test_single_server_timeline() -> None:
    assert _station_timeline([0, 1, 2, 20], [5, 5, 5, 1], 1) == [
        ("c0", 5),
        ("c1", 10),
        ("c2", 15),
        ("c3", 21),
    ]


def test_two_server_timeline() -> None:
    assert _station_timeline([0, 1, 2, 3], [5, 5, 5, 1], 2) == [
        ("c0", 5),
        ("c1", 6),
        ("c2", 10),
        ("c3", 7),
    ]


@pytest.mark.parametrize("servers", [1, 3, 8])
def test_matches_simpy_resource_on_random_inputs(servers: int) -> None:
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1.0, 2000)).tolist()
    services = rng.exponential(0.9 * servers, 2000).tolist()
    expected = _resource_timeline(arrivals, services, servers)
    got = _station_timeline(arrivals, services, servers)
    assert [n for n, _ in got] == [n for n, _ in expected]
    np.testing.assert_allclose([t for _, t in got], [t for _, t in expected], rtol=0, atol=1e-9)


def test_busy_time_and_utilisation() -> None:
    station = FcfsStation("s", 2)
    for t in (0.0, 0.0, 1.0):
        station.finish(t, 2.0)
    assert station.served == 3
    assert station.busy_ms == 6.0
    assert station.utilisation(10.0) == pytest.approx(0.3)


def test_turn_station_customers_wait_only_for_their_turn() -> None:
    station = TurnStation("thread")
    # each starts when the work of those before it is done; its own work follows it
    assert station.finish(0.0, 5.0) == 0.0
    assert station.finish(1.0, 5.0) == 5.0
    assert station.finish(2.0, 5.0) == 10.0
    assert station.finish(20.0, 1.0) == 20.0
    assert station.busy_ms == 16.0 and station.served == 4


def test_rejects_zero_servers() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        FcfsStation("bad", 0)
