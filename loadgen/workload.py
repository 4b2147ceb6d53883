"""What the load generator sends: the simulator's workload, for the regions of the stack.

Operations follow the scenario's mix; each request's edge region follows the regions'
traffic shares (renormalised over the regions that run); a share of requests
(`cross_region_share`) comes from users homed in another running region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios.loader import World
from scenarios.workload import OPERATIONS


@dataclass(frozen=True)
class Slot:
    """One request of the open-loop schedule."""

    intended_s: float  # seconds after the start of the measured run
    operation: str
    edge: str  # the region whose server takes it
    home: str  # the region the user is homed in

    @property
    def locality(self) -> str:
        return "same_region" if self.edge == self.home else "cross_region"


class Schedule:
    """A Poisson process at `qps`, each arrival drawn an operation, an edge and a home.

    `segments` ((start_s, end_s, qps) windows) change the rate for a while; the process is
    then drawn at the highest rate and thinned (an arrival at t is kept with probability
    rate(t) / highest), which is exact for a piecewise-constant rate.
    """

    def __init__(
        self,
        world: World,
        regions: list[str],
        qps: float,
        seed: int,
        segments: list[tuple[float, float, float]] | None = None,
        only: str | None = None,
    ) -> None:
        if qps <= 0:
            raise ValueError(f"QPS={qps:g} must be > 0")
        self.rng = np.random.default_rng(seed)
        self.qps = qps
        self.segments = segments or []
        self.peak = max([qps, *(q for _, _, q in self.segments)])
        self.regions = regions
        work = world.workload
        shares = np.array([work.region_share[r] for r in regions], dtype=float)
        self.region_p = shares / shares.sum()
        if only is not None and only not in OPERATIONS:
            raise ValueError(
                f"unknown MIX={only!r}: choose default or one of {', '.join(OPERATIONS)}"
            )
        # MIX=<operation> sends only that operation (a benchmark, a focused test).
        self.mix_p = np.array(
            [(o == only) if only else work.mix[o].value for o in OPERATIONS], dtype=float
        )
        self.mix_p /= self.mix_p.sum()
        self.cross = work.cross_region_share.value if len(regions) > 1 else 0.0
        self.t = 0.0

    def rate(self, t: float) -> float:
        for start, end, q in self.segments:
            if start <= t < end:
                return q
        return self.qps

    BLOCK = 4096  # draws made at once: one numpy call per block, not five per request

    def _refill(self) -> None:
        n, rng = self.BLOCK, self.rng
        self._gaps = rng.exponential(1.0 / self.peak, n).tolist()
        self._keep = (rng.random(n) * self.peak).tolist()
        self._edges = rng.choice(len(self.regions), size=n, p=self.region_p).tolist()
        self._cross = (rng.random(n) < self.cross).tolist()
        self._other = rng.random(n).tolist()
        self._ops = rng.choice(len(OPERATIONS), size=n, p=self.mix_p).tolist()
        self._i = 0

    def next(self) -> Slot:
        while True:
            if getattr(self, "_i", self.BLOCK) >= self.BLOCK:
                self._refill()
            i = self._i
            self._i += 1
            self.t += self._gaps[i]
            if not self.segments or self._keep[i] < self.rate(self.t):
                break
        edge = self.regions[self._edges[i]]
        home = edge
        if self._cross[i]:
            others = [r for r in self.regions if r != edge]
            home = others[int(self._other[i] * len(others))]
        return Slot(self.t, OPERATIONS[self._ops[i]], edge, home)
