"""The discrete-event model of the four-region system (SimPy).

Executes the scenario step lists through edge workers, per-region Redis clusters,
CockroachDB nodes, the WAN and, for the legacy design, Durable Objects and D1.
"""

from sim.errors import SimulationError

__all__ = ["SimulationError"]
