"""First-come-first-served stations whose state advances at each arrival.

For a FCFS queue with c identical servers the n-th arrival starts service at
max(arrival, earliest time a server becomes free) — the Kiefer-Wolfowitz recursion
(Lindley's for c = 1). Nothing that arrives later can change that, so a customer's
departure is known the moment it arrives and one SimPy timeout replaces the
request/hold/release events of `simpy.Resource`. Arrivals must be offered in time order,
which holds when `finish` is called at `env.now`. tests/sim/test_queues.py shows the
departures equal those of `simpy.Resource` on the same inputs.
"""

from __future__ import annotations

import heapq


class FcfsStation:
    """c servers, one FCFS queue; tracks busy time and customers served."""

    __slots__ = ("_free", "busy_ms", "name", "served", "servers")
    deferred = False  # departures are known on arrival (sim.cores.CoreThread: not)

    def __init__(self, name: str, servers: int = 1) -> None:
        if servers < 1:
            raise ValueError(f"{name}: a station needs at least one server, got {servers}")
        self.name = name
        self.servers = servers
        self._free = [0.0] * servers
        self.busy_ms = 0.0
        self.served = 0

    def finish(self, arrival_ms: float, service_ms: float) -> float:
        """Departure time of a customer arriving now with this service demand."""
        free = self._free
        earliest = free[0]
        start = arrival_ms if arrival_ms > earliest else earliest
        done = start + service_ms
        if self.servers == 1:
            free[0] = done
        else:
            heapq.heapreplace(free, done)
        self.busy_ms += service_ms
        self.served += 1
        return done

    def utilisation(self, elapsed_ms: float) -> float:
        return self.busy_ms / (elapsed_ms * self.servers) if elapsed_ms > 0 else 0.0


class TurnStation(FcfsStation):
    """One server whose customers wait only for their turn: the work each brings is done
    after it has moved on, delaying only those behind it (a thread that takes a request's
    answer, then records it). `finish` returns when the customer's service starts."""

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__(name, 1)

    def finish(self, arrival_ms: float, service_ms: float) -> float:
        return super().finish(arrival_ms, service_ms) - service_ms
