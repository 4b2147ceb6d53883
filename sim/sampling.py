"""Fast streams of samples from scenario distributions.

Each stream draws blocks from the run's one numpy Generator and hands out Python floats,
so the model's hot path never calls numpy per sample. The order in which streams refill
follows the event order, so a seeded run is reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scenarios.distributions import Constant, Exponential, Lognormal, Uniform

BLOCK = 8192
AnyDist = Constant | Uniform | Exponential | Lognormal


class Stream:
    """Samples of one distribution, in ms."""

    __slots__ = ("_buf", "_draw", "_i", "constant")

    def __init__(self, draw: Callable[[int], np.ndarray] | None, constant: float = 0.0) -> None:
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0
        self.constant = constant if draw is None else None

    def next(self) -> float:
        if self._draw is None:
            return self.constant  # type: ignore[return-value]
        i = self._i
        if i == len(self._buf):
            self._buf = self._draw(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]


def stream_of(dist: AnyDist, rng: np.random.Generator, scale: float = 1.0) -> Stream:
    """A stream for `dist`, every sample multiplied by `scale`."""
    if isinstance(dist, Constant):
        return Stream(None, dist.value_ms * scale)
    if isinstance(dist, Uniform):
        lo, hi = dist.low_ms * scale, dist.high_ms * scale
        return Stream(lambda n: rng.uniform(lo, hi, n))
    if isinstance(dist, Exponential):
        mean = dist.mean_ms * scale
        return Stream(lambda n: rng.exponential(mean, n))
    mu, sigma = float(np.log(dist.median_ms * scale)), dist.sigma
    return Stream(lambda n: rng.lognormal(mu, sigma, n))


def uniform01(rng: np.random.Generator) -> Stream:
    """U(0, 1) draws for routing and branch decisions."""
    return Stream(lambda n: rng.random(n))
